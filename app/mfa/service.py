"""Second-factor ceremonies of a wallet subject: enrol, verify, recover, remove (docs/MFA.md).

Each operation runs its pure core (app.mfa.totp, .webauthn, .recovery) and then makes one store call that
changes state and appends the audit entry describing it in the same transaction. A refused attempt raises
a typed error (a :class:`~app.mfa.errors.VerificationFailed` is an attempt to count: rate limiting is the
caller's, app.risk) after its ``mfa.failed`` / ``mfa.replayed`` entry has been appended.

Enrolling, removing a factor and issuing recovery codes need a recent strong authentication: the caller
says whether the session has one (``app.mfa.acr.recent_strong_auth``); without it they raise
StrongAuthenticationRequired and change nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.audit.events import FAILURE, SUCCESS, Auditor, RequestMeta
from app.clock import Clock, Entropy, SystemEntropy
from app.mfa import events, recovery, totp, webauthn
from app.mfa.acr import (
    ACR_WALLET,
    ACR_WALLET_MFA,
    AMR_RECOVERY,
    AMR_SIWE,
    AMR_TOTP,
    AMR_WEBAUTHN,
    STRONG_AUTH_WINDOW,
    acr_for,
    combine_amr,
)
from app.mfa.errors import (
    ChallengeUnavailable,
    CounterRegression,
    CredentialExists,
    EnrolmentExpired,
    InvalidCode,
    MfaError,
    NoFactorEnrolled,
    ReplayedCode,
    StrongAuthenticationRequired,
    TooManyFactors,
    UnknownCredential,
    UnknownFactor,
    VerificationFailed,
)
from app.mfa.randomness import random_bytes
from app.mfa.sealing import open_secret, seal_secret
from app.mfa.store import ChallengeRecord, FactorRecord, MfaStore
from app.mfa.subject import parse_subject
from app.mfa.webauthn import Credential, RelyingParty
from app.storage.records import AuditRecord

TOTP = "totp"
WEBAUTHN = "webauthn"
RECOVERY = "recovery"

_REPLAYS = (ReplayedCode, CounterRegression)


@dataclass(frozen=True, slots=True)
class MfaSettings:
    rp: RelyingParty
    totp_issuer: str = "Portcullis"
    enrolment_ttl: timedelta = timedelta(minutes=10)  # to confirm a TOTP enrolment with a first code
    challenge_ttl: timedelta = timedelta(minutes=5)  # a WebAuthn ceremony, start to finish
    recovery_codes: int = recovery.DEFAULT_COUNT
    max_factors: int = 10  # per subject, pending enrolments included


@dataclass(frozen=True, slots=True)
class FactorInfo:
    """A factor as an account page may show it: no secret, no key."""

    factor_id: str
    kind: str
    label: str
    created_at: datetime
    confirmed: bool
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class TotpEnrolment:
    """Shown once: the secret (for manual entry) and the otpauth URI (rendered as a QR code)."""

    factor_id: str
    secret: str
    otpauth_uri: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Verification:
    """A second factor the subject just proved. ``amr`` holds the factor's own RFC 8176 values."""

    subject: str
    method: str  # totp, webauthn or recovery
    factor_id: str | None
    amr: tuple[str, ...]
    at: datetime

    def session_amr(self, base: Sequence[str] = (AMR_SIWE,)) -> tuple[str, ...]:
        """The amr of the session this step-up completes (``siwe`` + the factor + ``mfa``)."""
        return combine_amr(base, self.amr)

    @property
    def acr(self) -> str:
        return acr_for(self.session_amr())


def _info(factor: FactorRecord, *, confirmed_at: datetime | None = None) -> FactorInfo:
    return FactorInfo(
        factor_id=factor.factor_id,
        kind=factor.kind,
        label=factor.label,
        created_at=factor.created_at,
        confirmed=(confirmed_at or factor.confirmed_at) is not None,
        last_used_at=factor.last_used_at,
    )


def _label(label: str, default: str) -> str:
    text = " ".join("".join(c for c in label if c.isprintable()).split())[:64]
    return text or default


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class MfaService:
    """One per app: the clock, the store, the auditor, the server secret and the relying party passed in."""

    def __init__(
        self,
        *,
        clock: Clock,
        store: MfaStore,
        auditor: Auditor,
        secret: bytes,
        settings: MfaSettings,
        entropy: Entropy | None = None,
    ) -> None:
        self.clock = clock
        self.store = store
        self.auditor = auditor
        self.settings = settings
        self.entropy = entropy or SystemEntropy()
        self._secret = secret

    # -- reading --------------------------------------------------------------------------------------------

    async def factors(self, subject: str) -> list[FactorInfo]:
        parse_subject(subject)
        return [_info(f) for f in await self.store.factors(subject)]

    async def has_second_factor(self, subject: str) -> bool:
        """Has ``subject`` a confirmed factor (so a strong authentication must include one)?"""
        parse_subject(subject)
        return any(f.confirmed_at is not None for f in await self.store.factors(subject))

    # -- TOTP -----------------------------------------------------------------------------------------------

    async def enrol_totp(
        self,
        subject: str,
        *,
        recent_strong_auth: bool,
        label: str = "Authenticator app",
        meta: RequestMeta | None = None,
    ) -> TotpEnrolment:
        """Start a TOTP enrolment: a pending factor whose secret is shown once; confirm_totp completes it."""
        meta = meta or RequestMeta()
        now = self.clock.now()
        existing = await self._existing(subject)
        await self._require_strong(subject, existing, recent_strong_auth, meta, "enrol a factor")
        await self._require_room(subject, existing, meta)
        factor_id = self._new_id()
        secret, uri = totp.begin_enrolment(
            subject, self.settings.totp_issuer, key=random_bytes(self.entropy, totp.SECRET_BYTES)
        )
        factor = FactorRecord(
            factor_id=factor_id,
            kind=TOTP,
            label=_label(label, "Authenticator app"),
            created_at=now,
            secret_encrypted=seal_secret(secret, self._secret, factor_id, subject),
        )
        data = {"factor_id": factor_id, "kind": TOTP}
        audit = self._event(events.MFA_ENROLMENT_STARTED, SUCCESS, subject, meta, data=data)
        if not await self.store.add_factor(subject, factor, audit):
            raise RuntimeError("factor id collision")  # 128 random bits: not expected in this universe
        return TotpEnrolment(factor_id, secret, uri, now + self.settings.enrolment_ttl)

    async def confirm_totp(
        self,
        subject: str,
        factor_id: str,
        code: str,
        *,
        recent_strong_auth: bool,
        meta: RequestMeta | None = None,
    ) -> FactorInfo:
        """Complete a TOTP enrolment with the first code the app shows (its step counts as used)."""
        meta = meta or RequestMeta()
        now = self.clock.now()
        existing = await self._existing(subject)
        await self._require_strong(subject, existing, recent_strong_auth, meta, "enrol a factor")
        data: dict[str, Any] = {"factor_id": factor_id, "kind": TOTP}
        factor = next(
            (f for f in existing if f.factor_id == factor_id and f.kind == TOTP and f.confirmed_at is None),
            None,
        )
        if factor is None or factor.secret_encrypted is None:
            raise await self._failed(
                UnknownFactor("no pending TOTP enrolment with that id"), subject, meta, data
            )
        if now >= factor.created_at + self.settings.enrolment_ttl:
            raise await self._failed(
                EnrolmentExpired("the enrolment expired; start again"), subject, meta, data
            )
        secret = open_secret(factor.secret_encrypted, self._secret, factor.factor_id, subject)
        try:
            step = totp.confirm(secret, code, now)
        except VerificationFailed as exc:
            raise await self._failed(exc, subject, meta, data) from None
        audit = self._event(events.MFA_ENROLLED, SUCCESS, subject, meta, data=data)
        if not await self.store.update_after_use(factor_id, now=now, audit=audit, last_step=step):
            raise await self._failed(ReplayedCode("this code was used already"), subject, meta, data)
        return _info(factor, confirmed_at=now)

    async def verify_totp(self, subject: str, code: str, *, meta: RequestMeta | None = None) -> Verification:
        """Step up with a TOTP code from any of the subject's confirmed TOTP factors."""
        meta = meta or RequestMeta()
        now = self.clock.now()
        candidates = [
            f for f in await self._existing(subject) if f.kind == TOTP and f.confirmed_at is not None
        ]
        data: dict[str, Any] = {"kind": TOTP}
        if not candidates:
            raise await self._failed(
                NoFactorEnrolled("no authenticator app is enrolled"), subject, meta, data
            )
        try:
            totp.normalise_code(code)
        except InvalidCode as exc:
            raise await self._failed(exc, subject, meta, data) from None
        replayed: FactorRecord | None = None
        for factor in candidates:
            assert factor.secret_encrypted is not None
            secret = open_secret(factor.secret_encrypted, self._secret, factor.factor_id, subject)
            try:
                step = totp.verify(secret, code, now, factor.last_step)
            except ReplayedCode:
                replayed = factor
                continue
            except InvalidCode:
                continue
            data["factor_id"] = factor.factor_id
            audit = self._event(events.MFA_VERIFIED, SUCCESS, subject, meta, data=data)
            if await self.store.update_after_use(factor.factor_id, now=now, audit=audit, last_step=step):
                return Verification(subject, TOTP, factor.factor_id, AMR_TOTP, now)
            # A concurrent request accepted this step (or a later one) first: the same code, twice.
            raise await self._failed(ReplayedCode("this code was used already"), subject, meta, data)
        if replayed is not None:
            data["factor_id"] = replayed.factor_id
            raise await self._failed(
                ReplayedCode("this code was used already; wait for the next one"), subject, meta, data
            )
        raise await self._failed(InvalidCode("the code does not match"), subject, meta, data)

    # -- WebAuthn -------------------------------------------------------------------------------------------

    async def begin_webauthn_registration(
        self, subject: str, *, recent_strong_auth: bool, meta: RequestMeta | None = None
    ) -> dict[str, Any]:
        """Options for navigator.credentials.create(); the challenge is stored for one use."""
        meta = meta or RequestMeta()
        now = self.clock.now()
        existing = await self._existing(subject)
        await self._require_strong(subject, existing, recent_strong_auth, meta, "enrol a factor")
        await self._require_room(subject, existing, meta)
        audit = self._event(events.MFA_ENROLMENT_STARTED, SUCCESS, subject, meta, data={"kind": WEBAUTHN})
        challenge = await self._issue_challenge(subject, webauthn.CREATE, now, audit)
        registered = [webauthn.decode_id(f.credential_id) for f in existing if f.credential_id is not None]
        handle = webauthn.user_handle(subject, self._secret)
        return webauthn.registration_options(subject, self.settings.rp, registered, challenge, handle)

    async def finish_webauthn_registration(
        self,
        subject: str,
        credential: Credential,
        *,
        recent_strong_auth: bool,
        label: str = "Passkey",
        meta: RequestMeta | None = None,
    ) -> FactorInfo:
        """Verify the navigator.credentials.create() response and store the passkey (UV required)."""
        meta = meta or RequestMeta()
        now = self.clock.now()
        existing = await self._existing(subject)
        await self._require_strong(subject, existing, recent_strong_auth, meta, "enrol a factor")
        data: dict[str, Any] = {"kind": WEBAUTHN}
        challenge = await self._consume_challenge(subject, credential, webauthn.CREATE, now, meta, data)
        try:
            new = webauthn.verify_registration(credential, challenge=challenge, rp=self.settings.rp)
        except VerificationFailed as exc:
            raise await self._failed(exc, subject, meta, data) from None
        await self._require_room(subject, existing, meta)
        factor = FactorRecord(
            factor_id=self._new_id(),
            kind=WEBAUTHN,
            label=_label(label, "Passkey"),
            created_at=now,
            confirmed_at=now,
            credential_id=webauthn.encode_id(new.credential_id),
            public_key=new.public_key,
            sign_count=new.sign_count,
            aaguid=new.aaguid,
        )
        data.update(factor_id=factor.factor_id, aaguid=new.aaguid)
        audit = self._event(events.MFA_ENROLLED, SUCCESS, subject, meta, data=data)
        if not await self.store.add_factor(subject, factor, audit):
            raise await self._failed(
                CredentialExists("this passkey is registered already"), subject, meta, data
            )
        return _info(factor)

    async def begin_webauthn_assertion(
        self, subject: str, *, meta: RequestMeta | None = None
    ) -> dict[str, Any]:
        """Options for navigator.credentials.get() listing the subject's passkeys; UV required."""
        meta = meta or RequestMeta()
        now = self.clock.now()
        passkeys = [f for f in await self._existing(subject) if f.kind == WEBAUTHN and f.credential_id]
        if not passkeys:
            raise await self._failed(
                NoFactorEnrolled("no passkey is registered"), subject, meta, {"kind": WEBAUTHN}
            )
        audit = self._event(events.MFA_CHALLENGE_ISSUED, SUCCESS, subject, meta, data={"kind": WEBAUTHN})
        challenge = await self._issue_challenge(subject, webauthn.GET, now, audit)
        allowed = [webauthn.decode_id(f.credential_id) for f in passkeys if f.credential_id is not None]
        return webauthn.authentication_options(self.settings.rp, allowed, challenge)

    async def finish_webauthn_assertion(
        self, subject: str, credential: Credential, *, meta: RequestMeta | None = None
    ) -> Verification:
        """Step up with a passkey: the challenge is consumed, the signature, UV and counter checked."""
        meta = meta or RequestMeta()
        now = self.clock.now()
        data: dict[str, Any] = {"kind": WEBAUTHN}
        challenge = await self._consume_challenge(subject, credential, webauthn.GET, now, meta, data)
        try:
            credential_id = webauthn.encode_id(webauthn.credential_id_of(credential))
        except VerificationFailed as exc:
            raise await self._failed(exc, subject, meta, data) from None
        factor = next(
            (
                f
                for f in await self._existing(subject)
                if f.kind == WEBAUTHN and f.credential_id == credential_id
            ),
            None,
        )
        if factor is None or factor.public_key is None:
            raise await self._failed(
                UnknownCredential("this passkey is not registered to the subject"), subject, meta, data
            )
        data["factor_id"] = factor.factor_id
        try:
            assertion = webauthn.verify_authentication(
                credential,
                challenge=challenge,
                rp=self.settings.rp,
                public_key=factor.public_key,
                stored_sign_count=factor.sign_count or 0,
                handle=webauthn.user_handle(subject, self._secret),
            )
        except VerificationFailed as exc:
            raise await self._failed(exc, subject, meta, data) from None
        audit = self._event(events.MFA_VERIFIED, SUCCESS, subject, meta, data=data)
        if not await self.store.update_after_use(
            factor.factor_id, now=now, audit=audit, sign_count=assertion.sign_count
        ):
            raise await self._failed(
                CounterRegression("another assertion with this signature counter was accepted first"),
                subject,
                meta,
                data,
            )
        return Verification(subject, WEBAUTHN, factor.factor_id, AMR_WEBAUTHN, now)

    # -- recovery codes -------------------------------------------------------------------------------------

    async def issue_recovery_codes(
        self, subject: str, *, recent_strong_auth: bool, meta: RequestMeta | None = None
    ) -> list[str]:
        """New recovery codes (shown once; earlier ones void). Needs a confirmed factor to recover."""
        meta = meta or RequestMeta()
        now = self.clock.now()
        existing = await self._existing(subject)
        await self._require_strong(subject, existing, recent_strong_auth, meta, "issue recovery codes")
        data: dict[str, Any] = {"kind": RECOVERY}
        if not any(f.confirmed_at is not None for f in existing):
            raise await self._failed(
                NoFactorEnrolled("enrol a factor before recovery codes"), subject, meta, data
            )
        codes, hashes = recovery.generate_codes(self.settings.recovery_codes, self.entropy)
        data["count"] = len(codes)
        audit = self._event(events.MFA_RECOVERY_CODES_ISSUED, SUCCESS, subject, meta, data=data)
        await self.store.replace_recovery_codes(subject, hashes, now, audit)
        return codes

    async def use_recovery_code(
        self, subject: str, code: str, *, meta: RequestMeta | None = None
    ) -> Verification:
        """Step up with a recovery code; each code works once."""
        meta = meta or RequestMeta()
        parse_subject(subject)
        now = self.clock.now()
        data: dict[str, Any] = {"kind": RECOVERY}
        try:
            digest = recovery.code_hash(code)
        except InvalidCode as exc:
            raise await self._failed(exc, subject, meta, data) from None
        audit = self._event(events.MFA_VERIFIED, SUCCESS, subject, meta, data=data)
        if not await self.store.use_recovery_code(subject, digest, now, audit):
            raise await self._failed(InvalidCode("unknown or used recovery code"), subject, meta, data)
        return Verification(subject, RECOVERY, None, AMR_RECOVERY, now)

    # -- removal and housekeeping ---------------------------------------------------------------------------

    async def remove_factor(
        self, subject: str, factor_id: str, *, recent_strong_auth: bool, meta: RequestMeta | None = None
    ) -> None:
        """Remove a factor (a pending one too). With the last confirmed factor go the recovery codes."""
        meta = meta or RequestMeta()
        existing = await self._existing(subject)
        await self._require_strong(subject, existing, recent_strong_auth, meta, "remove a factor")
        kind = next((f.kind for f in existing if f.factor_id == factor_id), None)
        data: dict[str, Any] = {"factor_id": factor_id, "kind": kind}
        audit = self._event(events.MFA_REMOVED, SUCCESS, subject, meta, data=data)
        if kind is None or not await self.store.remove_factor(subject, factor_id, audit):
            raise await self._failed(UnknownFactor("no such factor"), subject, meta, data)

    async def purge_stale(self) -> int:
        """Delete expired challenges and TOTP enrolments never confirmed (run with the nonce purge)."""
        now = self.clock.now()
        return await self.store.purge_stale(now, now - self.settings.enrolment_ttl)

    # -- helpers --------------------------------------------------------------------------------------------

    async def _existing(self, subject: str) -> list[FactorRecord]:
        parse_subject(subject)
        return await self.store.factors(subject)

    def _new_id(self) -> str:
        return self.entropy.token(16)

    def _event(
        self,
        type: str,
        outcome: str,
        subject: str,
        meta: RequestMeta,
        *,
        reason: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> AuditRecord:
        return self.auditor.event(
            type, outcome, meta, actor=subject, reason=reason, data=dict(data or {}), at=self.clock.now()
        )

    async def _failed(
        self, error: MfaError, subject: str, meta: RequestMeta, data: dict[str, Any] | None = None
    ) -> MfaError:
        """Append the refusal's entry and hand the error back for the caller to raise."""
        kind = events.MFA_REPLAYED if isinstance(error, _REPLAYS) else events.MFA_FAILED
        await self.store.record_failure(
            self._event(kind, FAILURE, subject, meta, reason=error.code, data=data)
        )
        return error

    async def _require_strong(
        self, subject: str, existing: list[FactorRecord], recent: bool, meta: RequestMeta, action: str
    ) -> None:
        if recent:
            return
        enrolled = any(f.confirmed_at is not None for f in existing)
        error = StrongAuthenticationRequired(
            f"to {action}, authenticate again"
            + (" with a second factor" if enrolled else " with the wallet")
            + f" (within {int(STRONG_AUTH_WINDOW.total_seconds() // 60)} minutes)",
            acr_values=(ACR_WALLET_MFA,) if enrolled else (ACR_WALLET,),
            max_age=int(STRONG_AUTH_WINDOW.total_seconds()),
        )
        raise await self._failed(error, subject, meta, {"action": action})

    async def _require_room(self, subject: str, existing: list[FactorRecord], meta: RequestMeta) -> None:
        if len(existing) >= self.settings.max_factors:
            raise await self._failed(
                TooManyFactors(f"at most {self.settings.max_factors} factors; remove one first"),
                subject,
                meta,
                {"count": len(existing)},
            )

    async def _issue_challenge(self, subject: str, purpose: str, now: datetime, audit: AuditRecord) -> bytes:
        challenge = random_bytes(self.entropy, webauthn.CHALLENGE_BYTES)
        record = ChallengeRecord(
            challenge_hash=_sha256(challenge),
            subject=subject,
            purpose=purpose,
            issued_at=now,
            expires_at=now + self.settings.challenge_ttl,
        )
        await self.store.put_challenge(record, audit)
        return challenge

    async def _consume_challenge(
        self,
        subject: str,
        credential: Credential,
        purpose: str,
        now: datetime,
        meta: RequestMeta,
        data: dict[str, Any],
    ) -> bytes:
        """The challenge the response answers, consumed: it must be live, ours, this subject's, this
        ceremony's. Consumed before the response is checked, so a bad response burns it too."""
        try:
            challenge = webauthn.challenge_of(credential)
        except VerificationFailed as exc:
            raise await self._failed(exc, subject, meta, data) from None
        if not await self.store.consume_challenge(_sha256(challenge), subject, purpose, now):
            raise await self._failed(
                ChallengeUnavailable("unknown, used or expired challenge; start again"), subject, meta, data
            )
        return challenge
