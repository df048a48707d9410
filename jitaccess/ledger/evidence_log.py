"""The ledger's global event log and its signed checkpoints (jitaccess.domain.evidence).

Tables (Alembic revision 0002): `evidence_log` (log_index → event_id, the event's hash and its
Merkle leaf hash) and `evidence_checkpoints` (the signed checkpoints, with the tree's right
border so the next checkpoint needs no full re-hash).

**Who assigns the log index.** Only the checkpointer, under a lock (PostgreSQL: a transaction
advisory lock; SQLite: the database's single writer lock, taken by the transaction's first
statement), in one transaction with the checkpoint it signs. Events are written by many workers
at once, without a global order; the checkpointer appends the events not yet logged in a stable
order (each chain in seq order, no chain with a hole — jitaccess.domain.evidence.log_order), so
two writers can never interleave indices, an index is never reused, and a checkpoint always
covers exactly the log that exists when it commits. An event written while a checkpoint is being
made simply joins the next one.

**The key.** `JITACCESS_CHECKPOINT_KEY_FILE` — an Ed25519 private key (urlsafe base64 of its 32
bytes, like the command keys) in a file on the checkpointer's host, which the database's users
cannot read: whoever can change the ledger cannot sign a checkpoint. Each new checkpoint is also
written to `JITACCESS_CHECKPOINT_DIR` (checkpoint-<number>.json), a copy outside the database.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import BigInteger, Column, Integer, String, Table, Text, UniqueConstraint, func, select, text
from sqlalchemy.engine import Connection

from jitaccess.domain import merkle
from jitaccess.domain.commands import (
    load_private_key,
    load_public_key,
    new_private_key_text,
    public_key_id,
    public_key_text,
)
from jitaccess.domain.events import IdentityEvent, format_at
from jitaccess.domain.evidence import (
    Checkpoint,
    LogCandidate,
    LogEntry,
    checkpoint_problem,
    log_order,
    sign_checkpoint,
)
from jitaccess.ledger.store import Ledger, _event, grants, identity_events, metadata, row_model

evidence_log = Table(
    "evidence_log",
    metadata,
    Column("log_index", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", String(200), nullable=False),
    Column("grant_id", String(160), nullable=False, index=True),
    Column("seq", Integer, nullable=False),
    Column("event_hash", String(64), nullable=False),
    Column("leaf_hash", String(64), nullable=False),
    UniqueConstraint("event_id", name="uq_evidence_log_event_id"),
)

evidence_checkpoints = Table(
    "evidence_checkpoints",
    metadata,
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("origin", String(100), nullable=False),
    Column("tree_size", BigInteger, nullable=False),
    Column("root_hash", String(64), nullable=False),
    Column("issued_at", String(40), nullable=False),
    Column("prev_checkpoint_hash", String(64), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("signature", String(200), nullable=False),
    # the tree's right border after this checkpoint (JSON list of hex), so the next one appends
    # to it; checked against the signed root before use, never trusted on its own
    Column("frontier", Text, nullable=False),
)

# pg_advisory_xact_lock key for the checkpointer: "jitckpt1" as a big-endian int64
PG_LOCK_KEY = int.from_bytes(b"jitckpt1", "big")


class CheckpointError(RuntimeError):
    """The checkpointer refuses to sign: what it found would make the signature a lie."""


# -- keys ------------------------------------------------------------------------------------
def load_checkpoint_key(path: Path, *, create: bool = False) -> Ed25519PrivateKey:
    """The checkpoint signing key from its file; `create` (dev only) makes one, 0600, if missing."""
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(new_private_key_text() + "\n")
    try:
        return load_private_key(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint key at {path} (JITACCESS_CHECKPOINT_KEY_FILE)") from None
    except ValueError as e:
        raise CheckpointError(f"checkpoint key {path}: {e}") from None


def load_public_key_file(path: Path) -> Ed25519PublicKey:
    """A public key file: urlsafe base64 of the 32 raw bytes (`jitaccess evidence public-key`)."""
    try:
        return load_public_key(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def public_key_of(key: Ed25519PrivateKey) -> str:
    return public_key_text(key.public_key())


# -- reading the ledger ------------------------------------------------------------------------
def _entry(r) -> LogEntry:
    return row_model(LogEntry, r)


def _checkpoint(r) -> Checkpoint:
    return row_model(Checkpoint, r)


def all_events(ledger: Ledger) -> list[IdentityEvent]:
    with ledger.engine.connect() as conn:
        q = select(identity_events).order_by(identity_events.c.grant_id, identity_events.c.seq)
        return [_event(r) for r in conn.execution_options(yield_per=2000).execute(q)]


def log_entries(ledger: Ledger, limit: int | None = None) -> list[LogEntry]:
    q = select(evidence_log).order_by(evidence_log.c.log_index)
    if limit is not None:
        q = q.where(evidence_log.c.log_index < limit)
    with ledger.engine.connect() as conn:
        return [_entry(r) for r in conn.execution_options(yield_per=5000).execute(q)]


def checkpoints(ledger: Ledger) -> list[Checkpoint]:
    with ledger.engine.connect() as conn:
        return [
            _checkpoint(r) for r in conn.execute(select(evidence_checkpoints).order_by(evidence_checkpoints.c.number))
        ]


def latest_checkpoint(ledger: Ledger) -> Checkpoint | None:
    with ledger.engine.connect() as conn:
        r = conn.execute(select(evidence_checkpoints).order_by(evidence_checkpoints.c.number.desc()).limit(1)).first()
    return _checkpoint(r) if r else None


def known_grant_ids(ledger: Ledger) -> list[str]:
    """The grant IDs the grants projection lists (a grant whose events were deleted stays here)."""
    with ledger.engine.connect() as conn:
        return [r[0] for r in conn.execute(select(grants.c.grant_id))]


# -- proofs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Inclusion:
    event_id: str
    log_index: int
    leaf_hash: str
    proof: list[str]


def inclusion_proofs(ledger: Ledger, event_ids: list[str], cp: Checkpoint) -> list[Inclusion]:
    """Audit paths (RFC 9162) of these events in the tree `cp` signs; events not (yet) in it are left out."""
    entries = log_entries(ledger, cp.tree_size)
    leaves = [bytes.fromhex(e.leaf_hash) for e in entries]
    wanted = set(event_ids)
    return [
        Inclusion(e.event_id, e.log_index, e.leaf_hash, [p.hex() for p in merkle.inclusion_proof(leaves, e.log_index)])
        for e in entries
        if e.event_id in wanted
    ]


def consistency_proof(ledger: Ledger, first: Checkpoint, second: Checkpoint) -> list[str]:
    """The RFC 9162 proof that `first`'s tree is a prefix of `second`'s, from the log."""
    leaves = [bytes.fromhex(e.leaf_hash) for e in log_entries(ledger, second.tree_size)]
    return [p.hex() for p in merkle.consistency_proof(leaves, first.tree_size, second.tree_size)]


# -- the export directory ------------------------------------------------------------------------
def export_name(cp: Checkpoint) -> str:
    return f"checkpoint-{cp.number:08d}.json"


def write_export(directory: Path, cp: Checkpoint) -> Path:
    """Write one checkpoint file (atomically; an existing file is left as it is)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / export_name(cp)
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cp.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
    return path


def read_exports(directory: Path) -> list[Checkpoint]:
    return [Checkpoint.model_validate_json(p.read_text()) for p in sorted(directory.glob("checkpoint-*.json"))]


# -- the checkpointer ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckpointResult:
    checkpoint: Checkpoint | None  # the newest checkpoint (None: the log is empty)
    created: bool  # False: nothing new to log, the latest checkpoint stands
    appended: int  # events added to the log

    def summary(self) -> dict:
        cp = self.checkpoint
        return {
            "created": self.created,
            "appended": self.appended,
            "checkpoint": cp.model_dump(mode="json") if cp else None,
        }


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})
    else:  # SQLite: a write as the first statement takes the single writer lock for the transaction
        conn.execute(evidence_log.delete().where(text("1 = 0")))


def _unlogged_candidates(conn: Connection) -> list[LogCandidate]:
    """Every event not yet in the log, read in pages and kept only as its place and leaf."""
    logged = select(evidence_log.c.log_index).where(evidence_log.c.event_id == identity_events.c.event_id).exists()
    # on the statement, not the connection: the same connection then inserts (no server-side cursor)
    rows = conn.execute(select(identity_events).where(~logged).execution_options(yield_per=2000))
    return [LogCandidate.of(_event(x)) for x in rows]


def _logged_seq(conn: Connection, chains: list[str]) -> dict[str, int]:
    """Each chain's last logged seq (chains with nothing logged yet are left out)."""
    logged_seq: dict[str, int] = {}
    for i in range(0, len(chains), 500):
        q = (
            select(evidence_log.c.grant_id, func.max(evidence_log.c.seq))
            .where(evidence_log.c.grant_id.in_(chains[i : i + 500]))
            .group_by(evidence_log.c.grant_id)
        )
        logged_seq.update({gid: seq for gid, seq in conn.execute(q)})
    return logged_seq


def _append(conn: Connection, batch: list[LogCandidate], frontier: merkle.Frontier) -> None:
    """Log the batch at the next indices, growing the frontier with each leaf."""
    rows = []
    for ev in batch:
        rows.append(
            {
                "log_index": frontier.size,
                "event_id": ev.event_id,
                "grant_id": ev.grant_id,
                "seq": ev.seq,
                "event_hash": ev.hash,
                "leaf_hash": ev.leaf_hash,
            }
        )
        frontier.append(bytes.fromhex(ev.leaf_hash))
    for i in range(0, len(rows), 1000):
        conn.execute(evidence_log.insert(), rows[i : i + 1000])


def _sign_and_store(
    conn: Connection, key: Ed25519PrivateKey, prev: Checkpoint | None, frontier: merkle.Frontier, now: datetime
) -> Checkpoint:
    cp = sign_checkpoint(
        key,
        number=prev.number + 1 if prev else 1,
        tree_size=frontier.size,
        root_hash=frontier.root().hex(),
        issued_at=format_at(now),
        prev=prev,
    )
    stored_frontier = json.dumps([h.hex() for h in frontier.hashes])
    conn.execute(evidence_checkpoints.insert().values(**cp.model_dump(exclude={"v"}), frontier=stored_frontier))
    return cp


def make_checkpoint(
    ledger: Ledger, key: Ed25519PrivateKey, export_dir: Path | None = None, *, now: datetime | None = None
) -> CheckpointResult:
    """Append every event not yet logged to the log and sign a checkpoint over it (one
    transaction). Refuses (CheckpointError) when the ledger's latest checkpoint does not verify
    with this key, or the export directory holds checkpoints the ledger lost: it never signs on
    top of a history it cannot vouch for."""
    with ledger.engine.begin() as conn:
        _lock(conn)
        r = conn.execute(select(evidence_checkpoints).order_by(evidence_checkpoints.c.number.desc()).limit(1)).first()
        prev = _checkpoint(r) if r else None
        frontier = _trusted_frontier(conn, prev, r.frontier if r else "[]", key.public_key(), export_dir)
        pending = _unlogged_candidates(conn)
        batch = log_order(pending, _logged_seq(conn, sorted({ev.grant_id for ev in pending})))
        if not batch and prev is None:
            return CheckpointResult(None, False, 0)
        cp = prev
        if batch:
            _append(conn, batch, frontier)
            cp = _sign_and_store(conn, key, prev, frontier, now or datetime.now(UTC))
    if export_dir is not None:
        for c in checkpoints(ledger):
            write_export(export_dir, c)
    return CheckpointResult(cp, bool(batch), len(batch))


def _trusted_frontier(
    conn: Connection, prev: Checkpoint | None, frontier_json: str, public: Ed25519PublicKey, export_dir: Path | None
) -> merkle.Frontier:
    exported = read_exports(export_dir) if export_dir is not None and export_dir.exists() else []
    if exported and (prev is None or exported[-1].number > prev.number):
        raise CheckpointError(
            f"the export directory holds checkpoint #{exported[-1].number} but the ledger "
            f"{'none' if prev is None else f'only up to #{prev.number}'}: the ledger lost checkpoints; "
            "refusing to sign a new history (run `jitaccess evidence verify`)"
        )
    size = conn.execute(select(func.count()).select_from(evidence_log)).scalar_one()
    if prev is None:
        if size:
            raise CheckpointError(f"the log holds {size} entries but no checkpoint: refusing to sign over it")
        return merkle.Frontier()
    problem = checkpoint_problem(prev, {public_key_id(public): public})
    if problem:
        raise CheckpointError(f"the ledger's latest checkpoint #{prev.number} does not verify with this key: {problem}")
    try:
        frontier = merkle.Frontier(prev.tree_size, [bytes.fromhex(h) for h in json.loads(frontier_json)])
    except ValueError as e:
        raise CheckpointError(f"checkpoint #{prev.number}'s stored tree border is damaged: {e}") from None
    if frontier.root().hex() != prev.root_hash or size != prev.tree_size:
        raise CheckpointError(
            f"the log ({size} entries) no longer matches checkpoint #{prev.number} ({prev.tree_size}): "
            "refusing to sign over it (run `jitaccess evidence verify`)"
        )
    return frontier
