"""``portcullis dev reset``: throw the development chain away, so the next ``make run`` builds a fresh one.
``portcullis dev perps-api-secret``: the sample perps API's introspection client secret, for ``make run``.

The chain lives in ``<data dir>/devchain.jsonl`` (app/chain/devchain_journal.py, docs/DEV_CHAIN.md). Reset
deletes that file, after a confirmation (or ``--yes``). It refuses in production, and while a server holds
the file (a running ``make run``: the journal is locked). The database and its audit log are not touched:
the audit entries of the old chain's grants stay, as history.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from app.chain.devchain_journal import DevChainJournal, JournalBusy, journal_path
from app.cli.failures import EnvironmentProblem, UsageError
from app.settings import Settings

EXIT_NOT_CONFIRMED = 1


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dev = sub.add_parser("dev", help="the development set-up (make run)")
    dev_sub = dev.add_subparsers(dest="action", required=True)
    reset = dev_sub.add_parser(
        "reset", help="delete the development chain's state (every grant on it): the next start is fresh"
    )
    reset.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    reset.set_defaults(fn=lambda settings, args: reset_chain(settings, yes=args.yes))
    secret = dev_sub.add_parser(
        "perps-api-secret",
        help="print the sample perps API's introspection client secret (made once in the data dir)",
    )
    secret.set_defaults(fn=lambda settings, args: perps_api_secret(settings))


def perps_api_secret(settings: Settings) -> int:
    """Print the secret of the development client ``perps-api`` (bootstrap.development_clients), making it
    first if the data dir has none; ``make run`` passes it to the sample API. Refused in production."""
    from app.bootstrap import PERPS_API_SECRET_FILE, development_secret  # the server's assembly: heavy

    if settings.mode != "development":
        raise UsageError(
            "dev perps-api-secret: only in development mode (PORTCULLIS_MODE is production); in production"
            " register the resource server's client in PORTCULLIS_CLIENTS_FILE (docs/CLIENTS.md)"
        )
    print(development_secret(settings.data_dir, PERPS_API_SECRET_FILE).decode())
    return 0


def reset_chain(settings: Settings, *, yes: bool, ask: Callable[[str], str] | None = None) -> int:
    """Delete the journal; ``ask`` (default: ``input`` on a terminal) confirms unless ``yes``."""
    if settings.mode != "development":
        raise UsageError(
            "dev reset: only in development mode (PORTCULLIS_MODE is production); production has no"
            " development chain"
        )
    path = journal_path(settings.data_dir)
    if not path.exists():
        print(f"no development chain state at {path}: the next start builds a fresh chain")
        return 0
    try:
        journal = DevChainJournal(path)
    except JournalBusy:
        raise EnvironmentProblem(
            f"dev reset: a running server holds the development chain in {path}: stop it (`make run`,"
            " `portcullis serve`) and run `portcullis dev reset` again"
        ) from None
    try:
        blocks = max(path.read_bytes().count(b"\n") - 1, 0)
        if not yes:
            if ask is None and not sys.stdin.isatty():
                raise UsageError("dev reset: no terminal to ask for confirmation; pass --yes")
            question = f"Delete the development chain in {path} ({blocks} blocks, every grant on it)? [y/N] "
            try:
                answer = (ask or input)(question)
            except EOFError:
                answer = ""
            if answer.strip().lower() not in ("y", "yes"):
                print("not confirmed: nothing deleted")
                return EXIT_NOT_CONFIRMED
        path.unlink()
    finally:
        journal.close()
    print(f"deleted {path} ({blocks} blocks): the next start builds a fresh development chain")
    return 0
