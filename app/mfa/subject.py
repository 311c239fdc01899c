"""Factors bind to a CAIP-10 subject, ``did:pkh:eip155:<chain id>:<address>`` (as app.oidc.tokens mints)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.mfa.errors import InvalidSubject

_DID_PKH = re.compile(r"did:pkh:eip155:([1-9][0-9]{0,77}):(0x[0-9a-fA-F]{40})")


@dataclass(frozen=True, slots=True)
class WalletSubject:
    chain_id: int
    address: str

    @property
    def did(self) -> str:
        return f"did:pkh:eip155:{self.chain_id}:{self.address}"


def parse_subject(subject: str) -> WalletSubject:
    """Split a did:pkh subject; InvalidSubject (a 400 at the HTTP face) if ``subject`` is not one."""
    match = _DID_PKH.fullmatch(subject) if isinstance(subject, str) else None
    if match is None:
        raise InvalidSubject("subject must be a did:pkh:eip155:<chain id>:<address> account")
    return WalletSubject(int(match.group(1)), match.group(2))
