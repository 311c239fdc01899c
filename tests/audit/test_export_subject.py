"""``portcullis audit export --subject``: a wallet address selects its entries on every chain; a malformed
subject is refused with the expected forms; a subject with no entries says so."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from app.cli.main import main
from tests.conftest import FakeClock, Harness, make_settings, running_app, sign, siwe_text

SECRET = "export-secret-" + "e" * 40


async def sign_in(h: Harness, wallet: Any, chain_id: int) -> None:
    offer = (await h.client.post("/siwe/nonce")).json()
    message = siwe_text(offer, wallet.address, issued_at=h.clock.now(), chain_id=chain_id)
    reply = await h.client.post("/siwe/verify", json={"message": message, "signature": sign(wallet, message)})
    assert reply.status_code == 200, reply.text


async def export(capsys: Any, *argv: str) -> tuple[int, list[dict[str, Any]], str]:
    code = await asyncio.to_thread(main, ["audit", "export", *argv])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()][1:], err


async def test_subject_by_address_on_every_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("PORTCULLIS_DATA_DIR", str(tmp_path))
    wallet, other = Account.create(), Account.create()
    settings = make_settings(tmp_path, secret_key=SECRET, chain_ids=[1, 10])
    async with running_app(settings, FakeClock()) as h:
        await sign_in(h, wallet, 1)
        await sign_in(h, other, 1)
        await sign_in(h, wallet, 10)
    expected = [f"did:pkh:eip155:1:{wallet.address}", f"did:pkh:eip155:10:{wallet.address}"]

    for given in (wallet.address, wallet.address.lower()):
        code, entries, _ = await export(capsys, "--subject", given)
        assert code == 0 and [e["actor"] for e in entries] == expected
    code, entries, _ = await export(capsys, "--subject", f"did:pkh:eip155:10:{wallet.address.lower()}")
    assert code == 0 and [e["actor"] for e in entries] == expected[1:]

    code, entries, err = await export(capsys, "--subject", Account.create().address)
    assert code == 0 and entries == []
    assert err.startswith("note: no entry in range has the actor ") and "a wallet address 0x..." in err

    for bad in ("0x1234", "did:pkh:eip155:1:0xnothex"):
        code, entries, err = await export(capsys, "--subject", bad)
        assert code == 2 and entries == []
        assert err == (
            f"portcullis: --subject {bad!r} is not a subject: give a wallet address 0x... (40 hex digits: "
            "every chain), did:pkh:eip155:CHAIN:0x..., a client id, or operator:USER\n"
        )
