"""The chain's building blocks: RFC 8785 canonical form and entry hashes."""

from __future__ import annotations

import hashlib

import pytest

from app.audit.chain import FIELDS, GENESIS, ChainState, canonical, entry_hash, step


def test_canonical_form_is_rfc8785_for_our_types() -> None:
    assert canonical({"b": 1, "a": "x", "c": [True, None, {"z": 0, "y": "é"}]}) == (
        '{"a":"x","b":1,"c":[true,null,{"y":"é","z":0}]}'.encode()
    )
    assert canonical("line\nbreak\u2028") == '"line\\nbreak\u2028"'.encode()


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError):
        canonical({"a": [1.5]})


def _entry(seq: int, prev: str, **kw: object) -> dict[str, object]:
    e: dict[str, object] = {f: None for f in FIELDS}
    e.update(
        seq=seq, ts="2026-11-29T08:00:00.000Z", type="t", outcome="success", node="n", data={}, prev_hash=prev
    )
    e.update(kw)
    e["hash"] = entry_hash(e)
    return e


def test_hash_is_sha256_of_the_canonical_entry_without_hash() -> None:
    e = _entry(1, GENESIS)
    body = {k: v for k, v in e.items() if k != "hash"}
    assert e["hash"] == hashlib.sha256(canonical(body)).hexdigest()


def test_step_walks_a_good_chain_and_names_breaks() -> None:
    a = _entry(1, GENESIS)
    b = _entry(2, a["hash"])  # type: ignore[arg-type]
    state = ChainState(1, GENESIS)
    assert step(a, state) is None and step(b, state) is None and state.checked == 2
    broken = step(_entry(4, b["hash"]), ChainState(3, b["hash"]))  # type: ignore[arg-type]
    assert broken is not None and broken.seq == 3 and broken.problem == "missing"
