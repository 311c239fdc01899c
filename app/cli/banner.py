"""The start-up banner of ``portcullis serve``: what this process serves, in a few aligned rows.

Never a secret: the database URL is shown without its password (and secret-looking query values), a
configured chain's RPC endpoints only by origin (their paths and queries often carry provider API keys),
and no key, password or token setting at all. A part that starts beside the server adds its row with
``rows.append(("label", "value"))`` before :func:`render`.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version
from urllib.parse import urlsplit

from app.bootstrap import (
    DEMO_CLIENT_ID,
    DEMO_PATH,
    PERPS_API_CLIENT_ID,
    PERPS_API_SECRET_FILE,
    development_clients,
)
from app.chain.devchain import RPC_PATH, DevChain
from app.chain.devchain_journal import journal_path
from app.cli.failures import shown_url
from app.settings import Settings

Row = tuple[str, str]


def start_up_rows(settings: Settings, dev_chain: DevChain | None) -> list[Row]:
    """Issuer, mode, database, each chain (and its registry), the development chain's RPC URL and file."""
    rows: list[Row] = [
        ("issuer", settings.issuer),
        ("mode", settings.mode),
        ("listening", f"http://{settings.host}:{settings.port}"),
        ("database", shown_url(settings.database_url)),
    ]
    if dev_chain is not None:
        rows.append(
            (f"chain {dev_chain.chain_id}", f"development chain, registry {dev_chain.registry_address}")
        )
        rows.append(("dev chain rpc", settings.issuer + RPC_PATH))
        state = journal_path(settings.data_dir)
        restored = dev_chain.restored_blocks
        kept = f"{restored} blocks restored" if restored else "new chain"
        rows.append(("dev chain file", f"{state} ({kept}; `portcullis dev reset` starts clean)"))
    for chain in settings.chains:
        registry = f"registry {chain.registry}" if chain.registry else "no registry"
        origins = ", ".join(dict.fromkeys(_origin(url) for url in chain.rpc_urls))
        rows.append((f"chain {chain.chain_id}", f"{registry}, rpc {origins}"))
    if not settings.chains and dev_chain is None:
        rows.append(("chains", "none (sign-in on chain ids " + ", ".join(map(str, settings.chain_ids)) + ")"))
    if any(c.client_id == PERPS_API_CLIENT_ID for c in development_clients(settings)):
        secret = settings.data_dir / PERPS_API_SECRET_FILE
        rows.append(
            ("dev client", f"{PERPS_API_CLIENT_ID} (the sample perps API introspects; secret in {secret})")
        )
    if any(c.client_id == DEMO_CLIENT_ID for c in development_clients(settings)):
        rows.append(
            ("demo dApp", f"{settings.issuer}{DEMO_PATH} (open it in a browser; frontend-demo/README.md)")
        )
    if settings.compliance == "off":
        rows.append(("compliance", "OFF: no on-chain compliance gate"))
    return rows


def render(rows: Sequence[Row]) -> str:
    """``portcullis <version>`` and one aligned ``label  value`` line per row."""
    width = max((len(label) for label, _ in rows), default=0)
    lines = [f"portcullis {version('portcullis')}"]
    lines += [f"  {label.ljust(width)}  {value}" for label, value in rows]
    return "\n".join(lines)


def _origin(url: str) -> str:
    """scheme://host[:port] of an RPC URL: no credentials, path or query (they may hold an API key)."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(unparsable URL)"
    if not parts.scheme or not parts.hostname:
        return "(unparsable URL)"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}{port}"
