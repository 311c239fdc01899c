"""Log lines: one JSON object per line (production) or readable text (development), with request context.

Every record carries ``time``, ``level``, ``logger``, ``event`` (the message) and, inside a request, the
``request_id`` and, once known, the ``client_id`` and the ``subject`` (the wallet's DID). The request's
context is a ``contextvars`` value set by the HTTP face (app.http.telemetry) and filled in by the cores as
they learn who is asking (:func:`note`); a context variable is per task by construction, so it holds no
state between requests or between apps.

What never reaches a line (docs/DEPLOY.md, "Logs"): tokens (JWTs, refresh tokens and codes are never logged
by the code, and a JWT-shaped or a 65-byte-signature-shaped string is replaced by ``[redacted]`` in every
line as a second guard), secrets, and client IPs beyond PORTCULLIS_AUDIT_IP (the access log writes the
IP as the audit log does: truncated, hashed or full).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
from typing import Any

from app.settings import Settings

# The fields a request's context may carry, in the order they are written.
CONTEXT_FIELDS = ("request_id", "client_id", "subject")

_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "portcullis_log_context", default=None
)

# A JWT / JWS compact serialisation (three base64url parts, the first a JSON header) and an EIP-191 or
# ERC-1271 signature (65 bytes or more of hex): never written to a log, whatever a message says.
_SECRET_SHAPES = re.compile(
    r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*|0x[0-9a-fA-F]{130,}",
)
REDACTED = "[redacted]"

# Attributes every LogRecord has; anything else a caller passed as ``extra`` is written as a field.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def begin_request(request_id: str) -> contextvars.Token[dict[str, str] | None]:
    """Start a request's log context (the HTTP face); :func:`end_request` with the token restores it."""
    return _context.set({"request_id": request_id})


def end_request(token: contextvars.Token[dict[str, str] | None]) -> None:
    _context.reset(token)


def note(*, client_id: str | None = None, subject: str | None = None) -> None:
    """Tell the current request's log context who is asking (the cores call it as they learn it)."""
    ctx = _context.get()
    if ctx is None:
        return
    if client_id:
        ctx["client_id"] = client_id
    if subject:
        ctx["subject"] = subject


def context() -> dict[str, str]:
    """The current request's context (empty outside a request)."""
    return _context.get() or {}


def redact(text: str) -> str:
    return _SECRET_SHAPES.sub(REDACTED, text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (RFC 3339 UTC, ms), level, logger, event, the request context, the
    record's extra fields, and ``exception`` (the traceback as one string) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": _rfc3339(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        doc.update(_context.get() or {})
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key != "color_message":
                doc[key] = value  # an ``event`` given as extra (the access log's) names the line instead
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        return redact(json.dumps(doc, default=str, ensure_ascii=False, separators=(",", ":")))


class TextFormatter(logging.Formatter):
    """Readable lines for development: ``LEVEL:    event  key=value ...`` (uvicorn's look)."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"{record.levelname + ':':<9} {record.getMessage()}"]
        fields = {**(_context.get() or {})}
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in ("color_message", "event"):
                fields[key] = value
        extra = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None and k not in _INLINE)
        line = parts[0] + (f"  {extra}" if extra else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


# Access-log fields the text form already shows inside its message.
_INLINE = frozenset({"method", "path", "route", "status", "http_version", "client_ip", "duration_ms"})


def _rfc3339(created: float) -> str:
    seconds = int(created)
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((created - seconds) * 1000):03d}Z"
    )


def logging_config(settings: Settings) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of the server (given to uvicorn as its ``log_config``): one handler
    on stderr with the configured format for every logger, uvicorn's own included; uvicorn's access log is
    replaced by the app's (app.http.access_log), which knows the route, the request id and the IP setting."""
    formatter = "json" if settings.log_format == "json" else "text"
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": JsonFormatter},
            "text": {"()": TextFormatter},
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": formatter,
                "stream": "ext://sys.stderr",
            },
        },
        # Libraries (alembic, web3, asyncio) speak from warning up, as before; ours and uvicorn's as set.
        "root": {"handlers": ["default"], "level": "WARNING"},
        "loggers": {
            "portcullis": {"handlers": [], "level": level, "propagate": True},
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "py.warnings": {"handlers": [], "propagate": True},
        },
    }
