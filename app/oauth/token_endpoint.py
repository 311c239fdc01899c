"""The token endpoint (RFC 6749 section 3.2): client authentication, the DPoP proof, then one grant.

Grants: ``authorization_code`` (RFC 6749 4.1.3), ``refresh_token`` (section 6) and ``client_credentials``
(section 4.4), and the RFC 7523 section 2.1 JWT bearer grant of a bot under a delegation
(app.oauth.jwt_bearer). Registered clients authenticate (app.oauth.client_auth); the public SIWE clients
named in ``PORTCULLIS_CLIENTS`` may refresh without authentication, as before. A client registered with
``dpop_bound_access_tokens`` gets no bearer token (RFC 9449 section 5: a proof is required).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from app.audit import events
from app.errors import InvalidRequest, UnauthorizedClient, UnsupportedGrantType
from app.oauth import code_grant, dpop, dpop_nonce, jwt_bearer, refresh, service
from app.oauth.client_failures import authenticate_client
from app.oauth.clients import Client
from app.oauth.dpop import DpopProof, InvalidDpopProof
from app.oauth.provider import Provider
from app.oauth.tokens import TokenResponse

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials", jwt_bearer.GRANT_TYPE)


@dataclass(frozen=True, slots=True)
class Answer:
    body: dict[str, object]
    headers: dict[str, str] = field(default_factory=dict)


def endpoint_url(p: Provider, path: str) -> str:
    return f"{p.settings.issuer}{path}"


def nonce_headers(p: Provider) -> dict[str, str]:
    if not p.settings.dpop_nonces:
        return {}
    return {"DPoP-Nonce": dpop_nonce.current(p.dpop_nonce_key, p.clock.now())}


async def check_proof(
    p: Provider, values: Sequence[str], *, method: str, path: str, required: bool
) -> DpopProof | None:
    """The request's DPoP proof for an authorization-server endpoint (RFC 9449 section 4.3, 8)."""
    proof = dpop.single_proof(values)
    if proof is None:
        if required:
            raise InvalidDpopProof("this client must send a DPoP proof (RFC 9449): it gets no bearer tokens")
        return None
    now = p.clock.now()
    nonce = previous = None
    if p.settings.dpop_nonces:
        nonce = dpop_nonce.current(p.dpop_nonce_key, now)
        previous = dpop_nonce.previous(p.dpop_nonce_key, now)
    return await dpop.verify_proof(
        proof,
        method=method,
        url=endpoint_url(p, path),
        now=now,
        jti_store=p.dpop_jtis,
        nonce=nonce,
        accepted_nonces=(previous,) if previous else (),
    )


async def token(
    p: Provider,
    form: Mapping[str, str],
    authorization: str | None,
    dpop_values: Sequence[str],
    meta: events.RequestMeta,
) -> Answer:
    grant_type = form.get("grant_type")
    if not grant_type:
        raise InvalidRequest("grant_type is required")
    if grant_type not in GRANT_TYPES:
        raise UnsupportedGrantType(f"grant_type {grant_type[:60]!r} is not supported")
    if grant_type == jwt_bearer.GRANT_TYPE:
        # RFC 7523 section 2.1: the bot authenticates by its assertion and DPoP key; it is no client.
        proof = await check_proof(p, dpop_values, method="POST", path="/token", required=False)
        bot = await jwt_bearer.issue(p, form, proof, meta)
        return Answer(bot.to_json(), nonce_headers(p))
    client = await _client(p, grant_type, form, authorization, meta)
    if client is not None and grant_type not in client.grant_types:
        raise UnauthorizedClient(f"this client may not use the {grant_type} grant")
    required = client is not None and client.dpop_bound_access_tokens
    proof = await check_proof(p, dpop_values, method="POST", path="/token", required=required)
    tokens = await _grant(p, grant_type, client, form, proof, meta)
    p.metrics.issued[grant_type].inc()
    return Answer(tokens.to_json(), nonce_headers(p))


async def _client(
    p: Provider, grant_type: str, form: Mapping[str, str], authorization: str | None, meta: events.RequestMeta
) -> Client | None:
    client_id = form.get("client_id")
    unauthenticated = authorization is None and not ({"client_secret", "client_assertion"} & form.keys())
    if (
        grant_type == "refresh_token"
        and unauthenticated
        and (client_id is None or client_id in p.settings.clients)
        and (client_id is None or p.client_registry.get(client_id) is None)
    ):
        return None  # a public SIWE client of /siwe/verify (PORTCULLIS_CLIENTS)
    return await authenticate_client(p, form, authorization, meta, "/token")


async def _grant(
    p: Provider,
    grant_type: str,
    client: Client | None,
    form: Mapping[str, str],
    proof: DpopProof | None,
    meta: events.RequestMeta,
) -> TokenResponse:
    if grant_type == "refresh_token":
        jkt = proof.jkt if proof is not None else None
        if client is None:  # a public SIWE client (PORTCULLIS_CLIENTS)
            holder = refresh.Holder(form.get("client_id"), dpop_jkt=jkt)
        else:
            ttl = client.access_token_lifetime
            holder = refresh.Holder(
                client.client_id,
                # A registered public client (method none) proved nothing about itself.
                authenticated=client.token_endpoint_auth_method != "none",  # noqa: S105
                dpop_jkt=jkt,
                access_ttl=timedelta(seconds=ttl) if ttl is not None else None,
            )
        return await refresh.refresh(
            p, form.get("refresh_token"), holder.client_id, form.get("scope"), meta, holder
        )
    assert client is not None
    if grant_type == "authorization_code":
        return await code_grant.exchange(p, client, form, proof, meta)
    return await service.issue(p, client, form, proof, meta)
