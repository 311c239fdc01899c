"""The venue's own SQLite file: orders, positions and withdrawals per did:pkh subject.

Small and synchronous (stdlib ``sqlite3``, one short statement per call): a sample, not a matching engine.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY, subject TEXT NOT NULL, instrument TEXT NOT NULL, side TEXT NOT NULL,
    order_type TEXT NOT NULL, leverage INTEGER NOT NULL, notional TEXT NOT NULL, currency TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (
    subject TEXT NOT NULL, instrument TEXT NOT NULL, size TEXT NOT NULL, PRIMARY KEY (subject, instrument)
);
CREATE TABLE IF NOT EXISTS withdrawals (
    id TEXT PRIMARY KEY, subject TEXT NOT NULL, asset TEXT NOT NULL, amount TEXT NOT NULL,
    destination TEXT NOT NULL
);
"""


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def positions(self, subject: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT instrument, size FROM positions WHERE subject = ? ORDER BY instrument", (subject,)
        )
        return [dict(r) for r in rows]

    def place_order(self, subject: str, order: dict[str, Any]) -> dict[str, Any]:
        row = {"id": uuid.uuid4().hex, "subject": subject, "status": "open", **order}
        self._db.execute(
            "INSERT INTO orders VALUES (:id, :subject, :instrument, :side, :order_type, :leverage, :notional,"
            " :currency, :status)",
            row,
        )
        return row

    def order(self, subject: str, order_id: str) -> dict[str, Any] | None:
        found = self._db.execute(
            "SELECT * FROM orders WHERE id = ? AND subject = ?", (order_id, subject)
        ).fetchone()
        return dict(found) if found else None

    def cancel_order(self, subject: str, order_id: str) -> bool:
        done = self._db.execute(
            "UPDATE orders SET status = 'cancelled' WHERE id = ? AND subject = ? AND status = 'open'",
            (order_id, subject),
        )
        return done.rowcount == 1

    def withdraw(self, subject: str, asset: str, amount: str, destination: str) -> dict[str, Any]:
        row = {"id": uuid.uuid4().hex, "asset": asset, "amount": amount, "destination": destination}
        self._db.execute(
            "INSERT INTO withdrawals VALUES (?, ?, ?, ?, ?)", (row["id"], subject, asset, amount, destination)
        )
        return row
