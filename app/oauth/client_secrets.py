"""Checking ``client_secret_basic`` / ``client_secret_post`` secrets without stalling the server.

A stored secret is an scrypt hash (app.oauth.clients): about 50 ms of CPU and 16 MiB each. Run on the
event loop, every check would stall every other request of the process, and a stream of wrong secrets
for a known client id would stall it for good. So the scrypt runs in a worker thread (hashlib releases the
GIL), at most ``concurrency`` at a time; and a secret that was verified recently is recognised again by an
HMAC under a per-process random key, without scrypt. The memo is bound to the stored hash, so a changed
secret (RFC 7592 update, a new clients file) is never matched by the old one; it lives ``ttl`` at most.

A client id that is unknown (or not registered for a secret) is checked against a hash no secret matches,
made once per verifier with the default scrypt parameters, through the same memo lookup, the same
concurrency limit and the same worker thread: it costs what a wrong secret for a registered client costs,
so timing does not list the registered clients (RFC 6749 section 10.10).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from app.clock import Clock
from app.oauth.clients import unmatchable_hash, verify_client_secret

DEFAULT_TTL = timedelta(minutes=10)


class SecretVerifier:
    def __init__(
        self, clock: Clock, *, ttl: timedelta = DEFAULT_TTL, concurrency: int = 2, max_entries: int = 10_000
    ) -> None:
        self._clock = clock
        self._ttl = ttl
        self._slots = asyncio.Semaphore(concurrency)
        self._max_entries = max_entries
        self._key = secrets.token_bytes(32)
        self._unmatchable = unmatchable_hash()
        # (client_id, stored hash) -> (HMAC of the secret that matched it, until when)
        self._verified: dict[tuple[str, str], tuple[bytes, datetime]] = {}

    def _mac(self, secret: str) -> bytes:
        return hmac.new(self._key, secret.encode(), hashlib.sha256).digest()

    async def verify(self, client_id: str, secret: str, stored_hash: str | None) -> bool:
        """Does ``secret`` match ``stored_hash``? ``None`` (no usable hash: an unknown client) is always
        False, after the same work as a wrong secret."""
        now = self._clock.now()
        mac = self._mac(secret)
        target = self._unmatchable if stored_hash is None else stored_hash
        memo = self._verified.get((client_id, target))
        if memo is not None and memo[1] > now and hmac.compare_digest(memo[0], mac):
            return True
        async with self._slots:
            ok = await asyncio.to_thread(verify_client_secret, secret, target)
        if ok and stored_hash is not None:
            if len(self._verified) >= self._max_entries:
                self._evict(now)
            self._verified[(client_id, target)] = (mac, now + self._ttl)
        return ok

    def _evict(self, now: datetime) -> None:
        for key in [k for k, (_, until) in self._verified.items() if until <= now]:
            del self._verified[key]
        while len(self._verified) >= self._max_entries:
            del self._verified[next(iter(self._verified))]  # the oldest insertion
