"""Development only: the demo dApp of ``frontend-demo/`` at ``/demo/``, beside the server that signs it in.

Static files (plain HTML, CSS and ES modules, no build step) and one small document the page reads first,
``/demo/config.json``: which issuer, client, chain and sample API to use. Production never mounts either
(app/http/app.py): the demo's public client exists only in development (app.bootstrap.demo_client).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from app.bootstrap import DEMO_CLIENT_ID, DEMO_PATH, DEMO_SCOPES
from app.settings import Settings

DEMO_DIR = Path(__file__).resolve().parents[2] / "frontend-demo"
# EIP-55 checksums need Keccak-256, which WebCrypto lacks: the page loads the hosted page's own module.
KECCAK_JS = Path(__file__).resolve().parent / "assets" / "keccak.js"


def demo_config(settings: Settings, dev_chain_id: int | None) -> dict[str, object]:
    """What the page needs to know that it cannot discover: the rest comes from the issuer's discovery."""
    chain_id = dev_chain_id if dev_chain_id is not None else settings.chain_ids[0]
    return {
        "issuer": settings.issuer,
        "client_id": DEMO_CLIENT_ID,
        "redirect_uri": f"{settings.issuer}{DEMO_PATH}",
        "scopes": list(DEMO_SCOPES),
        "chain_id": chain_id,
        "chain_rpc_url": f"{settings.issuer}/dev/chain/rpc" if dev_chain_id is not None else None,
        "api_url": settings.demo_api_url.rstrip("/"),
    }


def demo_routes(settings: Settings, dev_chain_id: int | None) -> list[BaseRoute]:
    """``GET /demo/config.json`` and the static files under ``/demo``; empty without ``frontend-demo/``
    (an installed package without the repository's top-level folders)."""
    if not DEMO_DIR.is_dir():
        return []
    config = demo_config(settings, dev_chain_id)

    async def config_json(_request: Request) -> Response:
        return JSONResponse(config, headers={"Cache-Control": "no-store"})

    async def keccak_js(_request: Request) -> Response:
        return FileResponse(KECCAK_JS, media_type="text/javascript")

    return [
        Route("/demo/config.json", config_json, methods=["GET"]),
        Route("/demo/keccak.js", keccak_js, methods=["GET"]),
        Mount("/demo", app=StaticFiles(directory=DEMO_DIR, html=True)),
    ]
