"""The resource server's one entry point: a request's credentials in, a validated :class:`AccessToken` out.

``Validator(issuer)`` discovers the issuer once, keeps its JWKS as cached (``portcullis_resource.jwks``),
checks the token as RFC 9068 section 4 says (``tokens``), its DPoP proof as RFC 9449 section 4.3 says
(``dpop``), and, for revocation-sensitive routes, asks RFC 7662 introspection (``introspection``). Every
refusal is a :class:`~portcullis_resource.errors.ResourceError`; :meth:`Validator.render` turns one into the
status, headers and JSON body of the answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

import httpx

from portcullis_resource import dpop, jws, tokens
from portcullis_resource.errors import (
    InvalidDpopProof,
    InvalidToken,
    MissingToken,
    ResourceError,
    TemporarilyUnavailable,
)
from portcullis_resource.introspection import ClientAuth, Introspector
from portcullis_resource.jwks import KeySet
from portcullis_resource.replay import MemoryReplayStore, ReplayStore, replay_key
from portcullis_resource.tokens import AccessToken

DPOP_ALGS = ("ES256", "EdDSA", "ES384", "PS256", "RS256")


class Validator:
    """Validates Portcullis access tokens for one resource server.

    ``audience``: the RFC 8707 resource identifiers this server answers to (a string or several); the
    default is the issuer itself, Portcullis' default ``aud``. ``clock`` returns Unix seconds.
    """

    def __init__(
        self,
        issuer: str,
        *,
        audience: str | Collection[str] | None = None,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        skew: float = 30.0,
        jwks_max_age: float = 300.0,
        jwks_refetch_interval: float = 60.0,
        algorithms: Collection[str] | None = None,
        dpop_algorithms: Collection[str] = DPOP_ALGS,
        dpop_max_age: float = 60.0,
        dpop_nonces: dpop.Nonces | None = None,
        replay_store: ReplayStore | None = None,
        introspection: ClientAuth | None = None,
        introspection_cache_seconds: float = 5.0,
        allow_service_tokens: bool = False,
        realm: str | None = None,
    ) -> None:
        audiences = [audience] if isinstance(audience, str) else list(audience or [issuer])
        self.expected = tokens.Expected(issuer, frozenset(audiences), skew, allow_service_tokens)
        self.http = http or httpx.AsyncClient(timeout=5.0)
        self.clock = clock
        self.keys = KeySet(issuer, self.http, clock, jwks_max_age, jwks_refetch_interval)
        self.algorithms = frozenset(algorithms) if algorithms is not None else None
        self.dpop_algorithms = tuple(a for a in dpop_algorithms if a in jws.ALGORITHMS)
        self.dpop_max_age = dpop_max_age
        self.dpop_nonces = dpop_nonces
        self.replay = replay_store or MemoryReplayStore()
        self._proof_keys = dpop.ProofKeys()
        self.realm = realm
        self._client_auth = introspection
        self._introspection_cache = introspection_cache_seconds
        self._introspector: Introspector | None = None
        self._advertised_for: tuple[int, int] | None = None
        self._advertised_set: frozenset[str] = frozenset()
        self._headers: dict[str, tuple[str, str | None]] = {}
        self._headers_for: frozenset[str] | None = None

    # ------------------------------------------------------------------ the checks

    async def validate_token(self, raw: str) -> AccessToken:
        """RFC 9068 section 4 on the token alone (no DPoP, no introspection)."""
        try:
            head, body, sig = jws.split(raw)
            payload = jws.decode_object(body)
            signature = jws.b64decode(sig)
        except jws.JwsError as exc:
            raise InvalidToken(f"the access token is not a JWT: {exc}") from None
        meta = self.keys.metadata or await self.keys.discover()
        alg, kid = self._checked_header(head, meta)
        key = self.keys.fresh_key(kid) or await self.keys.key(kid)
        if key is None:
            raise InvalidToken("the access token was not signed by a key of the issuer")
        if key.alg != alg:
            raise InvalidToken("the access token's alg is not the one its key is for")
        try:
            key.check(raw[: len(head) + 1 + len(body)].encode("ascii"), signature)
        except jws.JwsError:
            raise InvalidToken("the access token's signature does not verify") from None
        tokens.check_claims(payload, self.expected, self.clock())
        return tokens.access_token(raw, payload)

    def _checked_header(self, segment: str, meta: dict[str, Any]) -> tuple[str, str | None]:
        # An issuer's tokens share a handful of headers (one per key), so a header segment already checked
        # against what the issuer advertises now is not decoded again. Forgotten when the advertised set
        # changes (new discovery or key set); bounded.
        advertised = self._advertised(meta)
        if self._headers_for is not advertised:
            self._headers, self._headers_for = {}, advertised
        known = self._headers.get(segment)
        if known is None:
            try:
                header = jws.decode_object(segment)
            except jws.JwsError as exc:
                raise InvalidToken(f"the access token is not a JWT: {exc}") from None
            known = tokens.check_header(header, advertised)
            if len(self._headers) >= 64:
                self._headers.clear()
            self._headers[segment] = known
        return known

    def _advertised(self, meta: dict[str, Any]) -> frozenset[str]:
        # Computed once per discovery document and key set, not per token (bench/resource_validate.py).
        stamp = (id(meta), self.keys.generation)
        if self._advertised_for != stamp:
            self._advertised_set, self._advertised_for = self._compute_advertised(meta), stamp
        return self._advertised_set

    def _compute_advertised(self, meta: dict[str, Any]) -> frozenset[str]:
        # What the issuer advertises: its discovery document's signing algorithms plus the alg each key
        # of its JWKS declares (a key of the previous algorithm stays published while its tokens live).
        # Never none or HS*: only asymmetric names exist in jws.ALGORITHMS, and each key is bound to its alg.
        named = meta.get("id_token_signing_alg_values_supported")
        advertised = {a for a in named if isinstance(a, str)} if isinstance(named, list) else set()
        allowed = (advertised | self.keys.algorithms()) & set(jws.ALGORITHMS)
        return frozenset(allowed & self.algorithms if self.algorithms is not None else allowed)

    async def authenticate(
        self,
        *,
        method: str,
        url: str,
        authorization: str | None,
        dpop_proofs: Sequence[str] = (),
        introspect: bool = False,
    ) -> AccessToken:
        """The access token of a request: the ``Authorization`` header, the ``DPoP`` header values, the
        method and the full URL the client called (as it wrote it in ``htu``)."""
        credentials = dpop.authorization(authorization)
        if credentials is None:
            raise MissingToken("an access token is required", dpop=bool(dpop_proofs))
        scheme, raw = credentials
        try:
            token = await self.validate_token(raw)
        except ResourceError as exc:
            exc.dpop = exc.dpop or scheme == "DPoP"
            raise
        if token.jkt is not None:
            if scheme != "DPoP":
                # RFC 9449 section 7.1: a DPoP-bound token is not a bearer token.
                raise InvalidToken(
                    "this token is DPoP-bound: send it as Authorization: DPoP with a proof", dpop=True
                )
            now = self.clock()
            proof = dpop.check_proof(
                dpop.single(dpop_proofs),
                method=method,
                url=url,
                access_token=raw,
                jkt=token.jkt,
                now=now,
                algorithms=self.dpop_algorithms,
                max_age=self.dpop_max_age,
                skew=self.expected.skew,
                nonces=self.dpop_nonces,
                keys=self._proof_keys,
            )
            ttl = self.dpop_max_age + 2 * self.expected.skew
            if not await self.replay.first_use(replay_key(proof.jkt, proof.jti), ttl, now):
                raise InvalidDpopProof("the DPoP proof has been used before (jti)")
        elif scheme == "DPoP":
            raise InvalidToken("this token is not DPoP-bound: send it as Authorization: Bearer", dpop=True)
        return await self.confirm_live(token) if introspect else token

    async def confirm_live(self, token: AccessToken) -> AccessToken:
        """RFC 7662: ask the issuer whether ``token`` (already validated) is still live; fail closed."""
        try:
            await (await self._introspection()).check(token.raw)
        except ResourceError as exc:
            exc.dpop = exc.dpop or token.jkt is not None
            raise
        return tokens.access_token(token.raw, token.claims, introspected=True)

    async def _introspection(self) -> Introspector:
        if self._introspector is None:
            if self._client_auth is None:
                raise TemporarilyUnavailable("this resource server has no introspection credentials")
            meta = await self.keys.discover()
            endpoint = meta.get("introspection_endpoint")
            if not isinstance(endpoint, str):
                raise TemporarilyUnavailable("the issuer advertises no introspection endpoint")
            self._introspector = Introspector(
                endpoint,
                self.expected.issuer,
                self._client_auth,
                self.http,
                self.clock,
                self._introspection_cache,
            )
        return self._introspector

    # ------------------------------------------------------------------ the answer

    def render(self, exc: ResourceError) -> tuple[int, dict[str, str], dict[str, str]]:
        """(status, headers, JSON body) of a refusal: RFC 6750 / RFC 9449 ``WWW-Authenticate`` challenge."""
        headers = {"Cache-Control": "no-store", **exc.headers}
        if exc.status == 503:
            headers["Retry-After"] = "5"
        else:
            headers["WWW-Authenticate"] = exc.challenge(self.realm, self.dpop_algorithms)
        return exc.status, headers, exc.body()
