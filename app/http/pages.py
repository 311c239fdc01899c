"""The hosted sign-in and error pages: whole HTML documents whose scripts and styles are inline and carry
the response's CSP nonce (CSP Level 3 section 7.1), so the page needs no external resource at all.

The interaction view travels as JSON in a ``<script type="application/json">`` element with ``<``, ``>``,
``&`` and the two JavaScript line terminators escaped, so no text in it can close the element (HTML
Living Standard 4.12.1.3); the page script reads it with ``JSON.parse`` and sets every text with
``textContent``.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from pathlib import Path
from string import Template
from typing import Any

ASSETS = Path(__file__).parent / "assets"

# A CSP nonce is base64 or base64url (CSP3 2.3.1 nonce-source); 128 bits at least (CSP3 7.1).
_NONCE = re.compile(r"[A-Za-z0-9+/_-]{16,256}={0,2}")
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_JSON_UNSAFE = re.compile("[<>&\u2028\u2029]")


def script_json(value: Mapping[str, Any]) -> str:
    """``value`` as JSON that is inert inside a ``<script>`` element."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _JSON_UNSAFE.sub(lambda m: _JSON_ESCAPES[m.group()], text)


class Pages:
    """Renders the pages from ``app/http/assets``, read once when the app is built."""

    def __init__(self) -> None:
        self._signin = Template(self._read("signin.html"))
        self._error = Template(self._read("error.html"))
        self._delegations = Template(self._read("delegations.html"))
        self._delegations_script = "\n".join(self._read(n) for n in ("keccak.js", "delegations.js"))
        self._css = self._read("pages.css")
        self._script = "\n".join(self._read(name) for name in ("keccak.js", "passkey.js", "signin.js"))
        scripts = (("scripts", self._script), ("delegation scripts", self._delegations_script))
        for name, text in (("pages.css", self._css), *scripts):
            if re.search(r"</(script|style)", text, re.IGNORECASE):
                raise ValueError(f"{name} must not contain a closing script or style tag")

    @staticmethod
    def _read(name: str) -> str:
        return (ASSETS / name).read_text(encoding="utf-8")

    def signin(self, view: Mapping[str, Any], *, script_nonce: str) -> str:
        """The sign-in and consent page for one interaction (see signin.js for the flow)."""
        return self._signin.substitute(
            nonce=_checked_nonce(script_nonce), css=self._css, script=self._script, view=script_json(view)
        )

    def delegations(self, view: Mapping[str, Any], *, script_nonce: str) -> str:
        """The delegation page (docs/DELEGATION.md): create, list and revoke a wallet's bot delegations."""
        return self._delegations.substitute(
            nonce=_checked_nonce(script_nonce),
            css=self._css,
            script=self._delegations_script,
            view=script_json(view),
        )

    def error(self, *, status: int, error: str, description: str, script_nonce: str) -> str:
        """A page for a request that cannot be sent back to the client (RFC 6749 section 4.1.2.1)."""
        return self._error.substitute(
            nonce=_checked_nonce(script_nonce),
            css=self._css,
            status=int(status),
            error=html.escape(error),
            description=html.escape(description),
        )


def _checked_nonce(nonce: str) -> str:
    if not _NONCE.fullmatch(nonce):
        raise ValueError("script_nonce must be 16 to 256 base64 or base64url characters")
    return nonce
