"""The hosted pages (app/http/pages.py): the view JSON cannot break out of its element, every script and
style carries the CSP nonce, nothing is loaded from elsewhere, and the page's Keccak-256 / EIP-55 code
(run in Node) matches the published vectors."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from typing import Any

import pytest

from app.http.pages import ASSETS, Pages, script_json
from app.mfa.webauthn import RelyingParty, authentication_options, verify_authentication
from tests.mfa.authenticator import SoftwareAuthenticator

NONCE = "n0nce-Of-Twenty-Two_ch"
HOSTILE = "</script><script>alert(1)</script><!-- &amp; \"' \u2028 <img src=x onerror=alert(2)>"


def make_view(**override: Any) -> dict[str, Any]:
    view: dict[str, Any] = {
        "interaction": "i-123",
        "endpoints": {
            "signin": "/authorize/interactions/i-123/signin",
            "consent": "/authorize/interactions/i-123/consent",
            "webauthn_assertion": "/mfa/webauthn/assertion",
        },
        "client": {"client_id": "rp", "client_name": "Example RP"},
        "siwe": {
            "scheme": "http",
            "domain": "127.0.0.1:8000",
            "uri": "http://127.0.0.1:8000",
            "version": "1",
            "chain_ids": [31337],
            "nonce": "abcdefghijklmnopqrstuv",
            "issued_at": "2026-12-07T10:00:00.000Z",
            "expiration_time": "2026-12-07T10:10:00.000Z",
            "statement": "Sign in to Example RP through Portcullis.",
        },
        "scopes": [{"scope": "openid", "description": "Sign in with the wallet."}],
        "authorization_details": [
            {
                "type": "derivatives_trade",
                "summary": "Trade ETH-PERP",
                "detail": {"instruments": ["ETH-PERP"]},
            }
        ],
        "step_up": None,
    }
    view.update(override)
    return view


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text inside each <script> and <style>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.raw: dict[int, str] = {}
        self._open: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._open = len(self.tags) - 1 if tag in ("script", "style") else None

    def handle_endtag(self, tag: str) -> None:
        self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self.raw[self._open] = self.raw.get(self._open, "") + data

    def find(self, tag: str) -> list[tuple[dict[str, str | None], str]]:
        return [(attrs, self.raw.get(i, "")) for i, (t, attrs) in enumerate(self.tags) if t == tag]


def parse(document: str) -> Tags:
    tags = Tags()
    tags.feed(document)
    tags.close()
    return tags


def embedded_view(document: str) -> Any:
    data = [
        raw for attrs, raw in parse(document).find("script") if attrs.get("id") == "portcullis-interaction"
    ]
    assert len(data) == 1
    return json.loads(data[0])


@pytest.fixture(scope="module")
def pages() -> Pages:
    return Pages()


def test_view_round_trips_through_the_json_element(pages: Pages) -> None:
    view = make_view()
    document = pages.signin(view, script_nonce=NONCE)
    assert document.startswith("<!doctype html>")
    assert embedded_view(document) == view


def test_hostile_texts_stay_inside_the_json(pages: Pages) -> None:
    view = make_view(
        client={"client_id": "rp", "client_name": HOSTILE},
        scopes=[{"scope": "openid", "description": HOSTILE}],
        authorization_details=[{"type": "x", "summary": HOSTILE, "detail": {HOSTILE: HOSTILE}}],
    )
    document = pages.signin(view, script_nonce=NONCE)
    assert embedded_view(document) == view
    for fragment in ("</script><script>", "<!--", "<img", "\u2028"):
        assert fragment not in document
    # exactly the page's own elements: the hostile text added none
    tags = parse(document)
    assert [t for t, _ in tags.tags].count("script") == 2
    assert not any(t == "img" for t, _ in tags.tags)


def test_script_json_escapes_markup_characters() -> None:
    text = script_json({"a": "<>&\u2028\u2029"})
    assert text == '{"a":"\\u003c\\u003e\\u0026\\u2028\\u2029"}'
    assert json.loads(text) == {"a": "<>&\u2028\u2029"}


@pytest.mark.parametrize("page", ["signin", "error"])
def test_every_script_and_style_carries_the_nonce(pages: Pages, page: str) -> None:
    document = render(pages, page)
    tags = parse(document)
    scripts, styles = tags.find("script"), tags.find("style")
    assert styles, "the page has its style inline"
    for attrs, _ in scripts + styles:
        assert attrs.get("nonce") == NONCE
        assert "src" not in attrs
    if page == "signin":
        executable = [raw for attrs, raw in scripts if attrs.get("type") is None]
        assert len(executable) == 1 and "eth_requestAccounts" in executable[0]


@pytest.mark.parametrize("page", ["signin", "error"])
def test_nothing_is_loaded_from_elsewhere(pages: Pages, page: str) -> None:
    document = render(pages, page)
    tags = parse(document)
    for tag, attrs in tags.tags:
        assert tag not in ("link", "img", "iframe", "object", "embed", "base"), tag
        for name in attrs:
            assert name not in ("src", "href", "style", "action", "srcset"), (tag, name)
            assert not name.startswith("on"), f"inline event handler {name} on <{tag}>"
    without_view = document
    for attrs, raw in tags.find("script"):
        if attrs.get("id") == "portcullis-interaction":
            without_view = without_view.replace(raw, "")
    for needle in ("http://", "https://", "url(", "@import", "innerHTML", "outerHTML", "insertAdjacentHTML"):
        assert needle not in without_view, needle


def test_ids_the_tests_and_the_lead_rely_on(pages: Pages) -> None:
    ids = {attrs.get("id") for _, attrs in parse(render(pages, "signin")).tags}
    for wanted in (
        "connect",
        "consent",
        "allow",
        "deny",
        "second-factor",
        "submit-factor",
        "use-passkey",
        "error",
    ):
        assert wanted in ids
    error = next(attrs for _, attrs in parse(render(pages, "signin")).tags if attrs.get("id") == "error")
    assert error.get("role") == "alert"
    labels = [attrs for tag, attrs in parse(render(pages, "signin")).tags if tag == "label"]
    assert any(label.get("for") == "second-factor" for label in labels)


def test_error_page_escapes_its_texts(pages: Pages) -> None:
    document = pages.error(status=400, error="invalid_<b>", description=HOSTILE, script_nonce=NONCE)
    assert "<script>alert(1)" not in document and "<img" not in document
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in document
    assert "invalid_&lt;b&gt;" in document and "HTTP 400" in document
    assert not parse(document).find("script")


@pytest.mark.parametrize("nonce", ["", "short", 'abcdefghijklmnopqrstuv"><script>', "a b" * 10, "x" * 300])
def test_a_bad_nonce_is_refused(pages: Pages, nonce: str) -> None:
    with pytest.raises(ValueError, match="script_nonce"):
        pages.signin(make_view(), script_nonce=nonce)
    with pytest.raises(ValueError, match="script_nonce"):
        pages.error(status=400, error="e", description="d", script_nonce=nonce)


def render(pages: Pages, page: str) -> str:
    if page == "signin":
        return pages.signin(make_view(), script_nonce=NONCE)
    return pages.error(status=400, error="invalid_request", description="bad", script_nonce=NONCE)


NODE = shutil.which("node")
needs_node = pytest.mark.skipif(
    NODE is None, reason="node is not installed: the page's JavaScript is not run"
)

KECCAK_VECTORS = {
    "": "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470",
    "abc": "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45",
    "The quick brown fox jumps over the lazy dog": (
        "4d741b6f1eb29cb2a9b9911c82f56fa8d73b04959d3d9d222895df6c0b28aa15"
    ),
}
# EIP-55 "Test Cases": all caps, all lower, normal.
EIP55_VECTORS = [
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]

_RUN_KECCAK = """
const fs = require("node:fs");
const K = new Function(fs.readFileSync(process.argv[1], "utf8") + "\\nreturn PortcullisKeccak;")();
const input = JSON.parse(fs.readFileSync(0, "utf8"));
const enc = (s) => new TextEncoder().encode(s);
const hashes = {};
for (const text of input.texts) hashes[text] = K.toHex(K.keccak256(enc(text)));
const lengths = {};
for (const n of input.lengths) lengths[n] = K.toHex(K.keccak256(new Uint8Array(n).fill(0x61)));
const checksums = input.addresses.map((a) => K.toChecksumAddress(a.toLowerCase()));
console.log(JSON.stringify({ hashes, lengths, checksums }));
"""


def run_keccak_js(texts: list[str], lengths: list[int], addresses: list[str]) -> Any:
    assert NODE is not None
    result = subprocess.run(
        [NODE, "-e", _RUN_KECCAK, str(ASSETS / "keccak.js")],
        input=json.dumps({"texts": texts, "lengths": lengths, "addresses": addresses}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


@needs_node
def test_page_keccak_and_eip55_match_the_vectors() -> None:
    import sha3  # safe-pysha3, the server's own Keccak: an independent implementation

    lengths = [1, 135, 136, 137, 271, 272, 500]
    out = run_keccak_js(list(KECCAK_VECTORS), lengths, EIP55_VECTORS)
    assert out["hashes"] == KECCAK_VECTORS
    for n in lengths:
        assert out["lengths"][str(n)] == sha3.keccak_256(b"a" * n).hexdigest(), n
    assert out["checksums"] == EIP55_VECTORS


@needs_node
def test_page_script_is_valid_javascript(pages: Pages, tmp_path: Any) -> None:
    assert NODE is not None
    executable = [
        raw for attrs, raw in parse(render(pages, "signin")).find("script") if attrs.get("type") is None
    ]
    script = tmp_path / "page.js"
    script.write_text(executable[0], encoding="utf-8")
    check = subprocess.run([NODE, "--check", str(script)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr


_RUN_PASSKEY = """
const fs = require("node:fs");
const P = new Function(fs.readFileSync(process.argv[1], "utf8") + "\\nreturn PortcullisPasskey;")();
const input = JSON.parse(fs.readFileSync(0, "utf8"));
const hex = (bytes) => Buffer.from(bytes).toString("hex");
// Node's own base64url decoder builds the browser's objects, so the page's codec is checked against it.
// Some fields are plain ArrayBuffers (as browsers hand them over), others views at an offset into a larger
// buffer: an encoder that read a view's whole buffer would send the neighbouring bytes too.
const buffer = (text) => {
  const raw = Buffer.from(text, "base64url");
  const outer = new Uint8Array(raw.length + 3);
  outer.set(raw, 1);
  return new Uint8Array(outer.buffer, 1, raw.length);
};
const options = P.requestOptions(input.options);
const decoded = {
  challenge: hex(options.challenge),
  ids: options.allowCredentials.map((c) => hex(c.id)),
  rest: Object.fromEntries(
    Object.entries(options).filter(([k]) => !["challenge", "allowCredentials"].includes(k)),
  ),
};
const assertions = input.assertions.map((a) =>
  P.assertionJson({
    id: a.id,
    rawId: buffer(a.rawId).slice().buffer,
    type: a.type,
    authenticatorAttachment: a.attachment,
    response: {
      clientDataJSON: buffer(a.response.clientDataJSON),
      authenticatorData: buffer(a.response.authenticatorData).slice().buffer,
      signature: buffer(a.response.signature),
      userHandle: a.response.userHandle === undefined ? null : buffer(a.response.userHandle),
    },
    getClientExtensionResults: () => ({}),
  }),
);
const refused = input.bad.map((text) => {
  try {
    P.base64urlDecode(text);
    return false;
  } catch {
    return true;
  }
});
console.log(JSON.stringify({ decoded, assertions, refused }));
"""


# a length no base64 has, standard base64's two characters, padding
BAD_BASE64URL = ["a", "ab+c", "ab/c", "ab=="]


@needs_node
def test_page_passkey_json_is_what_the_server_verifies() -> None:
    """passkey.js decodes the server's request options and encodes the browser's assertion as the
    AuthenticationResponseJSON that app.mfa.webauthn verifies (base64url of every padding length)."""
    rp = RelyingParty(id="localhost", name="Portcullis", origins=("http://localhost:8000",))
    authenticators = [
        SoftwareAuthenticator(credential_id=os.urandom(n), user_handle=handle)
        for n, handle in ((16, os.urandom(32)), (17, None), (18, os.urandom(33)), (64, None))
    ]
    challenge = b"\xfb\xff\xfe" * 10 + hashlib.sha256(b"rest").digest()[:2]
    options = authentication_options(rp, [a.credential_id for a in authenticators], challenge)
    assert "-" in options["challenge"] and "_" in options["challenge"]  # the two url-safe characters
    responses = [a.get(options, rp.origins[0]) for a in authenticators]
    keys = [a.cose_key() for a in authenticators]
    attachments = ["platform", None, "cross-platform", "platform"]
    assertions = [{**r, "attachment": at} for r, at in zip(responses, attachments, strict=True)]
    assert NODE is not None
    done = subprocess.run(
        [NODE, "-e", _RUN_PASSKEY, str(ASSETS / "passkey.js")],
        input=json.dumps({"options": options, "assertions": assertions, "bad": BAD_BASE64URL}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = json.loads(done.stdout)

    assert out["decoded"]["challenge"] == challenge.hex()
    assert out["decoded"]["ids"] == [a.credential_id.hex() for a in authenticators]
    assert out["decoded"]["rest"] == {
        k: v for k, v in options.items() if k not in ("challenge", "allowCredentials")
    }
    assert out["refused"] == [True] * len(BAD_BASE64URL)
    for i, response in enumerate(responses):
        encoded, attachment = out["assertions"][i], attachments[i]
        expected = dict(response)
        if attachment is not None:
            expected["authenticatorAttachment"] = attachment
        assert encoded == expected
        verified = verify_authentication(
            encoded, challenge=challenge, rp=rp, public_key=keys[i], stored_sign_count=0
        )
        assert verified.user_verified and verified.sign_count == 1
