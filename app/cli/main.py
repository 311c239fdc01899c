"""The ``portcullis`` command. Every subcommand reads the same PORTCULLIS_* settings as the server."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from typing import TextIO

from app.audit.events import RequestMeta
from app.chain.types import ComplianceDecision
from app.cli import delegations as delegations_cli
from app.cli import dev as dev_cli
from app.cli import policy as policy_cli
from app.cli import registry as registry_cli
from app.cli.failures import EXIT_INTERRUPTED, CliError, EnvironmentProblem, database_errors
from app.cli.registry_audit import os_user
from app.settings import Settings, SettingsError, export_metrics_environment, load_settings


def _serve(settings: Settings, _args: argparse.Namespace) -> int:
    import logging
    import logging.config

    from app.chain.devchain_journal import JournalError
    from app.cli import banner, workers
    from app.http.app import create_app
    from app.logs import logging_config
    from app.metrics import prepare_directory

    # Before the app (and prometheus-client) is imported: the metrics directory of the workers, and the
    # log format every line from here on is written in (docs/DEPLOY.md, "Logs" and "Metrics").
    if settings.metrics_dir is not None and settings.metrics != "off":
        prepare_directory(settings.metrics_dir)
    export_metrics_environment(settings)
    log_config = logging_config(settings)
    logging.config.dictConfig(log_config)
    logging.captureWarnings(True)

    _check_database(
        settings
    )  # a database down, missing or locked by another secret: one line, not a traceback
    app = None
    if settings.workers == 1:  # one process: the app is built here; N workers build their own
        try:
            app = create_app(settings)
        except JournalError as exc:  # the development chain's file: unreadable, another build, or in use
            raise EnvironmentProblem(str(exc)) from exc
    rows = banner.start_up_rows(settings, app.state.dev_chain if app is not None else None)
    if settings.log_format == "json":  # every line on stdout and stderr stays one JSON object
        logging.getLogger("portcullis").info("starting", extra={"event": "startup", "banner": dict(rows)})
    else:
        print(banner.render(rows), flush=True)
    config = workers.WorkerConfig(
        settings,
        app,
        log_level=settings.log_level,
        log_config=log_config,  # our formats; the access log is the app's (app.http.access_log)
        access_log=False,
        proxy_headers=False,
        server_header=False,
        # the header deadline (protocol, built in each worker), keep-alive and connection cap
        timeout_keep_alive=settings.http_keep_alive_seconds,
    )
    workers.run(config)
    return 0


def _check_database(settings: Settings) -> None:
    """What the server's start-up does first (bootstrap.open_database), run before uvicorn takes over."""
    from app import bootstrap
    from app.clock import SystemClock

    async def run() -> None:
        opened = await bootstrap.open_database(settings, SystemClock(), RequestMeta())  # as the lifespan
        await opened.store.close()
        await opened.engine.dispose()

    with database_errors(settings.database_url):
        asyncio.run(run())


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    import httpx

    from app.cli.demo import DevTools, run_demo

    url = args.url or settings.issuer
    if args.url:  # the registry and policy commands below find the development chain at the issuer
        settings = settings.model_copy(update={"issuer": args.url.rstrip("/")})

    def grant(address: str, options: list[str]) -> int:
        until = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
        grant_args = build_parser().parse_args(
            ["registry", "grant", address, *options, "--valid-until", until]
        )
        result: int = grant_args.fn(settings, grant_args)
        return result

    def explain(address: str, scope: str, details: str) -> dict[str, object] | None:
        argv = ["policy", "explain", address, "--scope", scope, "--details", details, "--json"]
        out, err = io.StringIO(), io.StringIO()
        if _policy(settings, build_parser().parse_args(argv), out=out, err=err) != 0:
            return None
        doc: dict[str, object] = json.loads(out.getvalue())
        return doc

    tools = DevTools(grant=grant, explain=explain)
    try:
        return run_demo(
            url, client_id=args.client_id or settings.default_client_id, tools=tools, wait_seconds=args.wait
        )
    except httpx.TransportError as exc:
        print(f"portcullis demo: cannot reach {url} ({exc}); is `make run` running?", file=sys.stderr)
        return 1
    except httpx.HTTPStatusError as exc:
        print(
            f"portcullis demo: {exc.request.url} answered {exc.response.status_code}: {exc.response.text}",
            file=sys.stderr,
        )
        return 1


def _db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    from app.bootstrap import migrate_database

    with database_errors(settings.database_url):
        revision = asyncio.run(migrate_database(settings))
    print(f"database at revision {revision}")
    return 0


def _keys(settings: Settings, args: argparse.Namespace) -> int:
    from app import bootstrap
    from app.oidc import keys

    async def run() -> tuple[list[dict[str, object]], str | None]:
        meta = operator()
        runtime = await bootstrap.start(settings, meta=meta)
        try:
            p = runtime.provider
            note = None
            if args.action == "rotate":
                now = p.clock.now()
                record = await keys.rotate(
                    p.key_store,
                    runtime.secret,
                    settings.signing_alg,
                    now,
                    p.key_timing,
                    bootstrap.key_activation(p.auditor, meta, "rotated by operator"),
                )
                starts = record.activates_at
                assert starts is not None
                note = (
                    f"new key {record.kid} is published now and starts signing at "
                    f"{starts.isoformat()} (in {int((starts - now).total_seconds())} s: "
                    f"/jwks max-age {settings.jwks_max_age_seconds} s + key reload "
                    f"{settings.key_reload_seconds} s + {int(keys.ACTIVATION_SLACK.total_seconds())} s slack)"
                )
            await runtime.checkpointer.tick(p.clock.now(), force=True)
            records, now = await p.key_store.list_keys(), p.clock.now()
            rows: list[dict[str, object]] = [
                {
                    "kid": r.kid,
                    "alg": r.alg,
                    "state": keys.key_state(r, records, now),
                    "created_at": r.created_at.isoformat(),
                    "activates_at": (r.activates_at or r.created_at).isoformat(),
                    "published_until": r.publish_until.isoformat() if r.publish_until else None,
                }
                for r in records
            ]
            return rows, note
        finally:
            await runtime.store.close()
            await runtime.engine.dispose()

    with database_errors(settings.database_url):
        rows, note = asyncio.run(run())
    for row in rows:
        print(json.dumps(row))
    if note is not None:  # to stderr: stdout stays one JSON object per key
        print(note, file=sys.stderr)
    return 0


def _audit(settings: Settings, args: argparse.Namespace) -> int:
    from app.cli import audit

    if args.action == "verify":
        return audit.verify(settings, args.from_seq, args.allow_missing_checkpoints)
    if args.action == "export":
        if args.output:
            with open(args.output, "w", newline="") as out:
                return audit.export(settings, args.since, args.until, args.format, args.subject, out)
        return audit.export(settings, args.since, args.until, args.format, args.subject, sys.stdout)
    if args.action == "tail":
        return audit.tail(settings, args.lines, args.follow)
    return audit.purge(settings, args.dry_run, operator())


def _policy(
    settings: Settings, args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """``portcullis policy``: ``explain`` reads the account's compliance decision as the server reads it."""

    async def decision_for(address: str, chain_id: int | None) -> ComplianceDecision | None:
        from app import bootstrap
        from app.chain.access import ChainAccess
        from app.cli.registry_chain import fetch_dev_chain
        from app.clock import SystemClock
        from app.oauth.compliance import decide_on

        clock = SystemClock()
        if settings.chains:  # the configured chains, every compliance source included, as the server has them
            wanted = chain_id if chain_id is not None else settings.default_chain_id
            if settings.chain(wanted) is None:
                known = ", ".join(str(c.chain_id) for c in settings.chains)
                raise policy_cli.UsageError(f"chain {wanted} is not configured (PORTCULLIS_CHAINS: {known})")
            access = bootstrap.chain_access(settings, clock, None)
        elif settings.dev_chain and settings.mode == "development":  # make run's chain, over its RPC
            target = fetch_dev_chain(settings)
            wanted = target.chain_id if chain_id is None else chain_id
            if wanted != target.chain_id:
                raise policy_cli.UsageError(
                    f"chain {wanted} is not configured (only the development chain {target.chain_id} is)"
                )
            config = bootstrap.dev_chain_settings(
                settings, target.chain_id, target.rpc_urls[0], target.registry
            )
            access = ChainAccess([config], clock)
        else:
            raise policy_cli.UsageError(
                "no chain is configured (PORTCULLIS_CHAINS): give the account's facts with --facts JSON"
            )
        try:
            return await decide_on(access, wanted, address)
        finally:
            await access.close()

    return policy_cli.run(settings, args, decision_for=decision_for, out=out, err=err)


def operator() -> RequestMeta:
    """CLI actions are audited under the operating-system user who ran them."""
    return RequestMeta(operator=os_user())


def _seconds(text: str) -> float:
    """A non-negative number of seconds (argparse type: a bad value is a usage error, exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portcullis", description=__doc__)
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of a failure, not only its one line"
    )
    parser.add_argument("--version", action="version", version=f"portcullis {version('portcullis')}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server (PORTCULLIS_HOST, PORTCULLIS_PORT, ...)")
    serve.add_argument(
        "--workers", type=int, help="pre-fork worker processes, one per core (default: PORTCULLIS_WORKERS, 1)"
    )
    serve.set_defaults(fn=_serve)
    demo = sub.add_parser(
        "demo", help="sign in the development chain's demo wallets and show what the trading policy grants"
    )
    demo.add_argument("--url", help="server base URL (default: PORTCULLIS_ISSUER)")
    demo.add_argument("--client-id", help="client id (default: the first configured client)")
    demo.add_argument(
        "--wait",
        type=_seconds,
        default=120.0,
        metavar="SECONDS",
        help="wait this long for the server to answer (default 120)",
    )
    demo.set_defaults(fn=_demo)
    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="action", required=True)
    db_sub.add_parser("upgrade", help="apply Alembic migrations").set_defaults(fn=_db_upgrade)
    keys = sub.add_parser("keys", help="token-signing keys")
    keys.add_argument("action", choices=["list", "rotate"])
    keys.set_defaults(fn=_keys)
    audit = sub.add_parser("audit", help="the tamper-evident audit trail")
    audit_sub = audit.add_subparsers(dest="action", required=True)
    verify = audit_sub.add_parser("verify", help="recompute the hash chain and checkpoints")
    verify.add_argument("--from", dest="from_seq", type=int, default=1, help="start at this sequence number")
    verify.add_argument(
        "--allow-missing-checkpoints",
        action="store_true",
        help="verify against the database's own checkpoints when the external checkpoint file is missing",
    )
    verify.set_defaults(fn=_audit)
    export = audit_sub.add_parser("export", help="an extract with its chain proof")
    export.add_argument("--since", help="date or RFC 3339 time (inclusive)")
    export.add_argument("--until", help="date or RFC 3339 time (exclusive)")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.add_argument(
        "--subject", help="only entries of this actor: a wallet address (every chain), a did:pkh, a client id"
    )
    export.add_argument("--output", help="file to write (CSV: the proof goes to FILE.proof.json)")
    export.set_defaults(fn=_audit)
    tail = audit_sub.add_parser("tail", help="the latest entries")
    tail.add_argument("-n", "--lines", type=int, default=20)
    tail.add_argument("-f", "--follow", action="store_true")
    tail.set_defaults(fn=_audit)
    purge = audit_sub.add_parser("purge", help="delete entries past PORTCULLIS_AUDIT_RETENTION_DAYS")
    purge.add_argument("--dry-run", action="store_true")
    purge.set_defaults(fn=_audit)
    registry_cli.add_parser(sub)
    policy_cli.add_parser(sub)
    dev_cli.add_parser(sub)
    delegations_cli.add_parser(sub)
    sub.choices["policy"].set_defaults(fn=_policy)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides: dict[str, object] = {}
    if getattr(args, "workers", None) is not None:  # serve --workers wins over PORTCULLIS_WORKERS
        overrides["workers"] = args.workers
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"portcullis: {exc}", file=sys.stderr)
        return 2
    try:
        result: int = args.fn(settings, args)
    except CliError as exc:
        return _failed(args, exc, str(exc), exc.exit_code)
    except KeyboardInterrupt as exc:
        return _failed(args, exc, "interrupted", EXIT_INTERRUPTED)
    return result


def _failed(args: argparse.Namespace, exc: BaseException, message: str, code: int) -> int:
    """One line on stderr (and, with --debug, the traceback first)."""
    if args.debug:
        traceback.print_exception(exc)
    print(f"portcullis: {' '.join(message.split())}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
