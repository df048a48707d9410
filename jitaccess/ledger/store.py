"""Append-only identity-event ledger on SQLAlchemy Core (SQLite by default, PostgreSQL in production).

Writes are idempotent on `event_id`: an activity retried after a crash stores
nothing twice. The `grants` table is a projection for listing, updated only
forward (by event seq) so a late, stale write never rolls a grant's state back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import TextClause

from jitaccess.domain.approval import Delegation
from jitaccess.domain.events import ChainVerification, IdentityEvent, verify_chain
from jitaccess.domain.principals import Actor, Principal
from jitaccess.ledger import migrate
from jitaccess.ledger.group_commit import GroupCommit

metadata = MetaData()

identity_events = Table(
    "identity_events",
    metadata,
    Column("event_id", String(200), primary_key=True),
    Column("grant_id", String(160), nullable=False, index=True),
    Column("seq", Integer, nullable=False),
    Column("type", String(80), nullable=False, index=True),
    Column("at", String(40), nullable=False),
    Column("actor_id", String(200), nullable=False),
    Column("actor_kind", String(20), nullable=False),
    Column("actor_role", String(20), nullable=False),
    Column("data", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("grant_id", "seq", name="uq_identity_events_grant_seq"),
)

grants = Table(
    "grants",
    metadata,
    Column("grant_id", String(160), primary_key=True),
    Column("state", String(40), nullable=False, index=True),
    Column("entitlement", String(80), nullable=False),
    Column("requester", String(200), nullable=False, index=True),
    Column("provider", String(40)),
    Column("break_glass", Boolean, nullable=False, default=False),
    Column("expires_at", String(40)),
    # the read facts (jitaccess.domain.access.ReadFacts, from Grant.summary()): who may see this grant
    Column("scope", JSON),
    Column("seq", Integer, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
)


delegations = Table(
    "delegations",
    metadata,
    Column("delegation_id", String(80), primary_key=True),
    Column("delegator", String(200), nullable=False),
    Column("delegator_principal", Text, nullable=False),  # JSON: the delegator's identity and groups when delegating
    Column("delegate", String(200), nullable=False, index=True),
    Column("starts_at", String(40), nullable=False),
    Column("ends_at", String(40), nullable=False),
    Column("reason", Text, nullable=False),
)

# One row per ReconciliationWorkflow run: its report (findings + remediation) as JSON, for "last run"
# queries. The run's evidence is its own hash chain in identity_events (chain ID reconciliation-<run_id>).
reconciliation_runs = Table(
    "reconciliation_runs",
    metadata,
    Column("run_id", String(160), primary_key=True),
    Column("chain_id", String(200), nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("started_at", String(40), nullable=False),
    Column("completed_at", String(40), nullable=False, index=True),
    Column("report", Text, nullable=False),
)


def _row(ev: IdentityEvent) -> dict:
    return {
        "event_id": ev.event_id,
        "grant_id": ev.grant_id,
        "seq": ev.seq,
        "type": ev.type,
        "at": ev.at,
        "actor_id": ev.actor.id,
        "actor_kind": ev.actor.kind.value,
        "actor_role": ev.actor.role.value,
        "data": json.dumps(ev.data, sort_keys=True),
        "prev_hash": ev.prev_hash,
        "hash": ev.hash,
    }


def _unnest_insert() -> TextClause:
    """PostgreSQL: the rows of a batch as one array per column, one INSERT ... SELECT FROM unnest.
    A multi-row VALUES list has 11 placeholders per row, and psycopg parses a statement of more than
    50 anew every time (~30 ms of a 60-append batch here); this one has 11 whatever the batch."""
    names = [c.name for c in identity_events.columns]
    arrays = ", ".join(f"CAST(:{n} AS {'integer' if n == 'seq' else 'text'}[])" for n in names)
    return text(
        f"INSERT INTO identity_events ({', '.join(names)}) SELECT * FROM unnest({arrays}) "
        "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
    )


@dataclass(frozen=True)
class _Append:
    rows: list[dict]
    summary: dict | None


def _grant_values(a: _Append) -> dict | None:
    """The grants row an append moves forward (created_at: its first event's time if it starts
    the chain, else the time of its last one)."""
    if not a.summary:
        return None
    at = a.rows[-1]["at"] if a.rows else a.summary.get("updated_at", "")
    created = a.rows[0]["at"] if a.rows and a.rows[0]["seq"] == 1 else at
    return {**a.summary, "created_at": created, "updated_at": at}


def _grant_summaries(batch: list[_Append]) -> list[tuple[bool, list[dict]]]:
    """One row per grant (the furthest summary; the earliest created_at), grouped by the columns
    given, for one executemany per group: a grant twice in one upsert would be an error."""
    latest: dict[object, dict] = {}
    for a in batch:
        v = _grant_values(a)
        if v is None:
            continue
        key = v.get("grant_id", id(a))
        seen = latest.get(key)
        if seen is None or v.get("seq", 0) >= seen.get("seq", 0):
            created = min(v["created_at"], seen["created_at"]) if seen else v["created_at"]
            latest[key] = {**v, "created_at": created}
        else:
            seen["created_at"] = min(v["created_at"], seen["created_at"])
    groups: dict[tuple[str, ...], list[dict]] = {}
    for v in latest.values():
        groups.setdefault(tuple(sorted(v)), []).append(v)
    return [("scope" in cols, values) for cols, values in groups.items()]


def _utc_text(t: datetime) -> str:
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


M = TypeVar("M", bound=BaseModel)


def row_model(model: type[M], r: Any) -> M:
    """A row as the model whose fields are (some of) its columns; other columns are left out."""
    return model.model_validate({k: v for k, v in r._mapping.items() if k in model.model_fields})


def _event(r) -> IdentityEvent:
    return IdentityEvent(
        event_id=r.event_id,
        grant_id=r.grant_id,
        seq=r.seq,
        type=r.type,
        at=r.at,
        actor=Actor(id=r.actor_id, kind=r.actor_kind, role=r.actor_role),
        data=json.loads(r.data),
        prev_hash=r.prev_hash,
        hash=r.hash,
    )


class Ledger:
    def __init__(self, url: str, *, upgrade: bool = False) -> None:
        """Open the ledger at `url`; its schema must be current (LedgerSchemaError otherwise: run
        `jitaccess db upgrade`). `upgrade=True` runs that upgrade first (dev stack, tests, bench)."""
        if upgrade:
            migrate.upgrade(url)
        self.url = url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url, pool_pre_ping=True, future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        inserts: dict[str, Callable[[Table], sqlite.Insert | postgresql.Insert]] = {
            "sqlite": sqlite.insert,
            "postgresql": postgresql.insert,
        }
        insert = inserts.get(self.engine.dialect.name)
        if insert is None:
            raise ValueError(f"ledger supports sqlite and postgresql URLs, not {self.engine.dialect.name}")
        self._insert = insert
        # append's statements, built once: SQLAlchemy then reuses their compiled form
        events_stmt = insert(identity_events).on_conflict_do_nothing(index_elements=["event_id"])
        self._insert_events = events_stmt.returning(identity_events.c.event_id)
        self._insert_events_unnest = _unnest_insert() if self.engine.dialect.name == "postgresql" else None
        self._upsert_grant = {with_scope: self._upsert_grant_stmt(with_scope) for with_scope in (False, True)}
        self._appends: GroupCommit[_Append, int] = GroupCommit(self._append_batch, "ledger-appends")
        # the schema is made by `jitaccess db upgrade` (Alembic, jitaccess.ledger.migrate), never here:
        # processes starting together used to race on CREATE TABLE ("table ... already exists").
        # A ledger from before grants.scope existed gets the column in revision 0001.
        try:
            migrate.check(self.engine)
        except BaseException:
            self.engine.dispose()
            raise

    def insert_stmt(self, table: Table) -> sqlite.Insert | postgresql.Insert:
        """The dialect's INSERT (with on_conflict_* support)."""
        return self._insert(table)

    def close(self) -> None:
        self._appends.close()
        self.engine.dispose()

    def append(self, events: Iterable[IdentityEvent], summary: dict | None = None) -> int:
        """Store events (idempotent on event_id) and move the grant's summary forward. Returns rows
        inserted. Appends from concurrent threads share a transaction (group commit)."""
        return self._appends.submit(_Append([_row(e) for e in events], summary))

    def _append_batch(self, batch: list[_Append]) -> list[int | Exception]:
        """All in one transaction; if that fails, each on its own, so that one bad append (say a
        summary the grants table refuses) fails alone."""
        try:
            return list(self._write_appends(batch))
        except Exception as e:
            if len(batch) == 1:
                return [e]
        out: list[int | Exception] = []
        for a in batch:
            try:
                out.extend(self._write_appends([a]))
            except Exception as e:
                out.append(e)
        return out

    def _write_appends(self, batch: list[_Append]) -> list[int]:
        rows, ids = [], set()
        for r in (r for a in batch for r in a.rows):  # a retried flush may share the batch with its first try
            if r["event_id"] not in ids:
                ids.add(r["event_id"])
                rows.append(r)
        new: set[str] = set()
        with self.engine.begin() as conn:
            if len(rows) > 1 and self._insert_events_unnest is not None:
                columns = {c: [r[c] for r in rows] for c in rows[0]}
                new = {r.event_id for r in conn.execute(self._insert_events_unnest, columns)}
            elif rows:
                # one cached statement with the rows as parameters (SQLAlchemy sends them as one multi-row
                # INSERT): a fresh `.values(rows)` statement was compiled per batch, 35 % of the append's
                # CPU (bench/ledger_rate.py). RETURNING tells what was new (conflicts return nothing).
                new = {r.event_id for r in conn.execute(self._insert_events, rows)}
            for with_scope, values in _grant_summaries(batch):
                conn.execute(self._upsert_grant[with_scope], values)
        counts = []
        for a in batch:  # an event in two appends of the batch counts for the first
            counts.append(sum(1 for r in a.rows if r["event_id"] in new))
            new -= {r["event_id"] for r in a.rows}
        return counts

    def _upsert_grant_stmt(self, with_scope: bool) -> Executable:
        """Insert a grant's summary or move it forward (only by seq); a summary without facts keeps the stored ones."""
        stmt = self._insert(grants)
        keys = ["state", "provider", "expires_at", "seq", "updated_at"] + (["scope"] if with_scope else [])
        return stmt.on_conflict_do_update(
            index_elements=["grant_id"],
            set_={k: stmt.excluded[k] for k in keys},
            where=grants.c.seq <= stmt.excluded.seq,
        )

    def events(self, grant_id: str) -> list[IdentityEvent]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(identity_events).where(identity_events.c.grant_id == grant_id).order_by(identity_events.c.seq)
            )
            return [_event(r) for r in rows]

    def events_after(self, cursor: str = "", limit: int = 500) -> list[IdentityEvent]:
        """Events in insertion-agnostic (at, event_id) order after a cursor — for tailing."""
        with self.engine.connect() as conn:
            q = select(identity_events).order_by(identity_events.c.at, identity_events.c.event_id).limit(limit)
            if cursor:
                at, eid = cursor.split("|", 1)
                q = q.where(
                    (identity_events.c.at > at) | ((identity_events.c.at == at) & (identity_events.c.event_id > eid))
                )
            return [_event(r) for r in conn.execute(q)]

    def grant_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return [
                r[0]
                for r in conn.execute(
                    select(identity_events.c.grant_id).distinct().order_by(identity_events.c.grant_id)
                )
            ]

    def grants(
        self,
        state: str | None = None,
        requester: str | None = None,
        break_glass: bool | None = None,
        limit: int = 500,
        visible: Callable[[dict], bool] | None = None,
        entitlement: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict]:
        """Grant summaries, newest first; with `visible`, the first `limit` rows it accepts (the
        caller's read scope, judged on each row's `scope` facts). `since`/`until`: requested in
        [since, until) (event times are stored as UTC ISO 8601, so they compare as text)."""
        q = select(grants).order_by(grants.c.created_at.desc(), grants.c.grant_id)
        if entitlement:
            q = q.where(grants.c.entitlement == entitlement)
        if since is not None:
            q = q.where(grants.c.created_at >= _utc_text(since))
        if until is not None:
            q = q.where(grants.c.created_at < _utc_text(until))
        if break_glass is not None:
            q = q.where(grants.c.break_glass == break_glass)
        if state:
            q = q.where(grants.c.state == state)
        if requester:
            q = q.where(grants.c.requester == requester)
        if visible is None:
            with self.engine.connect() as conn:
                return [dict(r._mapping) for r in conn.execute(q.limit(limit))]
        out: list[dict] = []
        with self.engine.connect() as conn:
            for r in conn.execution_options(yield_per=500).execute(q):
                row = dict(r._mapping)
                if visible(row):
                    out.append(row)
                    if len(out) >= limit:
                        break
        return out

    def grant(self, grant_id: str) -> dict | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(grants).where(grants.c.grant_id == grant_id)).first()
            return dict(r._mapping) if r else None

    def add_delegation(self, d: Delegation, event: IdentityEvent) -> None:
        """Store a delegation and its evidence event (chain keyed by the delegation ID) in one transaction."""
        with self.engine.begin() as conn:
            conn.execute(
                delegations.insert().values(
                    delegation_id=d.delegation_id,
                    delegator=d.delegator.id,
                    delegator_principal=d.delegator.model_dump_json(),
                    delegate=d.delegate,
                    starts_at=d.starts_at.isoformat(),
                    ends_at=d.ends_at.isoformat(),
                    reason=d.reason,
                )
            )
            conn.execute(identity_events.insert().values(_row(event)))

    def delegations(self, delegate: str | None = None, delegator: str | None = None) -> list[Delegation]:
        q = select(delegations).order_by(delegations.c.starts_at)
        if delegate:
            q = q.where(delegations.c.delegate == delegate)
        if delegator:
            q = q.where(delegations.c.delegator == delegator)
        with self.engine.connect() as conn:
            return [
                Delegation(
                    delegation_id=r.delegation_id,
                    delegator=Principal.model_validate_json(r.delegator_principal),
                    delegate=r.delegate,
                    starts_at=datetime.fromisoformat(r.starts_at),
                    ends_at=datetime.fromisoformat(r.ends_at),
                    reason=r.reason,
                )
                for r in conn.execute(q)
            ]

    # -- reconciliation ---------------------------------------------------------------------
    def grants_in_states(self, states: Iterable[str]) -> list[dict]:
        """Every grant summary in one of `states` (no limit: reconciliation needs them all)."""
        with self.engine.connect() as conn:
            q = select(grants).where(grants.c.state.in_(list(states))).order_by(grants.c.grant_id)
            return [dict(r._mapping) for r in conn.execute(q)]

    def latest_events_of_type(self, type_: str, grant_ids: Iterable[str]) -> dict[str, IdentityEvent]:
        """grant_id -> its latest event of `type_` (e.g. each grant's credential.issued)."""
        ids, found = sorted(set(grant_ids)), {}
        with self.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                q = (
                    select(identity_events)
                    .where(identity_events.c.type == type_, identity_events.c.grant_id.in_(ids[i : i + 500]))
                    .order_by(identity_events.c.seq)
                )
                for r in conn.execute(q):
                    found[r.grant_id] = _event(r)
        return found

    def save_reconciliation_report(self, report: dict) -> None:
        """Store (or replace: idempotent per run) a reconciliation run's report."""
        values = {
            "run_id": report["run_id"],
            "chain_id": report["chain_id"],
            "dry_run": bool(report["dry_run"]),
            "started_at": report["started_at"],
            "completed_at": report.get("completed_at") or report["started_at"],
            "report": json.dumps(report, sort_keys=True),
        }
        stmt = self._insert(reconciliation_runs).values(values)
        with self.engine.begin() as conn:
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["run_id"], set_={k: stmt.excluded[k] for k in ("completed_at", "report")}
                )
            )

    def last_reconciliation_report(self, *, include_dry_runs: bool = True) -> dict | None:
        """The most recently completed run's report (optionally only runs that remediated)."""
        q = select(reconciliation_runs.c.report).order_by(reconciliation_runs.c.completed_at.desc()).limit(1)
        if not include_dry_runs:
            q = q.where(reconciliation_runs.c.dry_run.is_(False))
        with self.engine.connect() as conn:
            r = conn.execute(q).first()
        return json.loads(r[0]) if r else None

    def verify(self, grant_id: str) -> ChainVerification:
        return verify_chain(grant_id, self.events(grant_id))

    def verify_all(self) -> Iterator[ChainVerification]:
        for gid in self.grant_ids():
            yield self.verify(gid)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
