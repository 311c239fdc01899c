"""``portcullis delegations list|revoke``: the operator's view of wallets' delegations to trading bots
(docs/DELEGATION.md). ``list`` prints one JSON object per delegation (newest first; ``--subject`` for one
wallet's did:pkh); ``revoke ID`` ends one at once (its bot tokens are inactive at introspection from then
on), audited as ``delegation.revoked`` under the operating-system user (``--operator`` to name someone).
"""

from __future__ import annotations

import argparse
import asyncio
import json

from app.audit.events import RequestMeta
from app.cli.failures import UsageError, database_errors
from app.cli.registry_audit import os_user
from app.errors import OAuthError
from app.settings import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("delegations", help="wallets' delegations to trading bots")
    actions = group.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="delegations, newest first (one JSON object a line)")
    listing.add_argument("--subject", help="only this wallet's (its did:pkh)")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    listing.set_defaults(fn=run)
    revoke = actions.add_parser("revoke", help="revoke one delegation now")
    revoke.add_argument("delegation_id")
    revoke.add_argument("--operator", help="who revokes, for the audit entry (default: the OS user)")
    revoke.set_defaults(fn=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    from app import bootstrap
    from app.oauth import delegation

    if args.action == "list" and not 0 < args.limit <= 10_000:
        raise UsageError("delegations list: --limit must be between 1 and 10000")
    meta = RequestMeta(operator=getattr(args, "operator", None) or os_user())

    async def go() -> list[dict[str, object]]:
        runtime = await bootstrap.start(settings, meta=meta)
        try:
            p = runtime.provider
            if args.action == "list":
                records = await p.delegations.listing(args.subject, limit=args.limit)
                return [delegation.describe(r, p.clock.now()) for r in records]
            try:
                record = await delegation.revoke(
                    p, args.delegation_id, meta, subject=None, reason="revoked_by_operator"
                )
            except OAuthError as exc:
                raise UsageError(f"delegations revoke: {exc.description}") from None
            await runtime.checkpointer.tick(p.clock.now(), force=True)
            return [delegation.describe(record, p.clock.now())]
        finally:
            await runtime.store.close()
            await runtime.engine.dispose()

    with database_errors(settings.database_url):
        rows = asyncio.run(go())
    for row in rows:
        print(json.dumps(row))
    return 0
