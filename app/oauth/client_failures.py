"""RFC 6749 section 10.10 (credentials guessing): the one way an endpoint authenticates a client.

/token, /par, /introspect and /revoke all call :func:`authenticate_client`. It asks the client guard
(app.risk.client_guard) before any secret or assertion is checked, authenticates (app.oauth.client_auth),
and reports the outcome: a failure spends the claimed client's failure budget, feeds the (client, IP) and
IP failure-spike locks and is audited as ``client.auth_failed`` (plus ``risk.locked`` for each lock it
starts). A request the guard refuses is answered 429 and records nothing, as a refused sign-in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from app.audit import events
from app.errors import InvalidClient
from app.oauth.client_auth import authenticate, claimed_client_id
from app.oauth.clients import Client
from app.oauth.provider import Provider
from app.risk.anomaly import LockEvent

_LOGGABLE_ID = re.compile(r"[\x20-\x7e]{1,128}")  # the client_id syntax (app.oauth.clients)


async def authenticate_client(
    p: Provider, form: Mapping[str, str], authorization: str | None, meta: events.RequestMeta, endpoint: str
) -> Client:
    """The authenticated client; :class:`InvalidClient` (401), or RateLimited (429) once the claimed
    client's failure budget is spent or the IP or the (client, IP) pair is locked."""
    claimed = claimed_client_id(authorization, form)
    admission = await p.client_guard.admit(claimed, meta.ip)
    try:
        client = await authenticate(
            p.client_registry,
            authorization_header=authorization,
            form=form,
            issuer=p.settings.issuer,
            token_endpoint=f"{p.settings.issuer}/token",
            now=p.clock.now(),
            jti_store=p.assertion_jtis,
            client_keys=p.client_keys,
            secret_verifier=p.secret_verifier,
        )
    except InvalidClient as exc:
        failure = await p.client_guard.failed(admission)
        await _audit(p, meta, claimed, endpoint, exc, failure.locks)
        if failure.refused is not None:
            raise failure.refused from None
        raise
    await p.client_guard.succeeded(admission)
    return client


async def _audit(
    p: Provider,
    meta: events.RequestMeta,
    claimed: str | None,
    endpoint: str,
    exc: InvalidClient,
    locks: tuple[LockEvent, ...],
) -> None:
    """``client.auth_failed`` with the claimed id (hashed when it is not a well-formed id) and the reason;
    never the secret or the assertion."""
    now = p.clock.now()
    loggable = claimed if claimed is not None and _LOGGABLE_ID.fullmatch(claimed) else None
    known = loggable is not None and p.client_registry.get(loggable) is not None
    data: dict[str, object] = {"endpoint": endpoint, "detail": (exc.debug or exc.description)[:300]}
    if claimed is not None and loggable is None:
        data["client_id_sha256"] = events.sha256_hex(claimed)
    for lock in locks:
        p.metrics.locks.labels(lock.what).inc()
        await p.audit_log.record(
            p.auditor.event(
                events.RISK_LOCKED,
                events.SUCCESS,
                meta,
                reason="client failure budget spent"
                if lock.what == "client"
                else f"{lock.what} failure spike",
                client_id=loggable,
                data={"key_hash": events.sha256_hex(lock.key), "until": events.ts_ms(lock.until)},
                at=now,
            )
        )
    await p.audit_log.record(
        p.auditor.event(
            events.CLIENT_AUTH_FAILED,
            events.FAILURE,
            meta,
            reason=_reason(claimed, known),
            client_id=loggable,
            data=data,
            at=now,
        )
    )


def _reason(claimed: str | None, known: bool) -> str:
    if claimed is None:
        return "no_client_id"  # too malformed to name a client
    return "invalid_credentials" if known else "unknown_client"
