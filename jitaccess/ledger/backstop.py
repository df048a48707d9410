"""What the expiry backstop needs to end a grant's access without Temporal (jitaccess.workers.backstop).

Identity-based access (an IAM group membership, an Identity Center assignment) and the STS revoke-deny
have no provider-side TTL at or before the grant's expiry: only a revoke ends them. So the issue
activity keeps, per grant, the non-secret reference of what it issued (the IssuedCredential: the
same thing the workflow's revoke activity gets) and the expiry it is due at; the extend activity moves
that expiry before the workflow records it; the backstop revokes at expiry when the workflow has not.

Concurrency: every change to a row happens in a transaction that first UPDATEs the row (a row lock on
PostgreSQL, the write lock on SQLite), so several workers' backstops and the activities serialise on
it; shared access is also changed only under its hold lock (jitaccess.ledger.holds), taken first, and
held across the provider call (as the activities do). A grant's own credential (not shared: an STS
session's deny) is claimed for a few seconds instead, so the provider call runs outside any database
lock; its revoke is idempotent, so a claim that lapses (its worker killed mid-call) costs at most a
second, identical revoke. A process killed mid-transaction loses the transaction and its lock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, Connection, Float, Index, String, Table, Text, bindparam, func, select, update

from jitaccess.domain.credentials import IssuedCredential
from jitaccess.domain.events import IdentityEvent
from jitaccess.domain.states import ACCESS_ENDED, GrantState
from jitaccess.ledger.store import Ledger, grants, metadata

expiry_backstop = Table(
    "expiry_backstop",
    metadata,
    Column("grant_id", String(160), primary_key=True),
    Column("provider", String(40), nullable=False),
    Column("credential", Text, nullable=False),  # IssuedCredential JSON (non-secret reference)
    Column("target_key", String(400)),  # shared access: the hold key (ledger.holds)
    Column("expires_at", String(40)),  # the latest expiry known to a worker (issue window, extensions)
    Column("due", Float),  # expires_at as epoch seconds (what the scan compares)
    Column("created_at", String(40), nullable=False),
    Column("done_at", String(40)),  # set once nothing is left to end (by whoever ended it)
    Column("outcome", String(40)),
    Column("acted_by", String(200)),
    Column("claimed_until", Float),  # a backstop acting on its own credential (not shared) holds it until then
    Index("ix_expiry_backstop_pending", "done_at", "due"),
)

# grants in these states hold no access any more (or never did): their rows are closed, not acted on
ENDED = frozenset(s.value for s in ACCESS_ENDED)

# outcomes
PROVIDER_TTL = "provider_ttl"  # the provider's own TTL ends it at the grant's expiry: nothing to do
REVOKED = "revoked"  # the backstop removed the access (and read back that it is gone)
ALREADY_GONE = "already_gone"  # the backstop found it gone (read back)
RELEASED = "released"  # the backstop released this grant's hold; other grants still hold the access
HOLD_RELEASED = "hold_released"  # the workflow's revoke had released the hold already
WORKFLOW = "workflow"  # the workflow's revoke / clean-up confirmed it
ENDED_OUTCOME = "ended"  # the grant ended (projection state) before it was due


def needs_backstop(cred: IssuedCredential, grant_expires_at: datetime | None) -> bool:
    """Does anything but a revoke end this credential at the grant's expiry? No when the provider's
    own expiry is at or before the grant's (a Vault token, lease or secret-ID)."""
    if cred.expires_at is None:
        return True
    return grant_expires_at is not None and cred.expires_at > grant_expires_at


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def parse_time(v: object) -> datetime | None:
    if isinstance(v, datetime):
        return v
    if isinstance(v, str) and v:
        return datetime.fromisoformat(v.replace("Z", "+00:00"))
    return None


@dataclass(frozen=True)
class Pending:
    """A row not yet closed, with its grant's projection (state, expiry) as read with it."""

    grant_id: str
    provider: str
    credential: IssuedCredential
    target_key: str | None
    due: float | None
    state: str | None
    recorded_expiry: datetime | None  # the grants projection's expires_at

    def expiry(self) -> datetime | None:
        """The latest expiry anyone recorded: the row's (moved first by an extension) or the
        projection's. Never earlier than either, so the backstop never ends a grant early."""
        known = [t for t in (self.recorded_expiry, _from_epoch(self.due)) if t is not None]
        return max(known) if known else None


def _from_epoch(x: float | None) -> datetime | None:
    return datetime.fromtimestamp(x, UTC) if x is not None else None


class BackstopStore:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger  # its table comes from the ledger's migrations (revision 0003)
        # built once, the values as parameters: building the upsert per issue (its `excluded`
        # columns) cost 3x the CPU of running it (750 vs 250 us per issue + close, bench/README.md)
        upsert = ledger.insert_stmt(expiry_backstop)
        keep = ("provider", "credential", "target_key", "expires_at", "due", "done_at", "outcome", "acted_by")
        self._record_issue = upsert.on_conflict_do_update(
            index_elements=["grant_id"], set_={k: upsert.excluded[k] for k in keep}
        )
        self._close = (
            update(expiry_backstop)
            .where(expiry_backstop.c.grant_id == bindparam("row"), expiry_backstop.c.done_at.is_(None))
            .values(done_at=bindparam("at"), outcome=bindparam("how"), acted_by=bindparam("by"))
        )

    @property
    def engine(self):
        return self._ledger.engine

    # -- written by the activities ------------------------------------------------------------
    def record_issue(self, cred: IssuedCredential, expires_at: datetime | None) -> None:
        """After an issue: keep the reference and the expiry. A credential its provider ends on its
        own by then gets a closed row (`provider_ttl`). A repeated issue (activity retry) replaces
        the reference and opens the row again: whatever was issued again must be ended again."""
        now = datetime.now(UTC)
        needed = needs_backstop(cred, expires_at)
        values = {
            "grant_id": cred.grant_id,
            "provider": cred.provider,
            "credential": cred.model_dump_json(),
            "target_key": cred.shared_target,
            "expires_at": _iso(expires_at) if expires_at else None,
            "due": expires_at.timestamp() if expires_at else None,
            "created_at": _iso(now),
            "done_at": None if needed else _iso(now),
            "outcome": None if needed else PROVIDER_TTL,
            "acted_by": None,
        }
        with self.engine.begin() as conn:
            conn.execute(self._record_issue, values)

    def extend(self, grant_id: str, new_expiry: datetime) -> bool:
        """Move the row's expiry to an approved extension's, before the workflow records it.
        False when the backstop (or anything) has already ended the grant's access: the extension
        then fails and the grant ends at the expiry it had. True when there is no open row."""
        with self.engine.begin() as conn:
            res = conn.execute(
                update(expiry_backstop)
                .where(expiry_backstop.c.grant_id == grant_id, expiry_backstop.c.done_at.is_(None))
                .values(expires_at=_iso(new_expiry), due=new_expiry.timestamp())
                .execution_options(preserve_rowcount=True)
            )
            if res.rowcount:
                return True
            done = conn.execute(select(expiry_backstop.c.outcome).where(expiry_backstop.c.grant_id == grant_id)).first()
        return done is None or done[0] == PROVIDER_TTL

    def claim(self, conn: Connection, grant_id: str, by: str, lease: float) -> bool:
        """Inside the transaction that locked the row: claim it for `lease` seconds, unless another
        backstop's claim is still running."""
        now = datetime.now(UTC).timestamp()
        res = conn.execute(
            update(expiry_backstop)
            .where(expiry_backstop.c.grant_id == grant_id, expiry_backstop.c.done_at.is_(None))
            .where(
                expiry_backstop.c.claimed_until.is_(None)
                | (expiry_backstop.c.claimed_until < now)
                | (expiry_backstop.c.acted_by == by)
            )
            .values(acted_by=by, claimed_until=now + lease)
            .execution_options(preserve_rowcount=True)
        )
        return bool(res.rowcount)

    def close(self, grant_id: str, outcome: str, by: str | None = None, conn: Connection | None = None) -> None:
        """Close an open row (idempotent: a closed row keeps its first outcome)."""
        params = {"row": grant_id, "at": _iso(datetime.now(UTC)), "how": outcome, "by": by}
        if conn is not None:
            conn.execute(self._close, params)
            return
        with self.engine.begin() as c:
            c.execute(self._close, params)

    # -- read and locked by the backstop -------------------------------------------------------
    def pending(self, cutoff: float) -> list[Pending]:
        """Open rows due at `cutoff` (epoch s) by their own expiry, or of unknown expiry."""
        q = (
            select(expiry_backstop, grants.c.state, grants.c.expires_at.label("recorded_expiry"))
            .select_from(expiry_backstop.outerjoin(grants, grants.c.grant_id == expiry_backstop.c.grant_id))
            .where(expiry_backstop.c.done_at.is_(None))
            .where(expiry_backstop.c.due.is_(None) | (expiry_backstop.c.due <= cutoff))
        )
        with self.engine.connect() as conn:
            return [_pending(r) for r in conn.execute(q)]

    def next_due(self, after: float) -> float | None:
        """The earliest due time (epoch s) of an open row after `after`, if any."""
        q = select(func.min(expiry_backstop.c.due)).where(
            expiry_backstop.c.done_at.is_(None), expiry_backstop.c.due > after
        )
        with self.engine.connect() as conn:
            return conn.execute(q).scalar()

    def lock(self, conn: Connection, grant_id: str) -> Pending | None:
        """Inside a transaction: lock the grant's row (UPDATE first: row lock / SQLite write lock),
        then read it with its grant's projection as they are now. None when it is closed."""
        res = conn.execute(
            update(expiry_backstop)
            .where(expiry_backstop.c.grant_id == grant_id, expiry_backstop.c.done_at.is_(None))
            .values(due=expiry_backstop.c.due)
            .execution_options(preserve_rowcount=True)
        )
        if not res.rowcount:
            return None
        q = (
            select(expiry_backstop, grants.c.state, grants.c.expires_at.label("recorded_expiry"))
            .select_from(expiry_backstop.outerjoin(grants, grants.c.grant_id == expiry_backstop.c.grant_id))
            .where(expiry_backstop.c.grant_id == grant_id)
        )
        r = conn.execute(q).first()
        return _pending(r) if r is not None else None

    def catch_up(self, conn: Connection, grant_id: str, expiry: datetime) -> None:
        """The projection knows a later expiry than the row (an extension recorded by a worker
        that did not move the row): move the row, so the scan stops picking it up early."""
        conn.execute(
            update(expiry_backstop)
            .where(expiry_backstop.c.grant_id == grant_id)
            .values(expires_at=_iso(expiry), due=expiry.timestamp())
        )

    def row(self, grant_id: str) -> dict | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(expiry_backstop).where(expiry_backstop.c.grant_id == grant_id)).first()
        return dict(r._mapping) if r is not None else None

    # -- adoption: live grants issued before this table existed (or by an older worker) ----------
    def unrecorded_live_grants(self, limit: int = 200) -> list[str]:
        live = [s.value for s in (GrantState.active, GrantState.revoking, GrantState.revocation_failing)]
        q = (
            select(grants.c.grant_id)
            .where(grants.c.state.in_(live))
            .where(~select(expiry_backstop.c.grant_id).where(expiry_backstop.c.grant_id == grants.c.grant_id).exists())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(q)]

    def adopt(self, issued: IdentityEvent, target_key: str | None) -> None:
        """A row from a grant's `credential.issued` event (its data holds the same reference)."""
        d = issued.data
        cred = IssuedCredential(
            provider=str(d.get("provider")),
            grant_id=issued.grant_id,
            reference=str(d.get("reference")),
            details=d.get("details") or {},
            expires_at=parse_time(d.get("provider_expires_at")),
            shared_target=target_key,
        )
        expires = parse_time(d.get("expires_at"))
        now = datetime.now(UTC)
        needed = needs_backstop(cred, expires)
        stmt = self._ledger.insert_stmt(expiry_backstop).values(
            grant_id=cred.grant_id,
            provider=cred.provider,
            credential=cred.model_dump_json(),
            target_key=target_key,
            expires_at=_iso(expires) if expires else None,
            due=expires.timestamp() if expires else None,
            created_at=_iso(now),
            done_at=None if needed else _iso(now),
            outcome=None if needed else PROVIDER_TTL,
        )
        with self.engine.begin() as conn:
            conn.execute(stmt.on_conflict_do_nothing())


def _pending(r) -> Pending:
    m = r._mapping
    return Pending(
        grant_id=m["grant_id"],
        provider=m["provider"],
        credential=IssuedCredential.model_validate(json.loads(m["credential"])),
        target_key=m["target_key"],
        due=m["due"],
        state=m["state"],
        recorded_expiry=parse_time(m["recorded_expiry"]),
    )
