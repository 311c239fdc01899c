"""EIP-4361 relying-party verification: field checks against expectations, then the EOA signature.

``verify`` = ``parse`` -> ``check_fields`` -> ``check_eoa_signature``. All pure: the clock is the
``now`` argument, the expectations are the ``Expectations`` value, nothing touches the network.

``check_fields`` runs named steps in a fixed order (scheme, domain, uri, chain, nonce, then the
time window) and raises the first failure as a typed ``SiweError``. Policy:

* scheme: a message without one means https (EIP-4361); compared case-insensitively (RFC 3986).
  So with ``Expectations(scheme="http")`` a message must carry ``http://`` explicitly.
* domain: a domain with userinfo (``user@host``) is always refused, even with no expected domain:
  it only serves to make a foreign authority look like a trusted one. Otherwise exact match.
* ``clock_skew`` (default 60 s) tolerates disagreement between the signer's clock and ours, both
  ways: expired when ``expiration_time <= now - skew``; not yet valid when ``not_before > now +
  skew``; issued in the future when ``issued_at > now + skew``. Applying the skew at expiry too
  keeps the window symmetric; a relying party that wants a hard expiry passes ``clock_skew=0``.
  EIP-4361 itself has no Issued-At-in-the-future rule; this one is ours.
* ``max_age`` refuses ``issued_at < now - max_age`` with no skew added. The server passes the
  nonce lifetime; passing lifetime + skew would also tolerate client clocks running behind.

Smart-contract wallets: ``check_eoa_signature`` only knows EOAs (EIP-191 + ecrecover). The
ERC-1271 / ERC-6492 path plugs in *after* it, outside this pure module: when it raises
``InvalidSignature`` (or ``MalformedSignature`` for a non-65-byte signature, which contract wallets
such as Loopring produce), the caller asks the chain named by ``message.chain_id`` whether
``message.address`` accepts ``personal_message_hash(text)`` with that signature, an async RPC call
that lives in ``app/chain/``. ``check_fields`` must have passed first either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.siwe.eip191 import recover_address_bytes
from app.siwe.errors import (
    ChainNotAllowed,
    DomainMismatch,
    ExpiredMessage,
    InvalidSignature,
    IssuedInFuture,
    MessageTooOld,
    NonceMismatch,
    NotYetValid,
    SchemeMismatch,
    UriMismatch,
)
from app.siwe.message import DEFAULT_MAX_BYTES, SiweMessage, Timeline, parse_timed

DEFAULT_SCHEME = "https"


@dataclass(frozen=True, slots=True)
class Expectations:
    """What the relying party expects; ``None`` means "not checked"."""

    domain: str | None = None
    scheme: str | None = None
    uri: str | None = None
    chain_ids: frozenset[int] | None = None
    nonce: str | None = None
    max_age: timedelta | None = None
    clock_skew: timedelta = timedelta(seconds=60)


def check_scheme(message: SiweMessage, expect: Expectations) -> None:
    """The message's scheme, https when absent (EIP-4361), equals the expected one."""
    if expect.scheme is None:
        return
    scheme = DEFAULT_SCHEME if message.scheme is None else message.scheme
    # RFC 3986 3.1: schemes are case-insensitive.
    if scheme.lower() != expect.scheme.lower():
        raise SchemeMismatch("scheme: the message's scheme is not the expected one")


def check_domain(message: SiweMessage, expect: Expectations) -> None:
    """No userinfo, ever; then an exact authority (host[:port]) match when one is expected."""
    # "@" can only appear in an authority as the userinfo separator. A domain such as
    # "example.com@evil.test" reads like the trusted name to a human, so it is always refused.
    if "@" in message.domain:
        raise DomainMismatch("domain: must not carry userinfo (user@host)")
    if expect.domain is not None and message.domain != expect.domain:
        raise DomainMismatch("domain: the message's domain is not the expected one")


def check_uri(message: SiweMessage, expect: Expectations) -> None:
    if expect.uri is not None and message.uri != expect.uri:
        raise UriMismatch("uri: the message's URI is not the expected one")


def check_chain(message: SiweMessage, expect: Expectations) -> None:
    if expect.chain_ids is not None and message.chain_id not in expect.chain_ids:
        raise ChainNotAllowed(f"chain id: {message.chain_id} is not accepted here")


def check_nonce(message: SiweMessage, expect: Expectations) -> None:
    # A plain comparison is fine: the nonce is not a secret (it is inside the signed text), and
    # the server consumes it atomically in its store afterwards.
    if expect.nonce is not None and message.nonce != expect.nonce:
        raise NonceMismatch("nonce: the message's nonce is not the one issued")


def check_validity_window(timeline: Timeline, expect: Expectations, now: datetime) -> None:
    """Expiration Time and Not Before, each with ``clock_skew`` tolerance."""
    if timeline.expiration_time is not None and timeline.expiration_time <= now - expect.clock_skew:
        raise ExpiredMessage("expiration time: the message has expired")
    if timeline.not_before is not None and timeline.not_before > now + expect.clock_skew:
        raise NotYetValid("not before: the message is not valid yet")


def check_issued_at(timeline: Timeline, expect: Expectations, now: datetime) -> None:
    """Issued At not in the future beyond ``clock_skew``, nor older than ``max_age``."""
    if timeline.issued_at > now + expect.clock_skew:
        raise IssuedInFuture("issued at: the message claims to be issued in the future")
    if expect.max_age is not None and timeline.issued_at < now - expect.max_age:
        raise MessageTooOld("issued at: the message is older than accepted")


def check_fields(message: SiweMessage, expect: Expectations, now: datetime) -> None:
    """Every check except the signature, in a fixed order; raises the first typed failure."""
    check_fields_timed(message, message.timeline(), expect, now)


def check_fields_timed(message: SiweMessage, timeline: Timeline, expect: Expectations, now: datetime) -> None:
    """``check_fields`` with the message's instants already computed (see ``parse_timed``)."""
    if now.utcoffset() is None:
        # Comparing with a naive clock would silently assume a zone: a server bug, not a 4xx.
        raise ValueError("now must be a timezone-aware datetime")
    check_scheme(message, expect)
    check_domain(message, expect)
    check_uri(message, expect)
    check_chain(message, expect)
    check_nonce(message, expect)
    check_validity_window(timeline, expect, now)
    check_issued_at(timeline, expect, now)


def check_eoa_signature(text: str, message: SiweMessage, signature: str | bytes) -> None:
    """EIP-191 recovery over the exact signed ``text`` must yield ``message.address``."""
    recovered = recover_address_bytes(text.encode("utf-8"), signature)
    # message.address was checked to be EIP-55 at parse time, so comparing the 20 bytes is
    # equivalent to comparing checksummed strings, without a second keccak on this hot path.
    if recovered != bytes.fromhex(message.address[2:]):
        raise InvalidSignature("signature: not made by the message's address (EOA recovery)")


def verify(
    text: str,
    signature: str | bytes,
    *,
    expect: Expectations,
    now: datetime,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> SiweMessage:
    """Parse ``text``, check its fields, check its EOA signature; return the parsed message."""
    message, timeline = parse_timed(text, max_bytes=max_bytes)
    check_fields_timed(message, timeline, expect, now)
    check_eoa_signature(text, message, signature)
    return message
