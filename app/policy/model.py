"""The policy file (docs/POLICY.md): one reviewed TOML document saying who may hold which scope and which
RFC 9396 authorization details, validated at start-up into an immutable ``Policy``.

``parse_policy`` checks the file's shape (pydantic, strict: TOML's own types, no coercion), then what the
shape cannot say (known countries, flags, ``acr`` levels and scopes), and reports every problem as
``{source}:{line}: {problem}``. Lines come from ``app.policy.locate``, since ``tomllib`` keeps no positions.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.chain.iso3166 import NUMERIC_TO_ALPHA2
from app.chain.types import CLAIM_FACTS
from app.policy import locate
from app.policy.caip import is_chain_id
from app.policy.errors import PolicyError
from app.policy.facts import INVESTOR_CLASS_NAMES, KNOWN_FLAGS, ComplianceFacts
from app.policy.rar import ACTIONS, AUTHORIZATION_DETAILS_TYPES, CURRENCY, DECIMAL, ORDER_TYPES
from app.shipped import default_policy

DEFAULT_POLICY_PATH = default_policy()
ClientKind = Literal["wallet", "service"]
CLIENT_KINDS: tuple[ClientKind, ...] = ("wallet", "service")
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
RULE_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
INSTRUMENT_PATTERN = re.compile(r"[A-Z0-9*-]{1,64}")
ALPHA2 = frozenset(NUMERIC_TO_ALPHA2.values())
# Bits 16..31 of the registry's flags are free for a deployment's own meanings (contracts/README.md, "Flags").
CUSTOM_FLAG_BITS = range(16, 32)
MAX_LIFETIME = 86_400
# Claims a scope may ask for (OpenID Connect Core 1.0 section 5.4, docs/POLICY.md "Claims").
RELEASABLE_CLAIMS = ("compliance",)

# ---------------------------------------------------------------- the file's shape


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _Requirements(_File):
    require_record: bool = False
    min_kyc_level: int | None = Field(default=None, ge=1, le=3)
    investor_classes: list[str] | None = Field(default=None, min_length=1)
    residence_allow: list[str] | None = None
    residence_deny: list[str] = Field(default_factory=list)
    required_flags: list[str] = Field(default_factory=list)
    forbidden_flags: list[str] = Field(default_factory=list)
    max_aml_risk: int | None = Field(default=None, ge=1, le=3)
    acr: str | None = None
    max_auth_age: int | None = Field(default=None, ge=1, le=MAX_LIFETIME)


class _Selector(_File):
    id: str
    reason: str | None = Field(default=None, max_length=300)
    classes: list[str] | None = Field(default=None, min_length=1)
    residences: list[str] | None = Field(default=None, min_length=1)
    flags: list[str] = Field(default_factory=list)


class _When(_Selector, _Requirements):
    not_sanctioned: bool = False


def _wallet_only() -> list[ClientKind]:
    return ["wallet"]


class _Scope(_Requirements):
    description: str = Field(default="", max_length=300)
    clients: list[ClientKind] = Field(default_factory=_wallet_only, min_length=1)
    not_sanctioned: bool = True
    max_token_lifetime: int | None = Field(default=None, ge=1, le=MAX_LIFETIME)
    when: list[_When] = Field(default_factory=list)
    claims: list[str] = Field(default_factory=list)
    access_token_compliance: list[str] = Field(default_factory=list)


class _Family(_File):
    id: str
    patterns: list[str] = Field(min_length=1)
    scope: str


class _TradeLimit(_Selector):
    max_leverage: int | None = Field(default=None, ge=1, le=1000)
    max_notional: Any = None  # a decimal string (or an integer); checked by _Compiler._amount


class _Derivatives(_File):
    actions: list[str] = Field(min_length=1)
    order_types: list[str] = Field(min_length=1)
    notional_currencies: list[str] = Field(min_length=1)
    subaccount_chains: list[str] | None = None
    instruments: list[_Family] = Field(min_length=1)
    limits: list[_TradeLimit] = Field(min_length=1)


class _WithdrawalLimit(_Selector):
    own_account_only: bool = False
    max_amount: dict[str, Any] = Field(default_factory=dict)  # asset -> decimal string (or integer)


class _Withdrawal(_File):
    scope: str
    assets: list[str] = Field(min_length=1)
    destination_chains: list[str] = Field(min_length=1)
    max_destinations: int = Field(default=5, ge=1, le=20)
    limits: list[_WithdrawalLimit] = Field(min_length=1)


class _Details(_File):
    derivatives_trade: _Derivatives | None = None
    withdrawal: _Withdrawal | None = None


class _Authentication(_File):
    acr_levels: list[str] = Field(min_length=1)


class _Defaults(_File):
    max_token_lifetime: int | None = Field(default=None, ge=1, le=MAX_LIFETIME)


class _PolicyFile(_File):
    version: Literal[1]
    authentication: _Authentication
    defaults: _Defaults = Field(default_factory=_Defaults)
    countries: dict[str, list[str]] = Field(default_factory=dict)
    flags: dict[str, int] = Field(default_factory=dict)
    scopes: dict[str, _Scope] = Field(min_length=1)
    details: _Details = Field(default_factory=_Details)


# ---------------------------------------------------------------- the validated policy


@dataclass(frozen=True, slots=True)
class Flag:
    """A flag as the policy names it (``label``) and as facts carry it (``fact``; ``bit16`` for aliases)."""

    label: str
    fact: str


@dataclass(frozen=True, slots=True)
class Selector:
    """Whom a conditional block or a limit applies to. Unknown facts never match a class or residence."""

    classes: frozenset[str] | None = None
    residences: frozenset[str] | None = None
    flags: tuple[Flag, ...] = ()

    def matches(self, facts: ComplianceFacts) -> bool:
        if self.classes is not None and facts.investor_class not in self.classes:
            return False
        if self.residences is not None and facts.residence not in self.residences:
            return False
        return all(f.fact in facts.flags for f in self.flags)

    def describe(self) -> str:
        parts = []
        if self.classes is not None:
            parts.append("class " + "/".join(sorted(self.classes)))
        if self.residences is not None:
            parts.append("residence " + "/".join(sorted(self.residences)))
        parts.extend(f"flag {f.label}" for f in self.flags)
        return ", ".join(parts) or "everyone"


@dataclass(frozen=True, slots=True)
class Requirements:
    """Checks over the facts and the authentication; every one set must pass (any deny wins)."""

    require_record: bool = False
    not_sanctioned: bool = False
    min_kyc_level: int | None = None
    investor_classes: tuple[str, ...] | None = None
    residence_allow: frozenset[str] | None = None
    residence_deny: frozenset[str] = frozenset()
    required_flags: tuple[Flag, ...] = ()
    forbidden_flags: tuple[Flag, ...] = ()
    max_aml_risk: int | None = None
    acr: str | None = None
    max_auth_age: int | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    """``[[scopes.X.when]]``: extra requirements for the holders the selector matches."""

    id: str
    selector: Selector
    requirements: Requirements
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ScopeRule:
    name: str
    description: str
    clients: frozenset[str]
    requirements: Requirements
    when: tuple[Condition, ...] = ()
    max_token_lifetime: int | None = None
    # OIDC Core 5.4: the claims this scope asks for, carried in the ID token, at userinfo and in the access
    # token; and the compliance facts a resource server needs to enforce it, in the access token only.
    claims: frozenset[str] = frozenset()
    access_token_compliance: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class InstrumentFamily:
    """Instruments whose symbol matches a pattern (``*``: any run of symbol characters), judged by a scope."""

    id: str
    patterns: tuple[str, ...]
    scope: str

    def matches(self, instrument: str) -> bool:
        return any(_glob(p).fullmatch(instrument) is not None for p in self.patterns)


@dataclass(frozen=True, slots=True)
class Limit:
    """A cap for the holders the selector matches; the tightest cap of all matching limits applies."""

    id: str
    selector: Selector
    reason: str | None = None
    max_leverage: int | None = None
    max_notional: str | None = None  # decimal string, in any of the notional currencies
    own_account_only: bool = False
    max_amount: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class DerivativesRules:
    actions: tuple[str, ...]
    order_types: tuple[str, ...]
    notional_currencies: tuple[str, ...]
    subaccount_chains: frozenset[str] | None
    instruments: tuple[InstrumentFamily, ...]
    limits: tuple[Limit, ...]

    def family(self, instrument: str) -> InstrumentFamily | None:
        """The first family whose pattern matches, in file order."""
        return next((f for f in self.instruments if f.matches(instrument)), None)


@dataclass(frozen=True, slots=True)
class WithdrawalRules:
    scope: str
    assets: tuple[str, ...]
    destination_chains: frozenset[str]
    max_destinations: int
    limits: tuple[Limit, ...]


@dataclass(frozen=True, slots=True)
class Policy:
    """A validated policy. ``digest`` (sha256 of the file's bytes) identifies it in the audit trail."""

    source: str
    digest: str
    version: int
    acr_levels: tuple[str, ...]
    max_token_lifetime: int | None
    scopes: Mapping[str, ScopeRule]
    derivatives_trade: DerivativesRules | None = None
    withdrawal: WithdrawalRules | None = None

    def acr_rank(self, acr: str | None) -> int:
        """The strength of ``acr``: its index in ``acr_levels`` (weakest first), -1 when unknown."""
        if acr is None or acr not in self.acr_levels:
            return -1
        return self.acr_levels.index(acr)

    def scopes_supported(self, client_kind: ClientKind | None = None) -> list[str]:
        """For discovery (``scopes_supported``): every scope, or those a kind of client may hold."""
        return [s.name for s in self.scopes.values() if client_kind is None or client_kind in s.clients]

    def releases(self, scopes: Iterable[str], claim: str) -> bool:
        """Whether one of ``scopes`` asks for ``claim`` (its whole value, for the client to read)."""
        return any(claim in rule.claims for rule in self._rules(scopes))

    def access_token_compliance(self, scopes: Iterable[str]) -> frozenset[str]:
        """The compliance facts the access token must carry for a resource server to enforce ``scopes``."""
        return frozenset(f for rule in self._rules(scopes) for f in rule.access_token_compliance)

    def _rules(self, scopes: Iterable[str]) -> list[ScopeRule]:
        return [self.scopes[s] for s in scopes if s in self.scopes]

    def authorization_details_types_supported(self) -> list[str]:
        """For discovery (RFC 9396 section 10): the detail types this policy enables."""
        enabled = {"derivatives_trade": self.derivatives_trade, "withdrawal": self.withdrawal}
        return [t for t in AUTHORIZATION_DETAILS_TYPES if enabled[t] is not None]


# ---------------------------------------------------------------- loading


def load_policy(path: Path) -> Policy:
    """Read and validate the policy at ``path``; PolicyError (``{path}:{line}: {problem}``) when unusable."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([f"{path}:1: cannot read the policy file ({exc})"]) from None
    return parse_policy(text, source=str(path))


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Validate a policy document; PolicyError listing every problem with its line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _toml_line(str(exc), text)
        raise PolicyError([f"{source}:{line}: invalid TOML: {_toml_problem(str(exc))}"]) from None
    lines = locate.key_lines(text)
    try:
        raw = _PolicyFile.model_validate(data)
    except ValidationError as exc:
        problems = [(tuple(e["loc"]), _problem(e)) for e in exc.errors()]
        raise PolicyError(_render(source, lines, problems)) from None
    compiler = _Compiler(raw)
    policy = compiler.compile(source, "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest())
    if compiler.problems:
        raise PolicyError(_render(source, lines, compiler.problems))
    return policy


def _render(
    source: str, lines: Mapping[locate.Path, int], problems: Iterable[tuple[locate.Path, str]]
) -> list[str]:
    located = sorted(
        ((locate.line_of(lines, loc), _dotted(loc), problem) for loc, problem in problems),
        key=lambda item: item[0],
    )
    return [
        f"{source}:{line}: {where}: {problem}" if where else f"{source}:{line}: {problem}"
        for line, where, problem in located
    ]


def _dotted(loc: locate.Path) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            out += " (key)"
        else:
            text = str(part)
            out += ("." if out else "") + (text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else f'"{text}"')
    return out


def _problem(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error" and error["loc"] == ("version",):
        return "version must be 1"
    message: str = error["msg"]
    return message[0].lower() + message[1:]


def _toml_line(message: str, text: str) -> int:
    match = re.search(r"line (\d+)", message)
    if match:
        return int(match.group(1))
    return max(1, len(text.splitlines())) if "end of document" in message else 1


def _toml_problem(message: str) -> str:
    return re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", message)


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(re.escape(pattern).replace(r"\*", "[A-Z0-9-]*"))


# ---------------------------------------------------------------- semantic checks and compilation


class _Compiler:
    """Turns the file's shape into a Policy, collecting problems with their key paths."""

    def __init__(self, raw: _PolicyFile) -> None:
        self.raw = raw
        self.problems: list[tuple[locate.Path, str]] = []
        self.flag_aliases: dict[str, int] = {}

    def problem(self, loc: locate.Path, text: str) -> None:
        self.problems.append((loc, text))

    def compile(self, source: str, digest: str) -> Policy:
        raw = self.raw
        acr_levels = tuple(raw.authentication.acr_levels)
        self._unique(("authentication", "acr_levels"), acr_levels, "acr level")
        self._check_countries()
        self._check_flags()
        scopes = {name: self._scope(name, scope) for name, scope in raw.scopes.items()}
        policy = Policy(
            source=source,
            digest=digest,
            version=raw.version,
            acr_levels=acr_levels,
            max_token_lifetime=raw.defaults.max_token_lifetime,
            scopes=MappingProxyType(scopes),
            derivatives_trade=self._derivatives(raw.details.derivatives_trade),
            withdrawal=self._withdrawal(raw.details.withdrawal),
        )
        for name, scope in raw.scopes.items():
            loc: locate.Path = ("scopes", name)
            for key, req in [("", scope), *((f"when.{i}", w) for i, w in enumerate(scope.when))]:
                if req.acr is not None and req.acr not in acr_levels:
                    where = (*loc, *_split(key), "acr")
                    self.problem(where, f"acr {req.acr!r} is not one of authentication.acr_levels")
        return policy

    # -- helpers

    def _unique(self, loc: locate.Path, values: Iterable[str], what: str) -> None:
        seen: set[str] = set()
        for value in values:
            if value in seen:
                self.problem(loc, f"{what} {value!r} is listed twice")
            seen.add(value)

    def _check_countries(self) -> None:
        for name, codes in self.raw.countries.items():
            if RULE_ID.fullmatch(name) is None:
                self.problem(
                    ("countries", name), "a country list name is lower-case letters, digits, - and _"
                )
            for code in codes:
                if code not in ALPHA2:
                    self.problem(("countries", name), f"{code!r} is not an ISO 3166-1 alpha-2 code")

    def _check_flags(self) -> None:
        for name, bit in self.raw.flags.items():
            if RULE_ID.fullmatch(name) is None or name in KNOWN_FLAGS:
                self.problem(("flags", name), f"flag alias {name!r} must be a new lower-case name")
            elif bit not in CUSTOM_FLAG_BITS:
                self.problem(("flags", name), f"bit {bit} is not free for deployments (16..31)")
            else:
                self.flag_aliases[name] = bit

    def _countries(self, loc: locate.Path, codes: Iterable[str]) -> frozenset[str]:
        out: set[str] = set()
        for code in codes:
            if code.startswith("@"):
                listed = self.raw.countries.get(code[1:])
                if listed is None:
                    self.problem(loc, f"{code!r} names no list in [countries]")
                else:
                    out.update(listed)
            elif code in ALPHA2:
                out.add(code)
            else:
                self.problem(loc, f"{code!r} is not an ISO 3166-1 alpha-2 code (or @list)")
        return frozenset(out)

    def _flags(self, loc: locate.Path, names: Iterable[str]) -> tuple[Flag, ...]:
        out: list[Flag] = []
        for name in names:
            if name in KNOWN_FLAGS:
                out.append(Flag(name, name))
            elif name in self.flag_aliases:
                out.append(Flag(name, f"bit{self.flag_aliases[name]}"))
            elif re.fullmatch(r"bit(1[6-9]|2[0-9]|3[01])", name):
                out.append(Flag(name, name))
            else:
                known = ", ".join([*KNOWN_FLAGS, *self.flag_aliases])
                self.problem(loc, f"unknown flag {name!r}; known: {known} (or an alias in [flags])")
        return tuple(out)

    def _classes(self, loc: locate.Path, names: Iterable[str] | None) -> tuple[str, ...] | None:
        if names is None:
            return None
        for name in names:
            if name not in INVESTOR_CLASS_NAMES:
                self.problem(
                    loc, f"unknown investor class {name!r}; known: {', '.join(INVESTOR_CLASS_NAMES)}"
                )
        return tuple(names)

    def _selector(self, loc: locate.Path, raw: _Selector) -> Selector:
        if RULE_ID.fullmatch(raw.id) is None:
            self.problem((*loc, "id"), "an id is lower-case letters, digits, - and _ (at most 64)")
        classes = self._classes((*loc, "classes"), raw.classes)
        residences = raw.residences
        return Selector(
            classes=None if classes is None else frozenset(classes),
            residences=None if residences is None else self._countries((*loc, "residences"), residences),
            flags=self._flags((*loc, "flags"), raw.flags),
        )

    def _requirements(self, loc: locate.Path, raw: _Requirements, not_sanctioned: bool) -> Requirements:
        allow = raw.residence_allow
        return Requirements(
            require_record=raw.require_record,
            not_sanctioned=not_sanctioned,
            min_kyc_level=raw.min_kyc_level,
            investor_classes=self._classes((*loc, "investor_classes"), raw.investor_classes),
            residence_allow=None if allow is None else self._countries((*loc, "residence_allow"), allow),
            residence_deny=self._countries((*loc, "residence_deny"), raw.residence_deny),
            required_flags=self._flags((*loc, "required_flags"), raw.required_flags),
            forbidden_flags=self._flags((*loc, "forbidden_flags"), raw.forbidden_flags),
            max_aml_risk=raw.max_aml_risk,
            acr=raw.acr,
            max_auth_age=raw.max_auth_age,
        )

    def _scope(self, name: str, raw: _Scope) -> ScopeRule:
        loc: locate.Path = ("scopes", name)
        if SCOPE_TOKEN.fullmatch(name) is None:
            self.problem(loc, f"{name!r} is not an RFC 6749 scope token")
        if raw.clients == ["service"] and (raw.require_record or raw.acr or raw.when):
            self.problem(
                loc,
                "a service-only scope cannot need a compliance record, an acr or [[when]] blocks "
                "(client_credentials has no wallet holder)",
            )
        if raw.clients == ["service"] and (raw.claims or raw.access_token_compliance):
            self.problem(loc, "a service-only scope cannot carry claims about a wallet holder")
        self._unique((*loc, "clients"), raw.clients, "client kind")
        self._unique((*loc, "when"), [w.id for w in raw.when], "when id")
        self._subset((*loc, "claims"), raw.claims, RELEASABLE_CLAIMS, "claim")
        self._subset((*loc, "access_token_compliance"), raw.access_token_compliance, CLAIM_FACTS, "fact")
        when = tuple(
            Condition(
                id=w.id,
                selector=self._selector((*loc, "when", i), w),
                requirements=self._requirements((*loc, "when", i), w, w.not_sanctioned),
                reason=w.reason,
            )
            for i, w in enumerate(raw.when)
        )
        return ScopeRule(
            name=name,
            description=raw.description,
            clients=frozenset(raw.clients),
            requirements=self._requirements(loc, raw, raw.not_sanctioned),
            when=when,
            max_token_lifetime=raw.max_token_lifetime,
            claims=frozenset(raw.claims),
            access_token_compliance=frozenset(raw.access_token_compliance),
        )

    def _scope_ref(self, loc: locate.Path, name: str) -> None:
        if name not in self.raw.scopes:
            self.problem(loc, f"scope {name!r} is not defined in [scopes]")

    def _amount(self, loc: locate.Path, value: Any) -> str:
        # A TOML float would round through binary: amounts are strings (or integers) only.
        text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
        if DECIMAL.fullmatch(text) is None or Decimal(text) == 0:
            self.problem(
                loc, f'{value!r} is not a positive decimal amount such as "10000" or "0.5" (a string)'
            )
        return text

    def _chains(self, loc: locate.Path, chains: Iterable[str]) -> frozenset[str]:
        for chain in chains:
            if not is_chain_id(chain):
                self.problem(loc, f'{chain!r} is not a CAIP-2 chain id such as "eip155:1"')
        return frozenset(chains)

    def _subset(self, loc: locate.Path, values: Iterable[str], allowed: tuple[str, ...], what: str) -> None:
        for value in values:
            if value not in allowed:
                self.problem(loc, f"unknown {what} {value!r}; known: {', '.join(allowed)}")

    def _derivatives(self, raw: _Derivatives | None) -> DerivativesRules | None:
        if raw is None:
            return None
        loc: locate.Path = ("details", "derivatives_trade")
        self._subset((*loc, "actions"), raw.actions, ACTIONS, "action")
        self._subset((*loc, "order_types"), raw.order_types, ORDER_TYPES, "order type")
        for currency in raw.notional_currencies:
            if CURRENCY.fullmatch(currency) is None:
                self.problem(
                    (*loc, "notional_currencies"), f"{currency!r} is not a currency code such as USD"
                )
        chains = raw.subaccount_chains
        families = []
        self._unique((*loc, "instruments"), [f.id for f in raw.instruments], "instrument family id")
        for i, fam in enumerate(raw.instruments):
            floc = (*loc, "instruments", i)
            if RULE_ID.fullmatch(fam.id) is None:
                self.problem((*floc, "id"), "an id is lower-case letters, digits, - and _ (at most 64)")
            for pattern in fam.patterns:
                if INSTRUMENT_PATTERN.fullmatch(pattern) is None:
                    self.problem((*floc, "patterns"), f"{pattern!r}: use A-Z, 0-9, - and * only")
            self._scope_ref((*floc, "scope"), fam.scope)
            families.append(InstrumentFamily(fam.id, tuple(fam.patterns), fam.scope))
        self._unique((*loc, "limits"), [lim.id for lim in raw.limits], "limit id")
        limits = []
        for i, lim in enumerate(raw.limits):
            lloc = (*loc, "limits", i)
            notional = (
                None if lim.max_notional is None else self._amount((*lloc, "max_notional"), lim.max_notional)
            )
            limits.append(
                Limit(
                    id=lim.id,
                    selector=self._selector(lloc, lim),
                    reason=lim.reason,
                    max_leverage=lim.max_leverage,
                    max_notional=notional,
                )
            )
        return DerivativesRules(
            actions=tuple(raw.actions),
            order_types=tuple(raw.order_types),
            notional_currencies=tuple(raw.notional_currencies),
            subaccount_chains=None if chains is None else self._chains((*loc, "subaccount_chains"), chains),
            instruments=tuple(families),
            limits=tuple(limits),
        )

    def _withdrawal(self, raw: _Withdrawal | None) -> WithdrawalRules | None:
        if raw is None:
            return None
        loc: locate.Path = ("details", "withdrawal")
        self._scope_ref((*loc, "scope"), raw.scope)
        for asset in raw.assets:
            if CURRENCY.fullmatch(asset) is None:
                self.problem((*loc, "assets"), f"{asset!r} is not an asset symbol such as USDC")
        self._unique((*loc, "limits"), [lim.id for lim in raw.limits], "limit id")
        limits = []
        for i, lim in enumerate(raw.limits):
            lloc = (*loc, "limits", i)
            caps: dict[str, str] = {}
            for asset, amount in lim.max_amount.items():
                if asset not in raw.assets:
                    self.problem((*lloc, "max_amount", asset), f"asset {asset!r} is not in assets")
                caps[asset] = self._amount((*lloc, "max_amount", asset), amount)
            limits.append(
                Limit(
                    id=lim.id,
                    selector=self._selector(lloc, lim),
                    reason=lim.reason,
                    own_account_only=lim.own_account_only,
                    max_amount=MappingProxyType(caps),
                )
            )
        return WithdrawalRules(
            scope=raw.scope,
            assets=tuple(raw.assets),
            destination_chains=self._chains((*loc, "destination_chains"), raw.destination_chains),
            max_destinations=raw.max_destinations,
            limits=tuple(limits),
        )


def _split(key: str) -> locate.Path:
    if not key:
        return ()
    name, index = key.split(".")
    return (name, int(index))
