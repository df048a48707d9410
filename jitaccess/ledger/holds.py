"""Hold counts for shared access: several grants can yield the same access (same
principal in the same group / account assignment). Ending one must not remove
access another still holds, and the last one to end must remove it.

Each shared target has a lock row; a transaction that touches holds first
updates that row, which is a row lock on PostgreSQL (and the write lock on
SQLite), so workers on different machines serialise on one target while the
provider call runs inside the transaction. If the provider call fails, the
transaction rolls back and the hold is exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Column, Connection, Integer, String, Table, delete, select, update

from jitaccess.ledger.store import Ledger, metadata

access_targets = Table(
    "access_targets",
    metadata,
    Column("target_key", String(400), primary_key=True),
    Column("lock_version", Integer, nullable=False, default=0),
)

access_holds = Table(
    "access_holds",
    metadata,
    Column("target_key", String(400), primary_key=True),
    Column("grant_id", String(160), primary_key=True),
    Column("acquired_at", String(40), nullable=False),
)


class TargetHolds:
    """The holds on one target, inside the transaction that locks it."""

    def __init__(self, conn: Connection, key: str, ledger: Ledger) -> None:
        self._conn, self.key, self._ledger = conn, key, ledger

    @property
    def conn(self) -> Connection:
        """The transaction holding the target's lock (other rows changed with the hold go in it)."""
        return self._conn

    def holders(self) -> list[str]:
        q = (
            select(access_holds.c.grant_id)
            .where(access_holds.c.target_key == self.key)
            .order_by(access_holds.c.grant_id)
        )
        return [r[0] for r in self._conn.execute(q)]

    def add(self, grant_id: str) -> None:
        stmt = self._ledger.insert_stmt(access_holds).values(
            target_key=self.key, grant_id=grant_id, acquired_at=datetime.now(UTC).isoformat()
        )
        self._conn.execute(stmt.on_conflict_do_nothing())

    def remove(self, grant_id: str) -> None:
        self._conn.execute(
            delete(access_holds).where(access_holds.c.target_key == self.key, access_holds.c.grant_id == grant_id)
        )


class HoldStore:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger  # its tables come from the ledger's migrations (jitaccess.ledger.migrate)

    @contextmanager
    def locked(self, key: str) -> Iterator[TargetHolds]:
        engine = self._ledger.engine
        with engine.begin() as conn:
            conn.execute(
                self._ledger.insert_stmt(access_targets).values(target_key=key, lock_version=0).on_conflict_do_nothing()
            )
        with engine.begin() as conn:
            conn.execute(
                update(access_targets)
                .where(access_targets.c.target_key == key)
                .values(lock_version=access_targets.c.lock_version + 1)
            )
            yield TargetHolds(conn, key, self._ledger)

    def holders(self, key: str) -> list[str]:
        with self._ledger.engine.connect() as conn:
            return TargetHolds(conn, key, self._ledger).holders()
