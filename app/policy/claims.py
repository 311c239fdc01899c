"""OpenID Connect Core 1.0 section 5.4 (claims asked for by scope) for the compliance claim, kept to what the
granted scopes need (GDPR art. 5(1)(c), data minimisation; docs/POLICY.md, "Claims").

Pure. ``release`` is the one place that decides which token carries which part of
``ComplianceDecision.claim()``: a scope whose ``claims`` name ``compliance`` releases the whole claim to the
client (ID token, userinfo, access token); otherwise the access token carries the decision's provenance and
only the facts the granted scopes' ``access_token_compliance`` list, and the ID token carries none. Without
the compliance gate every token carries ``{"source": "none"}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.chain.types import CLAIM_FACTS, CLAIM_PROVENANCE
from app.policy.model import Policy

COMPLIANCE = "compliance"
NO_GATE = "none"  # the source of the claim when the operator runs without the compliance gate


@dataclass(frozen=True, slots=True)
class Release:
    """The ``compliance`` claim of each token of one grant; None: the token carries no such claim."""

    id_token: dict[str, Any] | None  # also what userinfo answers
    access_token: dict[str, Any] | None


def facts_carried(policy: Policy, scope: str) -> tuple[bool, tuple[str, ...]]:
    """(whether the client is given the whole claim, the facts the access token carries), in claim order."""
    scopes = scope.split()
    if policy.releases(scopes, COMPLIANCE):
        return True, CLAIM_FACTS
    needed = policy.access_token_compliance(scopes)
    return False, tuple(f for f in CLAIM_FACTS if f in needed)


def release(policy: Policy, scope: str, claim: dict[str, Any] | None) -> Release:
    """The parts of ``claim`` (the decision's whole claim) that the tokens of a grant of ``scope`` carry."""
    if claim is None:
        return Release(None, None)
    if claim.get("source") == NO_GATE:
        # PORTCULLIS_COMPLIANCE=off: the claim says only that no gate ran, which every token must say
        # (a relying party must not read a missing claim as "gate passed"); it discloses nothing personal.
        return Release(dict(claim), dict(claim))
    whole, facts = facts_carried(policy, scope)
    if whole:
        return Release(dict(claim), dict(claim))
    kept = {k: v for k, v in claim.items() if k in CLAIM_PROVENANCE or k in facts}
    return Release(None, kept)
