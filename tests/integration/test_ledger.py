"""The ledger against real databases: SQLite (tmp file) and PostgreSQL (a fresh database per session)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from jitaccess.domain.events import IdentityEvent, make_event
from jitaccess.domain.principals import SYSTEM_ACTOR, Actor, ActorKind, ActorRole
from jitaccess.ledger import Ledger
from tests.support import throwaway_postgres

T0 = datetime(2025, 3, 1, 12, 0, 0, 1, tzinfo=UTC)
ALICE = Actor(id="alice", kind=ActorKind.human, role=ActorRole.requester)
WORKER = Actor(id="jitaccess-worker", kind=ActorKind.service, role=ActorRole.executor)


@pytest.fixture(scope="session")
def pg_database():
    """A throwaway PostgreSQL database for this session; skip when PostgreSQL is not running."""
    with throwaway_postgres("jitaccess_test") as db:
        yield db.url


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/nested/ledger.db"
    else:
        url = request.getfixturevalue("pg_database")
    led = Ledger(url, upgrade=True)
    if request.param == "postgresql":
        # the database is shared by the session: start every test from empty tables
        with led.engine.begin() as conn:
            conn.execute(text("DELETE FROM identity_events"))
            conn.execute(text("DELETE FROM grants"))
    yield led
    led.close()


def chain(grant_id: str, n: int = 5, start: datetime = T0, data_extra: dict | None = None) -> list[IdentityEvent]:
    out: list[IdentityEvent] = []
    prev = None
    types = [
        "grant.requested",
        "policy.decided",
        "credential.issued",
        "fulfilment.verified",
        "grant.expired",
        "revocation.confirmed",
        "review.completed",
    ]
    for i in range(n):
        data = {
            "i": i,
            "nested": {"z": [1, 2.5, None, True], "a": "ünïcødé ✓", "quote": 'he said "hi"\n'},
            "big": 2**53 + 1,
            **(data_extra or {}),
        }
        actor = ALICE if i == 0 else (SYSTEM_ACTOR if i == 1 else WORKER)
        prev = make_event(
            grant_id, prev, types[i % len(types)], start + timedelta(seconds=i, microseconds=i), actor, data
        )
        out.append(prev)
    return out


def summary(grant_id: str, state: str, seq: int, requester: str = "alice", **kw) -> dict:
    return {
        "grant_id": grant_id,
        "state": state,
        "entitlement": "secrets-readonly",
        "requester": requester,
        "provider": "vault_token",
        "expires_at": kw.get("expires_at"),
        "seq": seq,
    }


def test_sqlite_creates_parent_dir(tmp_path):
    led = Ledger(f"sqlite:///{tmp_path}/a/b/c/ledger.db", upgrade=True)
    try:
        assert (tmp_path / "a/b/c/ledger.db").exists()
    finally:
        led.close()


def test_unsupported_dialect():
    with pytest.raises(Exception):
        Ledger("mysql+pymysql://nobody@127.0.0.1:1/x")


def test_append_is_idempotent_on_event_id(ledger):
    evs = chain("g-1")
    assert ledger.append(evs, summary("g-1", "active", 5)) == 5
    before = ledger.events("g-1")
    assert ledger.append(evs, summary("g-1", "active", 5)) == 0
    assert ledger.events("g-1") == before == evs
    # a retried batch overlapping what is stored inserts only the new rows
    more = chain("g-1", 7)
    assert ledger.append(more[3:], summary("g-1", "revoked", 7)) == 2
    assert ledger.events("g-1") == more
    assert ledger.append([]) == 0
    assert ledger.grant_ids() == ["g-1"]


def test_events_round_trip_exactly(ledger):
    evs = chain("g-rt")
    ledger.append(evs)
    got = ledger.events("g-rt")
    assert got == evs
    for a, b in zip(got, evs):
        assert a.at == b.at and a.data == b.data and a.actor == b.actor
        assert a.computed_hash() == a.hash
    assert got[0].at == "2025-03-01T12:00:00.000001Z"
    v = ledger.verify("g-rt")
    assert v.ok and v.events == 5 and v.last_hash == evs[-1].hash


def test_verify_names_tampered_row(ledger):
    ledger.append(chain("g-t"))
    ledger.append(chain("g-ok"))
    with ledger.engine.begin() as conn:
        n = conn.execute(
            text("UPDATE identity_events SET data = :d WHERE event_id = :e"),
            {"d": '{"i": 2, "tampered": true}', "e": "g-t:3"},
        ).rowcount
        assert n == 1
    v = ledger.verify("g-t")
    assert not v.ok and v.first_broken == "g-t:3" and "hash" in v.problem
    results = {r.grant_id: r for r in ledger.verify_all()}
    assert results["g-ok"].ok and not results["g-t"].ok
    assert results["g-t"].first_broken == "g-t:3"


def test_verify_names_deleted_row_and_unknown_grant(ledger):
    ledger.append(chain("g-d"))
    with ledger.engine.begin() as conn:
        conn.execute(text("DELETE FROM identity_events WHERE event_id = 'g-d:2'"))
    v = ledger.verify("g-d")
    assert not v.ok and v.first_broken == "g-d:3" and "sequence gap" in v.problem
    v = ledger.verify("nope")
    assert not v.ok and v.events == 0


def test_summary_only_moves_forward(ledger):
    evs = chain("g-s", 5)
    ledger.append(evs[:1], summary("g-s", "requested", 1))
    row = ledger.grant("g-s")
    assert row["state"] == "requested" and row["seq"] == 1
    created = row["created_at"]
    assert created == evs[0].at

    ledger.append(evs[1:4], summary("g-s", "active", 4, expires_at="2025-03-01T13:00:00+00:00"))
    row = ledger.grant("g-s")
    assert row["state"] == "active" and row["seq"] == 4
    assert row["expires_at"] == "2025-03-01T13:00:00+00:00"
    assert row["created_at"] == created and row["updated_at"] == evs[3].at

    # a late, stale write (lower seq) does not roll the state back
    ledger.append(evs[1:2], summary("g-s", "awaiting_approval", 2))
    row = ledger.grant("g-s")
    assert row["state"] == "active" and row["seq"] == 4 and row["updated_at"] == evs[3].at

    ledger.append(evs[4:], summary("g-s", "revoked", 5))
    row = ledger.grant("g-s")
    assert row["state"] == "revoked" and row["seq"] == 5
    assert row["created_at"] == created
    assert ledger.grant("missing") is None


def test_grants_filters(ledger):
    ledger.append(chain("g-a1", 2, T0), summary("g-a1", "active", 2, requester="alice"))
    ledger.append(chain("g-a2", 2, T0 + timedelta(minutes=1)), summary("g-a2", "revoked", 2, requester="alice"))
    ledger.append(chain("g-d1", 2, T0 + timedelta(minutes=2)), summary("g-d1", "active", 2, requester="dave"))

    def ids(**kw):
        return [r["grant_id"] for r in ledger.grants(**kw)]

    assert ids() == ["g-d1", "g-a2", "g-a1"]  # newest first
    assert ids(state="active") == ["g-d1", "g-a1"]
    assert ids(requester="alice") == ["g-a2", "g-a1"]
    assert ids(state="active", requester="alice") == ["g-a1"]
    assert ids(state="denied") == []
    assert ids(limit=1) == ["g-d1"]


def test_events_after_cursor_paging(ledger):
    # interleave three grants in time; two events share an `at` to exercise the event_id tiebreak
    all_events: list[IdentityEvent] = []
    for k, gid in enumerate(["g-x", "g-y", "g-z"]):
        all_events += chain(gid, 4, T0 + timedelta(milliseconds=300 * k))
    same_at = make_event("g-w", None, "grant.requested", T0, ALICE, {})
    all_events.append(same_at)
    for gid in ["g-z", "g-x", "g-w", "g-y"]:  # insertion order must not matter
        ledger.append([e for e in all_events if e.grant_id == gid])

    expected = sorted(all_events, key=lambda e: (e.at, e.event_id))
    seen: list[IdentityEvent] = []
    cursor = ""
    pages = 0
    while True:
        page = ledger.events_after(cursor, limit=4)
        if not page:
            break
        pages += 1
        assert len(page) <= 4
        seen += page
        cursor = f"{page[-1].at}|{page[-1].event_id}"
    assert pages == 4  # 13 events in pages of 4
    assert [e.event_id for e in seen] == [e.event_id for e in expected]
    assert seen == expected
    assert ledger.events_after(cursor) == []
    # resuming from the middle gives just the rest
    mid = expected[6]
    assert ledger.events_after(f"{mid.at}|{mid.event_id}") == expected[7:]


def test_grant_rows_keep_their_read_facts_and_lists_filter_on_them(ledger):
    """Issue 8: the `scope` column (jitaccess.domain.access.ReadFacts) moves forward with the row, a
    summary without it leaves it alone, and `visible` filters before the limit."""
    for i, who in enumerate(["alice", "dave", "alice", "dave", "alice"]):
        scope = {"object_id": f"g-v{i}", "requester": who, "deciders": []}
        ledger.append(
            chain(f"g-v{i}", 1, T0 + timedelta(minutes=i)), {**summary(f"g-v{i}", "requested", 1, who), "scope": scope}
        )
    ledger.append(
        chain("g-v0", 2)[1:],
        {**summary("g-v0", "active", 2), "scope": {"object_id": "g-v0", "requester": "alice", "deciders": ["bob"]}},
    )
    assert ledger.grant("g-v0")["scope"]["deciders"] == ["bob"]
    ledger.append(chain("g-v0", 3)[2:], summary("g-v0", "active", 3))  # no scope in this summary: kept
    assert ledger.grant("g-v0")["scope"]["deciders"] == ["bob"]

    def alices(row):
        return row["scope"]["requester"] == "alice"

    assert [r["grant_id"] for r in ledger.grants(visible=alices)] == ["g-v4", "g-v2", "g-v0"]
    assert [r["grant_id"] for r in ledger.grants(visible=alices, limit=2)] == ["g-v4", "g-v2"]
    assert [r["grant_id"] for r in ledger.grants(visible=lambda r: "bob" in r["scope"]["deciders"])] == ["g-v0"]


def test_concurrent_appends_are_all_stored_and_each_caller_gets_its_own_count(ledger):
    """64 threads (a worker's activity slots) flushing 2 grants each in 3 batches, at once: group
    commit writes them many to a transaction; nothing is lost, chains verify, summaries end last."""
    grants = [f"g-c{i}" for i in range(128)]
    chains = {g: chain(g, 7) for g in grants}
    counts: list[int] = []
    start = threading.Barrier(64)

    def writer(mine: list[str]) -> None:
        start.wait()
        for g in mine:
            evs = chains[g]
            for lo, hi, state in ((0, 2, "requested"), (2, 5, "active"), (5, 7, "revoked")):
                counts.append(ledger.append(evs[lo:hi], summary(g, state, hi)))

    threads = [threading.Thread(target=writer, args=(grants[i::64],)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(counts) == 7 * len(grants) and len(counts) == 3 * len(grants)
    for g in grants:
        assert ledger.events(g) == chains[g] and ledger.verify(g).ok
        row = ledger.grant(g)
        assert (row["state"], row["seq"], row["created_at"]) == ("revoked", 7, chains[g][0].at)


def test_in_one_batch_a_bad_append_fails_alone_and_a_grant_twice_keeps_its_latest_summary(ledger):
    from jitaccess.ledger.store import _Append, _row

    ok, bad = chain("g-ok", 4), chain("g-bad", 1)
    batch = [
        _Append([_row(e) for e in ok[:2]], summary("g-ok", "requested", 2)),
        _Append([_row(e) for e in bad], summary("g-bad", None, 1)),  # a grant row without a state
        _Append([_row(e) for e in ok[2:]], summary("g-ok", "active", 4)),
        _Append([_row(e) for e in ok[:2]], summary("g-ok", "requested", 2)),  # a retry of the first
    ]
    counts = ledger._append_batch(batch)
    assert counts[0] == 2 and isinstance(counts[1], Exception) and counts[2:] == [2, 0]
    assert ledger.events("g-ok") == ok and ledger.grant("g-ok")["state"] == "active"
    assert ledger.grant("g-ok")["created_at"] == ok[0].at
    assert ledger.events("g-bad") == [] and ledger.grant("g-bad") is None  # its transaction rolled back
    # written together: one grant twice keeps the furthest summary and its first created_at
    two = chain("g-two", 4)
    batch = [
        _Append([_row(e) for e in two[2:]], summary("g-two", "active", 4)),
        _Append([_row(e) for e in two[:2]], summary("g-two", "requested", 2)),
        _Append([_row(e) for e in two[:2]], summary("g-two", "requested", 2)),  # its retry, same batch
    ]
    assert ledger._append_batch(batch) == [2, 2, 0]
    row = ledger.grant("g-two")
    assert (row["state"], row["seq"], row["created_at"]) == ("active", 4, two[0].at)
