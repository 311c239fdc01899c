"""``portcullis registry``: the compliance team's tool for the ComplianceRegistry (contracts/README.md).

``grant``, ``revoke``, ``freeze`` and ``unfreeze`` write records, ``deploy``, ``roles grant|revoke``,
``pause`` and ``unpause`` administer the registry, all signed with PORTCULLIS_REGISTRY_KEY or an encrypted
keystore; ``show``, ``history`` and ``roles`` read. Every write that is sent leaves an
``operator.registry_write`` entry in the audit log (app/cli/registry_audit.py). Every failure the operator
can act on is a typed RegistryCliError (or a RegistryInputError for bad input), printed as one line with
exit code 2 (1 when the audit log cannot be written).

This module holds the command line, the subcommands and their output; app/cli/registry_chain.py talks to
the chain (target, signer, connection, transactions, revert decoding). web3 is imported inside ``run``:
importing it takes about a second, and every ``portcullis`` command builds this parser.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from app.audit import events
from app.chain.changes import reason_text
from app.chain.iso3166 import country_by_numeric
from app.cli import registry_csv as rc
from app.cli.failures import EXIT_INTERRUPTED, EXIT_USAGE
from app.cli.registry_audit import Operator, OperatorLog, entry_data
from app.cli.registry_chain import (
    DEV_COMPLIANCE_KEY,
    REVERT_SENTENCES,
    ROLE_NAMES,
    Call,
    GrantInterrupted,
    MissingRoleError,
    RegistryCliError,
    RegistryPausedError,
    RevertDecoder,
    RpcUnreachableError,
    Session,
    SignerError,
    Target,
    Writer,
    abi_signature,
    account_topic,
    deploy_registry,
    dev_chain_urls,
    dev_signer,
    failure_reason,
    load_abi,
    load_signer,
    parse_role,
    redact_url,
    resolve_target,
    role_id,
    role_name,
    rpc_message,
    rule_abi,
)
from app.settings import Settings

# The names app/cli/main.py, docs/REGISTRY_CLI.md and the tests use as ``registry.<name>``; the chain-facing
# ones are defined in app/cli/registry_chain.py and re-exported here.
__all__ = [
    "DEV_COMPLIANCE_KEY",
    "REVERT_SENTENCES",
    "MissingRoleError",
    "RegistryCliError",
    "RegistryPausedError",
    "RevertDecoder",
    "SignerError",
    "abi_signature",
    "add_parser",
    "dev_chain_urls",
    "dev_signer",
    "load_abi",
    "redact_url",
    "run",
]

DEFAULT_RECEIPT_TIMEOUT = 120.0
RECORD_EVENTS = ("RecordSet", "RecordRevoked", "RecordFrozen", "RecordUnfrozen")
ROLE_EVENTS = ("RoleGranted", "RoleRevoked")
PROGRESS_WIDTH = 30
# The per-record options of `grant` (argparse dest -> option), which a --csv file gives per row instead.
GRANT_OPTIONS: Mapping[str, str] = {
    "residence": "--residence",
    "investor_class": "--class",
    "kyc_level": "--kyc-level",
    "aml_risk": "--aml-risk",
    "flags": "--flags",
    "valid_until": "--valid-until",
    "subject": "--subject",
    "evidence": "--evidence",
}
# What an operator entry's ``argv`` shows of a write (argparse dest -> option). Never a key: keys come from
# settings. --subject and --evidence are shown as <hashed>: the entry's ``args`` hold what went on chain.
SHOWN_POSITIONALS = ("role_action", "role", "address")
SHOWN_OPTIONS: Mapping[str, str] = {
    **GRANT_OPTIONS,
    "csv": "--csv",
    "batch_size": "--batch-size",
    "reason": "--reason",
    "admin": "--admin",
    "chain": "--chain",
    "operator": "--operator",
}
HASHED_OPTIONS = ("subject", "evidence")
MAX_OPERATOR_LABEL = 64


# ---------------------------------------------------------------- output


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


class Output:
    """Results on stdout (text or one JSON document), progress and errors on stderr."""

    def __init__(self, as_json: bool, out: TextIO, err: TextIO) -> None:
        self.as_json = as_json
        self.out = out
        self.err = err

    def emit(self, data: Mapping[str, Any], lines: Sequence[str]) -> None:
        if self.as_json:
            self.out.write(json.dumps(_jsonable(dict(data)), sort_keys=True) + "\n")
        else:
            self.out.write("".join(line + "\n" for line in lines))

    def error(self, exc: BaseException) -> None:
        message = " ".join(str(exc).split())  # one line, whatever the message held
        self.err.write(f"portcullis registry: {message}\n")
        if self.as_json:
            self.out.write(json.dumps({"error": message, "type": type(exc).__name__}) + "\n")


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal, one line per update otherwise."""

    def __init__(self, stream: TextIO, total: int, done: int) -> None:
        self.stream = stream
        self.total = total
        self.done = done
        self.tty = stream.isatty()

    def update(self, done: int, note: str) -> None:
        self.done = done
        share = done / self.total if self.total else 1.0
        bar = "#" * int(share * PROGRESS_WIDTH)
        line = f"[{bar:<{PROGRESS_WIDTH}}] {done}/{self.total} rows {note}"
        self.stream.write(f"\r{line}" if self.tty else f"{line}\n")
        if self.tty and done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def _write_lines(result: Mapping[str, Any], label: str) -> list[str]:
    if result["dry_run"]:
        return [
            f"dry run, nothing sent: {label}",
            f"  {result['function']}({json.dumps(_jsonable(result['args']))})",
            f"  from {result['from']}, estimated gas {result['estimated_gas']:,}",
        ]
    return [f"{label}: tx {result['tx']} in block {result['block']} (gas used {result['gas_used']:,})"]


# ---------------------------------------------------------------- commands


class Context:
    """What every command needs: settings, parsed options, the output, and the chain (opened lazily)."""

    def __init__(self, settings: Settings, args: argparse.Namespace, output: Output) -> None:
        self.settings = settings
        self.args = args
        self.output = output
        self._target: Target | None = None

    @property
    def target(self) -> Target:
        if self._target is None:
            self._target = resolve_target(self.settings, self.args.chain)
        return self._target

    def session(self) -> Session:
        return Session.open(self.target)

    def writer(self, *, deploying: bool = False) -> Writer:
        """The signer, the chain and (unless --dry-run) the audit log, checked in that order before
        anything is sent."""
        operator_label(self.args)
        if deploying:
            self._target = resolve_target(self.settings, self.args.chain, deploying=True)
        signer = load_signer(self.settings, self.target)  # before connecting: a missing signer fails fast
        session = Session.open_chain(self.target) if deploying else self.session()
        if not self.args.dry_run:
            self.audit_log.check()
        return Writer(session, signer, dry_run=self.args.dry_run, timeout=self.args.timeout)

    @property
    def audit_log(self) -> OperatorLog:
        return OperatorLog(self.settings)

    def where(self, session: Session) -> dict[str, Any]:
        return {"chain_id": session.target.chain_id, "registry": session.target.registry}

    def audited(
        self,
        writer: Writer,
        transactions: Sequence[str],
        details: Mapping[str, Any],
        *,
        registry: str | None = None,
        outcome: str = events.SUCCESS,
        reason: str | None = None,
    ) -> int:
        """Append the write's operator entry (nothing for a dry run: returns 0)."""
        if writer.dry_run:
            return 0
        operator = Operator.of(operator_label(self.args), writer.signer.address)
        command = f"registry {self.args.registry_command}"
        if getattr(self.args, "role_action", None):
            command += f" {self.args.role_action}"
        data = entry_data(
            operator,
            command,
            shown_argv(self.args),
            writer.session.target.chain_id,
            registry or writer.session.target.registry,
            transactions,
            _jsonable(dict(details)),
        )
        return self.audit_log.record(operator, data, outcome, reason or command)


def operator_label(args: argparse.Namespace) -> str | None:
    """``--operator LABEL``: printable, no blanks at either end, at most 64 characters."""
    label: str | None = getattr(args, "operator", None)
    if label is None:
        return None
    if not label.strip() or label != label.strip() or len(label) > MAX_OPERATOR_LABEL:
        raise rc.RegistryInputError(
            f"--operator: give 1..{MAX_OPERATOR_LABEL} characters (no blanks at the ends)"
        )
    if not label.isprintable():
        raise rc.RegistryInputError("--operator: only printable characters")
    return label


def shown_argv(args: argparse.Namespace) -> list[str]:
    """The command as the operator entry records it: positionals, then the options given."""
    argv = ["registry", args.registry_command]
    argv += [str(v) for dest in SHOWN_POSITIONALS if (v := getattr(args, dest, None)) is not None]
    for dest, option in SHOWN_OPTIONS.items():
        value = getattr(args, dest, None)
        if value is None or (dest == "batch_size" and getattr(args, "csv", None) is None):
            continue
        argv += [option, "<hashed>" if dest in HASHED_OPTIONS else str(value)]
    return argv


def _option_error(exc: rc.FieldError) -> rc.RegistryInputError:
    option = "ADDRESS" if exc.field == "address" else "--" + exc.field.replace("_", "-")
    return rc.RegistryInputError(f"{option}: {exc.reason}")


def _grant_text(args: argparse.Namespace) -> rc.GrantText:
    needed = {"--residence": args.residence, "--class": args.investor_class}
    needed |= {"--kyc-level": args.kyc_level, "--valid-until": args.valid_until}
    missing = [option for option, value in needed.items() if value is None]
    if missing:
        raise rc.RegistryInputError(f"grant ADDRESS needs {', '.join(missing)}")
    return rc.GrantText(
        address=args.address,
        residence=args.residence,
        investor_class=args.investor_class,
        kyc_level=args.kyc_level,
        valid_until=args.valid_until,
        aml_risk=args.aml_risk,
        flags=args.flags,
        subject=args.subject,
        evidence=args.evidence,
    )


def cmd_grant(ctx: Context) -> int:
    args = ctx.args
    if (args.address is None) == (args.csv is None):
        raise rc.RegistryInputError("grant needs either ADDRESS (with its options) or --csv FILE")
    if args.csv is not None:
        given = [option for dest, option in GRANT_OPTIONS.items() if getattr(args, dest) is not None]
        if given:
            raise rc.RegistryInputError(
                f"with --csv every row carries its own fields: drop {', '.join(given)}"
            )
        return grant_csv(ctx, Path(args.csv))
    try:
        grant = rc.parse_grant(_grant_text(args))
    except rc.FieldError as exc:
        raise _option_error(exc) from None
    writer = ctx.writer()
    try:
        rc.check_expiry(grant.record.valid_until, writer.session.now())
    except rc.FieldError as exc:
        raise _option_error(exc) from None
    call = Call(
        "setRecord",
        (grant.account, grant.record.as_abi()),
        {"account": grant.account, "input": rc.describe_input(grant.record)},
        f"grant {grant.account}: {rc.summary_line(grant.record)}",
    )
    result, seq = _submit(ctx, writer, call)
    ctx.output.emit(
        {"action": "grant", "account": grant.account, **ctx.where(writer.session), **result, **_seq(seq)},
        _write_lines(result, call.label),
    )
    return 0


def _submit(ctx: Context, writer: Writer, call: Call) -> tuple[dict[str, Any], int]:
    """Send ``call`` and append its operator entry: the result and the entry's sequence number. A
    transaction sent but not confirmed (not mined in time, Ctrl-C) may still be mined: it is recorded as a
    failure with its hash under ``unconfirmed``."""
    try:
        result = writer.submit(call)
    except (RegistryCliError, KeyboardInterrupt) as exc:
        if writer.in_flight is not None:
            details = {"function": call.function, "args": call.shown, "unconfirmed": [writer.in_flight]}
            _audit_failure(ctx, writer, [writer.in_flight], details, exc)
        raise
    return result, ctx.audited(writer, _sent(result), _details(result))


def _audit_failure(
    ctx: Context,
    writer: Writer,
    transactions: list[str],
    details: dict[str, Any],
    failed: BaseException,
) -> None:
    """The entry of a write that stopped part-way; a failure to append it is added to the run's message."""
    try:
        ctx.audited(
            writer, transactions, details, outcome=events.FAILURE, reason=f"stopped: {type(failed).__name__}"
        )
    except RegistryCliError as exc:
        if isinstance(failed, RegistryCliError):
            failed.add_hint(str(exc))
        else:
            raise


def _sent(result: Mapping[str, Any]) -> list[str]:
    return [] if result["dry_run"] else [result["tx"]]


def _details(result: Mapping[str, Any]) -> dict[str, Any]:
    return {"function": result["function"], "args": result["args"], "blocks": [result.get("block")]}


def _seq(seq: int) -> dict[str, Any]:
    return {"audit_seq": seq} if seq else {}


def _read_csv(path: Path) -> list[rc.GrantRow]:
    """Every row checked against every rule before the chain is asked anything: the expiry window against
    this machine's clock (and again against the chain's time before sending)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            return rc.read_grant_csv(stream, path.name, now=int(time.time()))
    except OSError as exc:
        raise rc.RegistryInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise rc.RegistryInputError(f"{path.name}: not UTF-8 text") from None


def _lines(rows: Sequence[rc.GrantRow]) -> str:
    return f"lines {rows[0].line}-{rows[-1].line}" if len(rows) > 1 else f"line {rows[0].line}"


def _batch_call(rows: Sequence[rc.GrantRow]) -> Call:
    accounts = [row.grant.account for row in rows]
    return Call(
        "setRecords",
        (accounts, [row.grant.record.as_abi() for row in rows]),
        {"accounts": accounts, "inputs": [rc.describe_input(row.grant.record) for row in rows]},
        f"grant {len(rows)} rows ({_lines(rows)})",
    )


def _pending(session: Session, rows: list[rc.GrantRow]) -> list[rc.GrantRow]:
    stored = session.records([row.grant.account for row in rows])
    return [
        row for row, have in zip(rows, stored, strict=True) if not rc.already_applied(row.grant.record, have)
    ]


def grant_csv(ctx: Context, path: Path) -> int:
    """Batches of at most --batch-size rows; rows whose on-chain record already equals them are skipped."""
    rows = _read_csv(path)
    writer = ctx.writer()
    rc.check_rows_expiry(path.name, rows, writer.session.now())
    pending = _pending(writer.session, rows)
    size = ctx.args.batch_size
    batches = [pending[i : i + size] for i in range(0, len(pending), size)]
    progress = Progress(ctx.output.err, len(rows), len(rows) - len(pending))
    results: list[dict[str, Any]] = []
    under_way: tuple[int, Sequence[rc.GrantRow]] | None = None
    try:  # Ctrl-C may land anywhere in the loop, a progress line's write included
        for number, batch in enumerate(batches, start=1):
            under_way = (number, batch)
            try:
                result = writer.submit(_batch_call(batch))
            except RegistryCliError as exc:
                exc.add_context(
                    f"batch {number}/{len(batches)} ({_lines(batch)}) failed with "
                    f"{progress.done}/{len(rows)} rows applied (re-run to resume)"
                )
                raise
            accounts = [row.grant.account for row in batch]
            results.append(
                {**result, "lines": [batch[0].line, batch[-1].line], "rows": len(batch), "accounts": accounts}
            )
            under_way = None
            note = "estimated" if result["dry_run"] else f"tx {result['tx']}"
            progress.update(progress.done + len(batch), f"batch {number}/{len(batches)} {note}")
    except KeyboardInterrupt:
        interrupted = _interrupted(writer, results, len(batches), under_way)
        _audit_csv(ctx, writer, path, rows, results, interrupted)
        raise interrupted from None
    except RegistryCliError as exc:
        _audit_csv(ctx, writer, path, rows, results, exc)
        raise
    seq = _audit_csv(ctx, writer, path, rows, results, None)
    return _grant_csv_report(ctx, writer, path, rows, pending, results, seq)


def _audit_csv(
    ctx: Context,
    writer: Writer,
    path: Path,
    rows: list[rc.GrantRow],
    results: list[dict[str, Any]],
    failed: RegistryCliError | None,
) -> int:
    """One operator entry for the batches sent; a run that stopped early records what went through (as a
    failure naming the error, with a batch sent but not confirmed under ``unconfirmed``), and none when
    nothing was sent (a dry run, or every row already applied)."""
    sent = [r for r in results if not r["dry_run"]]
    unconfirmed = [writer.in_flight] if failed is not None and writer.in_flight is not None else []
    if not sent and not unconfirmed:
        return 0
    details: dict[str, Any] = {
        "function": "setRecords",
        "csv": path.name,
        "rows": len(rows),
        "batches": [
            {"tx": r["tx"], "block": r["block"], "lines": r["lines"], "accounts": r["accounts"]} for r in sent
        ],
    }
    transactions = [r["tx"] for r in sent]
    if failed is None:
        return ctx.audited(writer, transactions, details)
    if unconfirmed:
        details["unconfirmed"] = unconfirmed
    _audit_failure(ctx, writer, transactions + unconfirmed, details, failed)
    return 0


def _interrupted(
    writer: Writer,
    done: list[dict[str, Any]],
    total: int,
    under_way: tuple[int, Sequence[rc.GrantRow]] | None,
) -> GrantInterrupted:
    """What went through before Ctrl-C, and what became of the batch that was under way (None: Ctrl-C came
    between batches, after the last one confirmed)."""
    went = ", ".join(f"{_span(r['lines'])} in tx {r['tx']}" for r in done if not r["dry_run"])
    through = (
        f"{len(done)} of {total} batches went through ({went})"
        if went
        else f"none of {total} batches went through"
    )
    if under_way is None:
        pending = "no batch was under way"
    elif writer.in_flight is not None:
        number, batch = under_way
        pending = f"batch {number} ({_lines(batch)}) was sent as tx {writer.in_flight} but not confirmed"
    else:
        number, batch = under_way
        pending = f"batch {number} ({_lines(batch)}) was not sent"
    return GrantInterrupted(
        f"interrupted: {through}; {pending}; re-run the same command to resume (applied rows are skipped)"
    )


def _span(lines: Sequence[int]) -> str:
    return f"lines {lines[0]}-{lines[1]}" if lines[0] != lines[1] else f"line {lines[0]}"


def _grant_csv_report(
    ctx: Context,
    writer: Writer,
    path: Path,
    rows: list[rc.GrantRow],
    pending: list[rc.GrantRow],
    results: list[dict[str, Any]],
    seq: int,
) -> int:
    skipped = len(rows) - len(pending)
    verb = "would send" if writer.dry_run else "sent"
    lines = [f"{path.name}: {len(rows)} rows, {skipped} already applied, {verb} {len(pending)}"]
    for result in results:
        lines += [f"  lines {result['lines'][0]}-{result['lines'][1]}: {_batch_text(result)}"]
    data = {
        "action": "grant",
        "csv": str(path),
        **ctx.where(writer.session),
        "rows": len(rows),
        "skipped": skipped,
        "sent": 0 if writer.dry_run else len(pending),
        "dry_run": writer.dry_run,
        "batches": [{k: v for k, v in r.items() if k not in ("args", "accounts")} for r in results],
        **_seq(seq),
    }
    ctx.output.emit(data, lines)
    return 0


def _batch_text(result: Mapping[str, Any]) -> str:
    if result["dry_run"]:
        return f"setRecords of {result['rows']} rows, estimated gas {result['estimated_gas']:,}"
    return f"tx {result['tx']} in block {result['block']} (gas used {result['gas_used']:,})"


def _address(text: str) -> str:
    return rc.parse_address(text)


def _simple_write(ctx: Context, action: str, call: Call, writer: Writer | None = None) -> int:
    writer = writer or ctx.writer()
    result, seq = _submit(ctx, writer, call)
    shown = {"account": call.args[-1]} if call.args else {}
    ctx.output.emit(
        {"action": action, **shown, **ctx.where(writer.session), **result, **_seq(seq)},
        _write_lines(result, call.label),
    )
    return 0


def cmd_revoke(ctx: Context) -> int:
    account, reason = _address(ctx.args.address), rc.reason_bytes32(ctx.args.reason)
    label = f"revoke {account} (reason {reason_text(reason)!r})"
    return _simple_write(
        ctx, "revoke", Call("revoke", (account, reason), {"account": account, "reason": reason}, label)
    )


def cmd_freeze(ctx: Context) -> int:
    account, reason = _address(ctx.args.address), rc.reason_bytes32(ctx.args.reason)
    label = f"freeze {account} (reason {reason_text(reason)!r})"
    return _simple_write(
        ctx, "freeze", Call("freeze", (account, reason), {"account": account, "reason": reason}, label)
    )


def cmd_unfreeze(ctx: Context) -> int:
    account = _address(ctx.args.address)
    return _simple_write(
        ctx, "unfreeze", Call("unfreeze", (account,), {"account": account}, f"unfreeze {account}")
    )


def _show_lines(data: Mapping[str, Any]) -> list[str]:
    lines = [
        f"account       {data['account']}",
        f"chain         {data['chain_id']} registry {data['registry']}",
    ]
    record = data["record"]
    if record is None:
        lines.append("record        none")
    else:
        country = country_by_numeric(record["residence_numeric"])
        lines += [
            f"status        {record['status']}",
            f"residence     {record['residence']} ({record['residence_numeric']}"
            f"{', ' + country.name if country else ''})",
            f"class         {record['class']}",
            f"kyc level     {record['kyc_level']}",
            f"aml risk      {record['aml_risk']}",
            f"flags         {', '.join(record['flags']) or '-'}",
            f"valid until   {record['valid_until']} (expires {record['expires_at']})",
            f"verified at   {record['verified_at']} by {record['attester']}",
            f"subject id    {record['subject_id']}",
            f"evidence ref  {record['evidence_ref']}",
        ]
        if record["revoked"]:
            lines.append(f"revoked       {record['revoked_at']} (reason {record['revocation_reason']!r})")
    rule = data["rule"]
    rule_text = (
        f"required {','.join(rule['required_flags']) or '-'}, "
        f"forbidden {','.join(rule['forbidden_flags']) or '-'}, "
        f"class >= {rule['min_class']}, kyc >= {rule['min_kyc_level']}, aml <= {rule['max_aml_risk']}"
    )
    lines += [
        f"verified      {'yes' if data['verified'] else 'no'} (isVerified)",
        f"eligible      {'yes' if data['eligible'] else 'no'} (isEligible: {rule_text})",
    ]
    if data["paused"]:
        lines.append("registry      PAUSED (grants and unfreezes are blocked)")
    return lines


def cmd_show(ctx: Context) -> int:
    account = _address(ctx.args.address)
    session = ctx.session()
    functions = session.contract.functions
    record = session.record(account)
    rule = session.target.eligibility
    data = {
        "account": account,
        **ctx.where(session),
        "record": rc.describe_stored(record, session.now()) if record.exists else None,
        "verified": bool(functions.isVerified(account).call()),
        "eligible": bool(functions.isEligible(account, rule_abi(rule)).call()),
        "rule": rc.describe_rule(rule),
        "paused": bool(functions.paused().call()),
    }
    ctx.output.emit(data, _show_lines(data))
    return 0


def _event_details(event: Any) -> dict[str, Any]:
    name, values = event["event"], event["args"]
    if name == "RecordSet":
        record = rc.StoredRecord.from_abi(values["record"])
        return {
            "by": values["attester"],
            "record": rc.describe_input(record),
            "text": rc.summary_line(record),
        }
    if name == "RecordUnfrozen":
        return {"by": values["by"], "text": ""}
    by = values["revoker"] if name == "RecordRevoked" else values["by"]
    reason = reason_text(values["reason"])
    return {"by": by, "reason": reason, "text": f"reason {reason!r}"}


def cmd_history(ctx: Context) -> int:
    account = _address(ctx.args.address)
    session = ctx.session()
    events = []
    for event in session.logs(RECORD_EVENTS, ctx.args.from_block, account_topic(account)):
        block = int(event["blockNumber"])
        events.append(
            {
                "event": event["event"],
                "block": block,
                "tx": "0x" + bytes(event["transactionHash"]).hex(),
                "time": rc.iso_time(session.block_time(block)),
                "revision": int(event["args"]["revision"]),
                **_event_details(event),
            }
        )
    lines = [f"{account}: {len(events)} events on chain {session.target.chain_id}"]
    lines += [
        " ".join(
            part
            for part in (e["time"], f"block {e['block']}", f"{e['event']:<14}", f"by {e['by']}", e["text"])
            if part
        )
        + f" tx {e['tx']}"
        for e in events
    ]
    for e in events:
        e.pop("text")
    ctx.output.emit({"account": account, **ctx.where(session), "events": events}, lines)
    return 0


def cmd_roles(ctx: Context) -> int:
    """``roles``: who holds which role; ``roles grant|revoke ROLE ADDRESS``: change it."""
    args = ctx.args
    if args.role_action is None:
        if args.role is not None:
            raise rc.RegistryInputError("roles takes grant|revoke ROLE ADDRESS, or nothing to list them")
        if args.dry_run:
            raise rc.RegistryInputError("--dry-run is for roles grant|revoke, not the listing")
        return _list_roles(ctx)
    if args.role is None or args.address is None:
        raise rc.RegistryInputError(f"roles {args.role_action} needs ROLE and ADDRESS")
    role, account = parse_role(args.role), _address(args.address)
    writer = ctx.writer()
    holds = bool(writer.session.contract.functions.hasRole(role_id(role), account).call())
    if holds == (args.role_action == "grant"):
        state = "already holds" if holds else "does not hold"
        ctx.output.emit(
            {"action": f"roles {args.role_action}", "role": role, "account": account, "sent": False},
            [f"{account} {state} {role}: nothing sent"],
        )
        return 0
    function = "grantRole" if args.role_action == "grant" else "revokeRole"
    label = f"{args.role_action} {role} {'to' if args.role_action == 'grant' else 'from'} {account}"
    call = Call(function, (role_id(role), account), {"role": role, "account": account}, label)
    return _simple_write(ctx, f"roles {args.role_action}", call, writer)


def cmd_pause(ctx: Context) -> int:
    return _pause_write(ctx, pause=True)


def cmd_unpause(ctx: Context) -> int:
    return _pause_write(ctx, pause=False)


def _pause_write(ctx: Context, *, pause: bool) -> int:
    """pause (PAUSER_ROLE) stops grant and unfreeze; unpause (DEFAULT_ADMIN_ROLE) restores them."""
    writer = ctx.writer()
    if bool(writer.session.contract.functions.paused().call()) == pause:
        raise RegistryCliError(f"the registry is {'already' if pause else 'not'} paused: nothing sent")
    name = "pause" if pause else "unpause"
    what = "grant and unfreeze blocked" if pause else "grant and unfreeze work again"
    return _simple_write(
        ctx, name, Call(name, (), {}, f"{name} registry {writer.session.target.registry} ({what})"), writer
    )


def cmd_deploy(ctx: Context) -> int:
    """Deploy a ComplianceRegistry with the signer's key; print its address and the setting to add."""
    admin = _address(ctx.args.admin) if ctx.args.admin is not None else None
    writer = ctx.writer(deploying=True)
    admin = admin or writer.signer.address
    result = deploy_registry(writer, admin)
    target = writer.session.target
    where = {"chain_id": target.chain_id}
    if result["dry_run"]:
        ctx.output.emit(
            {"action": "deploy", **where, **result},
            [
                f"dry run, nothing sent: deploy ComplianceRegistry on chain {target.chain_id}",
                f"  constructor(admin={admin})",
                f"  from {result['from']}, estimated gas {result['estimated_gas']:,}",
            ],
        )
        return 0
    registry = result["registry"]
    details = {**_details(result), "deployed": registry}
    seq = ctx.audited(writer, [result["tx"]], details, registry=registry)
    setting = chains_setting(ctx.settings, target, registry)
    line = f"PORTCULLIS_CHAINS='{setting}'"
    if ctx.args.chains_file is not None:
        # The file is configuration the server reads (PORTCULLIS_CHAINS_FILE): the RPC URLs as configured.
        configured = chains_setting(ctx.settings, target, registry, shown=False)
        write_chains_file(Path(ctx.args.chains_file), configured)
    ctx.output.emit(
        {"action": "deploy", **where, **result, "settings": {"PORTCULLIS_CHAINS": setting}, **_seq(seq)},
        [
            f"deployed ComplianceRegistry at {registry} on chain {target.chain_id}: tx {result['tx']} "
            f"in block {result['block']} (gas used {result['gas_used']:,}); admin {admin}",
            "add this setting (the server and this CLI read the registry from it):",
            f"  {line}",
            "then hand out the roles: portcullis registry roles grant ATTESTER|REVOKER|PAUSER ADDRESS",
        ],
    )
    return 0


def chains_setting(settings: Settings, target: Target, registry: str, *, shown: bool = True) -> str:
    """PORTCULLIS_CHAINS with ``registry`` set on the target chain (the other entries as configured).
    When ``shown`` (printed), RPC URLs with a path or query (often an API key) are written as
    scheme://host:port/<path hidden>."""
    if not settings.chains:  # the development chain of `make run`
        entries = [{"chain_id": target.chain_id, "rpc_urls": list(target.rpc_urls), "registry": registry}]
        return json.dumps(entries)
    entries = []
    for chain in settings.chains:
        entry = chain.model_dump(mode="json", exclude_unset=True)
        entry["rpc_urls"] = [_shown_rpc(url) if shown else url for url in chain.rpc_urls]
        if chain.chain_id == target.chain_id:
            entry["registry"] = registry
        entries.append(entry)
    return json.dumps(entries)


def write_chains_file(path: Path, setting: str) -> None:
    """Replace ``path`` whole (a reader never sees half a file), readable by its owner only: RPC URLs often
    carry an API key."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(setting + "\n", encoding="utf-8")
    partial.chmod(0o600)
    partial.replace(path)


def _shown_rpc(url: str) -> str:
    bare = redact_url(url)
    return url if url.rstrip("/") == bare else f"{bare}/<path hidden>"


def _list_roles(ctx: Context) -> int:
    session = ctx.session()
    candidates: dict[bytes, set[str]] = {}
    for event in session.logs(ROLE_EVENTS, ctx.args.from_block):
        candidates.setdefault(bytes(event["args"]["role"]), set()).add(event["args"]["account"])
    for name in ROLE_NAMES:
        candidates.setdefault(role_id(name), set())
    has_role = session.contract.functions.hasRole
    roles = {
        role_name(role): sorted(a for a in accounts if has_role(role, a).call())
        for role, accounts in sorted(candidates.items(), key=lambda item: _role_order(item[0]))
    }
    lines = [f"roles on registry {session.target.registry} (chain {session.target.chain_id})"]
    lines += [f"{name:<20} {', '.join(holders) or '-'}" for name, holders in roles.items()]
    ctx.output.emit({**ctx.where(session), "roles": roles}, lines)
    return 0


def _role_order(role: bytes) -> tuple[int, str]:
    name = role_name(role)
    return (ROLE_NAMES.index(name) if name in ROLE_NAMES else len(ROLE_NAMES), name)


COMMANDS: Mapping[str, Callable[[Context], int]] = {
    "grant": cmd_grant,
    "revoke": cmd_revoke,
    "freeze": cmd_freeze,
    "unfreeze": cmd_unfreeze,
    "show": cmd_show,
    "history": cmd_history,
    "roles": cmd_roles,
    "deploy": cmd_deploy,
    "pause": cmd_pause,
    "unpause": cmd_unpause,
}


# ---------------------------------------------------------------- the command line


def _batch_size(text: str) -> int:
    value = int(text)
    if not 1 <= value <= rc.MAX_BATCH:
        raise argparse.ArgumentTypeError(f"must be 1..{rc.MAX_BATCH}")
    return value


def _common_options(parser: argparse.ArgumentParser, *, write: bool, defaults: bool) -> None:
    """The global options. On the ``registry`` parser they carry the defaults; on each subcommand they are
    SUPPRESSed unless given, so ``registry --json show X`` and ``registry show X --json`` mean the same."""

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--chain", type=int, default=default(None), help="chain id (default: the first configured)"
    )
    parser.add_argument("--json", action="store_true", default=default(False), help="machine-readable output")
    if write:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            default=default(False),
            help="print what would be sent; send nothing",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=default(DEFAULT_RECEIPT_TIMEOUT),
            help=f"seconds to wait for each receipt (default {DEFAULT_RECEIPT_TIMEOUT:g})",
        )
        parser.add_argument(
            "--operator",
            metavar="LABEL",
            default=default(None),
            help="who runs this, for the audit entry (default: the OS user)",
        )


def _add_grant(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    grant = actions.add_parser("grant", help="write a record (one wallet, or a CSV of them)")
    _common_options(grant, write=True, defaults=False)
    grant.add_argument("address", nargs="?", metavar="ADDRESS", help="the wallet (checksummed or lowercase)")
    grant.add_argument("--csv", metavar="FILE", help="grant every row of FILE (see docs/REGISTRY_CLI.md)")
    grant.add_argument(
        "--batch-size", type=_batch_size, default=rc.MAX_BATCH, help="rows per transaction (<= 100)"
    )
    grant.add_argument("--residence", metavar="CC", help="ISO 3166-1 alpha-2, alpha-3 or numeric")
    grant.add_argument(
        "--class", dest="investor_class", metavar="CLASS", help="retail|professional|eligible_counterparty"
    )
    grant.add_argument("--kyc-level", metavar="N", help="1 simplified, 2 standard, 3 enhanced")
    grant.add_argument("--aml-risk", metavar="N", help="1 low (default), 2 medium, 3 high")
    grant.add_argument(
        "--flags", help="comma-separated: us_person,appropriateness_derivatives,accredited,pep"
    )
    grant.add_argument("--valid-until", metavar="DATE", help="YYYY-MM-DD (valid through that day, UTC)")
    grant.add_argument("--subject", metavar="ID", help="links one person's wallets (hashed unless 0x+64 hex)")
    grant.add_argument("--evidence", metavar="REF", help="points to the KYC files (hashed unless 0x+64 hex)")


def _add_writes(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, help_text in (("revoke", "revoke a record"), ("freeze", "freeze a wallet (emergency)")):
        parser = actions.add_parser(name, help=help_text)
        _common_options(parser, write=True, defaults=False)
        parser.add_argument("address", metavar="ADDRESS")
        parser.add_argument("--reason", required=True, help="up to 32 bytes of UTF-8 (e.g. a case number)")
    unfreeze = actions.add_parser("unfreeze", help="clear the FROZEN flag")
    _common_options(unfreeze, write=True, defaults=False)
    unfreeze.add_argument("address", metavar="ADDRESS")


def _add_admin(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    deploy = actions.add_parser("deploy", help="deploy a ComplianceRegistry with the signer's key")
    _common_options(deploy, write=True, defaults=False)
    deploy.add_argument("--admin", metavar="ADDRESS", help="DEFAULT_ADMIN_ROLE holder (default: the signer)")
    deploy.add_argument(
        "--chains-file",
        metavar="FILE",
        help="also write the chains list with the new registry to FILE (for PORTCULLIS_CHAINS_FILE)",
    )
    pause = actions.add_parser("pause", help="stop grant and unfreeze (PAUSER_ROLE)")
    _common_options(pause, write=True, defaults=False)
    unpause = actions.add_parser("unpause", help="let grant and unfreeze run again (DEFAULT_ADMIN_ROLE)")
    _common_options(unpause, write=True, defaults=False)


def _add_reads(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    show = actions.add_parser("show", help="a wallet's record, verification and eligibility")
    _common_options(show, write=False, defaults=False)
    show.add_argument("address", metavar="ADDRESS")
    history = actions.add_parser("history", help="a wallet's record events, oldest first")
    _common_options(history, write=False, defaults=False)
    history.add_argument("address", metavar="ADDRESS")
    roles = actions.add_parser(
        "roles", help="who holds which role; roles grant|revoke ROLE ADDRESS changes it (DEFAULT_ADMIN_ROLE)"
    )
    _common_options(roles, write=True, defaults=False)
    roles.add_argument("role_action", nargs="?", choices=["grant", "revoke"], metavar="grant|revoke")
    roles.add_argument("role", nargs="?", metavar="ROLE", help="ATTESTER, REVOKER, PAUSER or ADMIN")
    roles.add_argument("address", nargs="?", metavar="ADDRESS")
    for parser in (history, roles):
        parser.add_argument(
            "--from-block", type=int, default=0, help="first block to search (deployment block)"
        )


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``registry`` and its subcommands to the ``portcullis`` parser; sets ``fn=run``."""
    registry = sub.add_parser("registry", help="the on-chain ComplianceRegistry (grant, revoke, show, ...)")
    _common_options(registry, write=True, defaults=True)
    actions = registry.add_subparsers(dest="registry_command", metavar="COMMAND", required=True)
    _add_grant(actions)
    _add_writes(actions)
    _add_admin(actions)
    _add_reads(actions)
    registry.set_defaults(fn=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run one ``registry`` subcommand: 0 on success, 2 and one line on stderr for any error to fix."""
    from web3.exceptions import Web3Exception

    output = Output(args.json, sys.stdout, sys.stderr)
    try:
        return COMMANDS[args.registry_command](Context(settings, args, output))
    except GrantInterrupted as exc:
        output.error(exc)
        return EXIT_INTERRUPTED
    except RegistryCliError as exc:
        output.error(exc)
        return exc.exit_code
    except rc.RegistryInputError as exc:
        output.error(exc)
    except OSError as exc:  # the RPC went away in the middle of a command
        output.error(RpcUnreachableError(f"RPC unreachable ({failure_reason(exc)})"))
    except Web3Exception as exc:
        output.error(RegistryCliError(f"the node answered with an error: {rpc_message(exc)}"))
    return EXIT_USAGE
