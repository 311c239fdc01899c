"""The access log: uvicorn's, without the development chain's JSON-RPC calls.

``portcullis registry`` and browser wallets talk to the development chain (``POST /dev/chain/rpc``) a
dozen times per command; one line each would bury the requests the log is for. Every other request is
still logged, ``GET /dev/chain/info`` and a refused method on the RPC path included.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from uvicorn.config import LOGGING_CONFIG

from app.chain.devchain import RPC_PATH

ACCESS_LOGGER = "uvicorn.access"


class SkipDevChainRpc(logging.Filter):
    """Drops uvicorn's access records of ``POST /dev/chain/rpc``.

    uvicorn logs each request with args (client, method, path with query, HTTP version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or len(args) < 3:
            return True
        method, path = args[1], str(args[2]).partition("?")[0]
        return not (method == "POST" and path == RPC_PATH)


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's default logging configuration, with :class:`SkipDevChainRpc` on the access logger."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["skip_dev_chain_rpc"] = {"()": SkipDevChainRpc}
    config["loggers"][ACCESS_LOGGER]["filters"] = ["skip_dev_chain_rpc"]
    return config
