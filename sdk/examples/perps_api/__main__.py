"""``python -m perps_api``: the sample venue API beside a development Portcullis (``make run`` starts both).

Environment (read here only): PERPS_API_HOST (127.0.0.1; the container image sets 0.0.0.0), PERPS_API_PORT
(8100), PERPS_API_ISSUER (http://127.0.0.1:8000), PERPS_API_DATABASE (var/perps_api.db), PERPS_API_CLIENT_ID
/ PERPS_API_CLIENT_SECRET (the introspection client; without them POST /withdrawals fails closed with 503),
PERPS_API_ALLOWED_ORIGINS (comma-separated browser origins allowed by CORS; default the issuer's origin,
where ``make run`` serves the demo dApp at /demo/). ``make run`` passes the development client ``perps-api``
and its secret (``portcullis dev perps-api-secret``).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn
from portcullis_resource import ClientAuth, Validator

from perps_api.app import Config, create_app


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def main() -> None:
    host = os.environ.get("PERPS_API_HOST", "127.0.0.1")
    port = int(os.environ.get("PERPS_API_PORT", "8100"))
    issuer = os.environ.get("PERPS_API_ISSUER", "http://127.0.0.1:8000")
    database = Path(os.environ.get("PERPS_API_DATABASE", "var/perps_api.db"))
    client_id, secret = os.environ.get("PERPS_API_CLIENT_ID"), os.environ.get("PERPS_API_CLIENT_SECRET")
    auth = ClientAuth(client_id, secret=secret) if client_id and secret else None
    validator = Validator(issuer, introspection=auth)
    allowed = os.environ.get("PERPS_API_ALLOWED_ORIGINS", _origin(issuer))
    origins = tuple(o.strip().rstrip("/") for o in allowed.split(",") if o.strip())
    app = create_app(Config(database, allowed_origins=origins), validator)
    print(f"perps API (sample resource server) on http://{host}:{port}, tokens from {issuer}", flush=True)
    if auth is None:
        print("  no PERPS_API_CLIENT_ID/SECRET: POST /withdrawals answers 503 (introspection fails closed)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


if __name__ == "__main__":
    main()
