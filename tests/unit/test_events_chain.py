"""The per-grant identity-event hash chain: building, verifying, naming the first broken link."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from jitaccess.domain.events import (
    GENESIS_HASH,
    IdentityEvent,
    canonical_json,
    compute_hash,
    format_at,
    make_event,
    verify_chain,
)
from jitaccess.domain.principals import SYSTEM_ACTOR, Actor, ActorKind, ActorRole

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
ALICE = Actor(id="alice", kind=ActorKind.human, role=ActorRole.requester)
BOB = Actor(id="bob", kind=ActorKind.human, role=ActorRole.approver)
WORKER = Actor(id="jitaccess-worker", kind=ActorKind.service, role=ActorRole.executor)

STEPS = [
    ("grant.requested", ALICE, {"entitlement": "secrets-admin", "reason": "fix INC-7"}),
    ("policy.decided", SYSTEM_ACTOR, {"outcome": "allow", "policy_version": "sha256:abc", "reason_codes": []}),
    ("approval.granted", BOB, {"comment": "ok", "votes": 1}),
    ("credential.issued", WORKER, {"reference": "acc-1", "policies": ["jit-platform-admin"]}),
    ("fulfilment.verified", WORKER, {"verified": True}),
]


def build_chain(grant_id: str = "g-1") -> list[IdentityEvent]:
    chain: list[IdentityEvent] = []
    prev = None
    for i, (type_, actor, data) in enumerate(STEPS):
        prev = make_event(grant_id, prev, type_, T0 + timedelta(seconds=i), actor, data)
        chain.append(prev)
    return chain


def test_chain_shape_and_verifies():
    chain = build_chain()
    assert [e.seq for e in chain] == [1, 2, 3, 4, 5]
    assert [e.event_id for e in chain] == [f"g-1:{i}" for i in range(1, 6)]
    assert chain[0].prev_hash == GENESIS_HASH
    for a, b in zip(chain, chain[1:]):
        assert b.prev_hash == a.hash
    for e in chain:
        assert len(e.hash) == 64 and e.computed_hash() == e.hash
    v = verify_chain("g-1", chain)
    assert v.ok and v.events == 5 and v.first_broken is None and v.problem is None
    assert v.last_hash == chain[-1].hash


def test_empty_chain_is_not_ok():
    v = verify_chain("g-1", [])
    assert not v.ok and v.events == 0 and v.first_broken is None
    assert "no events" in v.problem


@pytest.mark.parametrize(
    "update",
    [
        {"data": {"comment": "ok", "votes": 2}},
        {"data": {}},
        {"actor": Actor(id="mallory", kind=ActorKind.human, role=ActorRole.approver)},
        {"actor": Actor(id="bob", kind=ActorKind.agent, role=ActorRole.approver)},
        {"type": "approval.denied"},
        {"at": format_at(T0 + timedelta(hours=1))},
        {"hash": "f" * 64},
    ],
    ids=["data", "data-emptied", "actor-id", "actor-kind", "type", "at", "hash"],
)
def test_tampered_third_event_is_named(update):
    chain = build_chain()
    chain[2] = chain[2].model_copy(update=update)
    v = verify_chain("g-1", chain)
    assert not v.ok
    assert v.first_broken == "g-1:3"
    assert "hash" in v.problem
    assert v.events == 3


def test_tamper_and_rehash_breaks_the_next_link():
    """Recomputing the altered event's own hash just moves the break to the next event."""
    chain = build_chain()
    body = chain[2].body()
    body["data"] = {"comment": "ok", "votes": 99}
    chain[2] = IdentityEvent(**body, hash=compute_hash(body))
    v = verify_chain("g-1", chain)
    assert not v.ok and v.first_broken == "g-1:4"
    assert "prev_hash" in v.problem


def test_removed_event_names_the_seq_gap():
    chain = build_chain()
    del chain[2]
    v = verify_chain("g-1", chain)
    assert not v.ok
    assert v.first_broken == "g-1:4"
    assert "sequence gap" in v.problem and "expected seq 3" in v.problem and "found 4" in v.problem


def test_removed_last_event_still_verifies_prefix():
    # truncation of the tail is not detectable by the chain alone; the prefix is valid
    chain = build_chain()[:-1]
    assert verify_chain("g-1", chain).ok


def test_reordered_events():
    chain = build_chain()
    chain[1], chain[2] = chain[2], chain[1]
    v = verify_chain("g-1", chain)
    assert not v.ok
    assert v.first_broken == "g-1:3"
    assert "sequence gap" in v.problem


def test_renumbered_reorder_detected_by_prev_hash():
    """Swap two events and fix up seq/event_id (but not hashes): prev_hash catches it."""
    chain = build_chain()
    a, b = chain[1], chain[2]
    chain[1] = b.model_copy(update={"seq": 2, "event_id": "g-1:2"})
    chain[2] = a.model_copy(update={"seq": 3, "event_id": "g-1:3"})
    v = verify_chain("g-1", chain)
    assert not v.ok and v.first_broken == "g-1:2"
    assert "prev_hash" in v.problem


def test_wrong_grant():
    chain = build_chain("g-1")
    v = verify_chain("g-2", chain)
    assert not v.ok and v.first_broken == "g-1:1"
    assert "g-1" in v.problem and "g-2" in v.problem

    other = build_chain("g-2")
    mixed = chain[:2] + [other[2]] + chain[3:]
    v = verify_chain("g-1", mixed)
    assert not v.ok and v.first_broken == "g-2:3"
    assert "belongs to g-2" in v.problem


def test_mismatched_event_id():
    chain = build_chain()
    chain[3] = chain[3].model_copy(update={"event_id": "g-1:x"})
    v = verify_chain("g-1", chain)
    assert not v.ok and v.first_broken == "g-1:x"
    assert "event_id" in v.problem


def test_hashes_are_deterministic():
    a, b = build_chain(), build_chain()
    assert [e.hash for e in a] == [e.hash for e in b]
    assert a == b
    # a different grant id, time or actor gives different hashes
    assert build_chain("g-2")[0].hash != a[0].hash
    other = make_event("g-1", None, STEPS[0][0], T0 + timedelta(microseconds=1), ALICE, STEPS[0][2])
    assert other.hash != a[0].hash


def test_hash_independent_of_data_key_order_and_tz_representation():
    d1 = {"b": 1, "a": {"y": [1, 2], "x": None}, "c": "é"}
    d2 = {"c": "é", "a": {"x": None, "y": [1, 2]}, "b": 1}
    assert list(d1) != list(d2)
    e1 = make_event("g-1", None, "grant.requested", T0, ALICE, d1)
    e2 = make_event("g-1", None, "grant.requested", T0, ALICE, d2)
    assert e1.hash == e2.hash
    # the same instant in another timezone, or naive (taken as UTC), hashes the same
    plus2 = timezone(timedelta(hours=2))
    e3 = make_event("g-1", None, "grant.requested", T0.astimezone(plus2), ALICE, d1)
    e4 = make_event("g-1", None, "grant.requested", T0.replace(tzinfo=None), ALICE, d1)
    assert e3.at == e4.at == e1.at == "2025-03-01T12:00:00.123456Z"
    assert e3.hash == e4.hash == e1.hash


def test_canonical_json():
    a = {"z": 1, "a": [3, {"q": 1, "b": 2}], "m": "ü"}
    b = {"m": "ü", "a": [3, {"b": 2, "q": 1}], "z": 1}
    assert canonical_json(a) == canonical_json(b) == '{"a":[3,{"b":2,"q":1}],"m":"ü","z":1}'
    assert compute_hash(a) == compute_hash(b)
    # list order is significant
    assert canonical_json({"a": [1, 2]}) != canonical_json({"a": [2, 1]})


def test_event_survives_json_round_trip():
    chain = build_chain()
    again = [IdentityEvent.model_validate(json.loads(e.model_dump_json())) for e in chain]
    assert again == chain
    assert verify_chain("g-1", again).ok


def test_make_event_defaults_and_copies_data():
    data = {"k": [1]}
    e = make_event("g-1", None, "grant.requested", T0, ALICE, data)
    data["k"].append(2)
    assert e.data == {"k": [1]}  # the event holds its own copy
    assert e.computed_hash() == e.hash
    e0 = make_event("g-1", None, "grant.requested", T0, ALICE)
    assert e0.data == {} and e0.computed_hash() == e0.hash


def test_format_at():
    assert format_at(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2025-01-02T03:04:05.000000Z"
    assert (
        format_at(datetime(2025, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))) == "2025-01-02T03:04:05.000000Z"
    )
