"""OWASP CSRF Prevention Cheat Sheet: the hosted page's interaction calls must come from the page itself.

The sign-in and consent calls carry the browser-binding cookie, so a page on another site could make the
browser send them. Each call is refused unless, in this order:

1. ``Sec-Fetch-Site`` (Fetch Metadata, W3C), when the browser sends it, is ``same-origin``;
2. ``Origin`` (RFC 6454 section 7), when sent, is the issuer's origin (or ``null`` beside
   ``Sec-Fetch-Site: same-origin``: a same-origin POST under the page's no-referrer policy);
3. the body is ``application/json``: a cross-site form or ``text/plain`` body (a CORS-safelisted "simple"
   request, Fetch Standard 3.2.3) never is, and a cross-site JSON request needs a preflight that these
   paths do not answer;
4. the :data:`HEADER` carries the page's CSRF token, an HMAC of the interaction and the browser-binding
   cookie under the server's key (a signed double-submit token), compared in constant time.

Requests without the cookie are left to the browser-binding check (app.oauth.authorize), which refuses
them; requests without ``Origin`` or ``Sec-Fetch-Site`` are not from a browser that could be tricked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from starlette.requests import Request

from app.errors import AccessDenied, InvalidRequest

HEADER = "X-CSRF-Token"


def token(key: bytes, interaction_id: str, browser_secret: str) -> str:
    """The CSRF token the page is rendered with: bound to this interaction and this browser's cookie."""
    mac = hmac.new(key, f"{interaction_id}\x00{browser_secret}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def check(
    request: Request, *, key: bytes, issuer_origin: str, interaction_id: str, browser_secret: str | None
) -> None:
    """Refuse an interaction call that another site could have made (the module docstring's four rules)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        raise AccessDenied(f"a {site[:20]!r} request cannot act on the sign-in page (Sec-Fetch-Site)")
    origin = request.headers.get("origin")
    # Fetch Standard 3.1 sends "null" for a same-origin POST under Referrer-Policy no-referrer (the page's);
    # the browser's own Sec-Fetch-Site, which no page can set, then says where it came from.
    same_origin_null = origin == "null" and site == "same-origin"
    if origin is not None and origin != issuer_origin and not same_origin_null:
        raise AccessDenied(f"origin {origin[:100]!r} cannot act on the sign-in page")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise InvalidRequest("the body must be application/json")
    if browser_secret is None:
        return
    sent = request.headers.get(HEADER, "")
    expected = token(key, interaction_id, browser_secret)
    if not hmac.compare_digest(sent.encode(), expected.encode()):
        raise AccessDenied(f"the {HEADER} header is missing or does not match this sign-in page")
