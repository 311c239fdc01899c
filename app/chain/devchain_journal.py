"""Development chain journal: every block the development chain mines, one JSON line, replayed at start.

``<data dir>/devchain.jsonl`` (docs/DEV_CHAIN.md, "State"). The first line is a header naming the format,
the chain id, the genesis timestamp and the SHA-256 of the registry creation code deployed in block 1. Every
later line is one mined block: its number, its timestamp, its signed transactions (raw EIP-2718 bytes, as
``eth_sendRawTransaction`` takes them) and its hash. At start the chain is rebuilt from genesis by applying
each block's transactions at its own timestamp; the hashes must come out the same (py-evm is deterministic
and prevrandao is derived from the parent), so an edited or mixed-up file is found, not half-used.

Lines are appended with one ``write`` and fsynced before the transaction's answer goes back. A last line
cut short by a crash (no newline, not JSON) is dropped: its block was never answered. Anything else that
does not read is a :class:`JournalError` whose one-line message says what to do.

While a server holds the chain, the file is locked (``flock``): a second server on the same data dir, and
``portcullis dev reset``, are refused instead of writing over it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from app.chain.devchain_rpc import MinedBlock

log = logging.getLogger("portcullis.devchain")

FILE_NAME = "devchain.jsonl"
FORMAT = "portcullis-devchain-journal/1"
RESET_HINT = (
    "run `portcullis dev reset` to start a fresh development chain (its grants are lost), or restore the file"
)


class JournalError(Exception):
    """The journal cannot be used; the message is one line saying what to do."""


class JournalBusy(JournalError):
    """Another process holds the journal (a running server)."""


@dataclass(frozen=True)
class JournalHeader:
    chain_id: int
    genesis_timestamp: int
    registry_code: str  # sha256 hex of the ComplianceRegistry creation code deployed in block 1


def journal_path(data_dir: Path) -> Path:
    """Where the development chain of a server with this data dir keeps its blocks."""
    return data_dir / FILE_NAME


class DevChainJournal:
    """The journal file, opened and locked for one process; :meth:`close` releases it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._broken = False
        self._pending_header: JournalHeader | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[bytes] = open(path, "a+b")  # noqa: SIM115 - held until close()
        except OSError as exc:
            raise JournalError(f"cannot open the development chain journal {path}: {exc.strerror}") from None
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.close()
            raise JournalBusy(
                f"the development chain journal {path} is in use by another process (a running `portcullis"
                " serve` / `make run`): stop it first, or give this one another PORTCULLIS_DATA_DIR"
            ) from None

    def close(self) -> None:
        self._file.close()  # closing the descriptor releases the lock

    def read(self) -> tuple[JournalHeader | None, list[MinedBlock]]:
        """The header and blocks written so far; (None, []) for a new or empty file."""
        self._file.seek(0)
        data = self._file.read()
        lines = data.split(b"\n")
        tail = lines.pop()  # after the last newline: empty, or a line cut short by a crash
        if tail:
            try:
                json.loads(tail)
            except ValueError:
                log.warning("development chain journal %s: dropped a last line cut short", self.path)
                self._truncate(len(data) - len(tail))
            else:
                lines.append(tail)
        if not lines:
            return None, []
        header = self._header(lines[0])
        blocks = [self._block(number, line) for number, line in enumerate(lines[1:], start=2)]
        if not blocks:  # a header alone: nothing was mined, start again
            self._truncate(0)
            return None, []
        return header, blocks

    def start(self, header: JournalHeader) -> None:
        """A new chain: the header is written together with the first block."""
        self._truncate(0)
        self._pending_header = header

    def append(self, block: MinedBlock) -> None:
        """Write one mined block. A failure is logged once; the file then stays a consistent prefix."""
        if self._broken:
            return
        text = ""
        if self._pending_header is not None:
            h = self._pending_header
            fields = {"format": FORMAT, "chain_id": h.chain_id, "genesis_timestamp": h.genesis_timestamp}
            text = _line({**fields, "registry_code_sha256": h.registry_code})
        text += _line(
            {
                "number": block.number,
                "timestamp": block.timestamp,
                "transactions": ["0x" + raw.hex() for raw in block.transactions],
                "hash": "0x" + block.block_hash.hex(),
            }
        )
        try:
            self._file.write(text.encode())
            self._file.flush()
            os.fsync(self._file.fileno())
        except (OSError, ValueError) as exc:  # ValueError: written after close()
            self._broken = True
            log.error(
                "development chain journal %s cannot be written (%s): block %s and later will not survive"
                " a restart",
                self.path,
                getattr(exc, "strerror", None) or exc,
                block.number,
            )
            return
        self._pending_header = None

    # -- parsing --

    def _unreadable(self, line_number: int, why: str) -> JournalError:
        return JournalError(
            f"the development chain journal {self.path} is unreadable at line {line_number} ({why}):"
            f" {RESET_HINT}"
        )

    def _header(self, line: bytes) -> JournalHeader:
        fields = self._object(1, line)
        if fields.get("format") != FORMAT:
            raise self._unreadable(1, f"not a {FORMAT} header")
        try:
            return JournalHeader(
                chain_id=_integer(fields["chain_id"]),
                genesis_timestamp=_integer(fields["genesis_timestamp"]),
                registry_code=_text(fields["registry_code_sha256"]),
            )
        except (KeyError, TypeError) as exc:
            raise self._unreadable(1, f"bad header field {exc}") from None

    def _block(self, line_number: int, line: bytes) -> MinedBlock:
        fields = self._object(line_number, line)
        try:
            return MinedBlock(
                number=_integer(fields["number"]),
                timestamp=_integer(fields["timestamp"]),
                transactions=tuple(_hex(raw) for raw in _items(fields["transactions"])),
                block_hash=_hex(fields["hash"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise self._unreadable(line_number, f"bad block field {exc}") from None

    def _object(self, line_number: int, line: bytes) -> dict[str, Any]:
        try:
            value = json.loads(line)
        except ValueError:
            raise self._unreadable(line_number, "not JSON") from None
        if not isinstance(value, dict):
            raise self._unreadable(line_number, "not a JSON object")
        return value

    def _truncate(self, size: int) -> None:
        try:
            self._file.truncate(size)
            self._file.seek(0, os.SEEK_END)
        except OSError as exc:
            raise JournalError(
                f"cannot write the development chain journal {self.path}: {exc.strerror}"
            ) from None


def _line(fields: dict[str, Any]) -> str:
    return json.dumps(fields, separators=(",", ":")) + "\n"


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"{value!r} is not a non-negative integer")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a string")
    return value


def _items(value: Any) -> Iterator[Any]:
    if not isinstance(value, list):
        raise TypeError(f"{value!r} is not a list")
    return iter(value)


def _hex(value: Any) -> bytes:
    text = _text(value)
    if not text.startswith("0x"):
        raise ValueError(f"{text[:20]!r} is not 0x-hex")
    return bytes.fromhex(text[2:])
