"""The offline evidence verifier's pieces, in memory: the log checks, the checkpoint checks and the
re-verification of recorded commands (the ledger-backed tampering cases are in
tests/integration/test_evidence_tamper.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from jitaccess.domain import merkle
from jitaccess.domain.commands import public_key_id
from jitaccess.domain.events import IdentityEvent, format_at, make_event
from jitaccess.domain.evidence import LogEntry, event_leaf, event_leaf_hash, sign_checkpoint
from jitaccess.domain.evidence_findings import FindingKind, Verification
from jitaccess.domain.evidence_verify import verify_evidence
from jitaccess.domain.evidence_verify_checkpoints import trusted_checkpoints
from jitaccess.domain.evidence_verify_log import changed_event
from jitaccess.domain.principals import SYSTEM_ACTOR

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()


def chain(grant_id: str, n: int) -> list[IdentityEvent]:
    out: list[IdentityEvent] = []
    prev = None
    for i in range(n):
        prev = make_event(grant_id, prev, "step", T0 + timedelta(seconds=i), SYSTEM_ACTOR, {"i": i})
        out.append(prev)
    return out


def logged(events: list[IdentityEvent]) -> list[LogEntry]:
    return [
        LogEntry(
            log_index=i,
            event_id=ev.event_id,
            grant_id=ev.grant_id,
            seq=ev.seq,
            event_hash=ev.hash,
            leaf_hash=event_leaf_hash(ev),
        )
        for i, ev in enumerate(events)
    ]


def checkpoint(events: list[IdentityEvent], number: int = 1, prev=None):
    root = merkle.root([merkle.leaf_hash(event_leaf(ev)) for ev in events]).hex()
    return sign_checkpoint(
        KEY, number=number, tree_size=len(events), root_hash=root, issued_at=format_at(T0), prev=prev
    )


def kinds(report) -> list[FindingKind]:
    return [f.kind for f in report.findings]


def test_an_untouched_log_with_a_checkpoint_verifies():
    evs = chain("g-1", 3) + chain("g-2", 2)
    report = verify_evidence(evs, logged(evs), [checkpoint(evs)], checkpoint_keys=[KEY.public_key()])
    assert report.ok, report.findings
    assert (report.events, report.log_size, report.checkpoints, report.pending) == (5, 5, 1, 0)


def test_a_deleted_middle_event_and_a_truncated_tail_are_named():
    evs = chain("g-1", 4)
    report = verify_evidence([evs[0], evs[2]], logged(evs), [])
    assert kinds(report)[:2] == [FindingKind.deleted_event, FindingKind.truncated_chain]
    assert report.findings[0].event_id == "g-1:2" and report.findings[0].log_index == 1
    assert report.findings[1].event_id == "g-1:4"


def test_a_log_gap_and_a_reordered_log_are_named():
    evs = chain("g-1", 3)
    entries = logged(evs)
    gap = verify_evidence(evs, [entries[0], entries[2]], [])
    assert FindingKind.log_gap in kinds(gap)
    swapped = [entries[1].model_copy(update={"log_index": 0}), entries[0].model_copy(update={"log_index": 1})]
    reordered = verify_evidence(evs[:2], swapped + [entries[2]], [])
    assert FindingKind.reordered_log in kinds(reordered)


def test_changed_event_tells_a_swap_from_an_edit_from_a_rehash():
    evs = chain("g-1", 2)
    entries = logged(evs)
    logged_as = {e.event_hash: e for e in entries}
    swapped = evs[0].model_copy(update={"event_id": evs[1].event_id})
    assert changed_event(entries[1], swapped, logged_as)[0] is FindingKind.swapped_events
    edited = evs[1].model_copy(update={"data": {"i": 99}})
    kind, message = changed_event(entries[1], edited, logged_as)
    assert kind is FindingKind.edited_event and "no longer matches its hash" in message
    rehashed = edited.model_copy(update={"hash": edited.computed_hash()})
    kind, message = changed_event(entries[1], rehashed, logged_as)
    assert kind is FindingKind.edited_event and "recomputed hash" in message


def test_trusted_checkpoints_prefer_the_export_and_name_a_replaced_ledger_copy():
    evs = chain("g-1", 2)
    exported = checkpoint(evs)
    replaced = exported.model_copy(update={"root_hash": "00" * 32})  # altered after signing
    out = Verification(None)
    trusted = trusted_checkpoints([replaced], [exported], {public_key_id(KEY.public_key()): KEY.public_key()}, out)
    assert trusted == {1: exported}
    assert [f.kind for f in out.findings] == [FindingKind.forged_checkpoint]
    assert "replaced" in out.findings[0].message


def test_a_rewritten_chain_no_longer_matches_the_signed_root():
    evs = chain("g-1", 3)
    cp = checkpoint(evs)
    edited = evs[2].model_copy(update={"data": {"i": 7}})
    rewritten = [*evs[:2], edited.model_copy(update={"hash": edited.computed_hash()})]  # and re-logged
    report = verify_evidence(rewritten, logged(rewritten), [cp], checkpoint_keys=[KEY.public_key()])
    assert kinds(report) == [FindingKind.checkpoint_mismatch]
    assert "positions 0..2" in report.findings[0].message


def test_without_keys_the_checkpoints_and_commands_are_noted_not_checked():
    evs = chain("g-1", 1)
    report = verify_evidence(evs, logged(evs), [checkpoint(evs)])
    assert report.ok and report.checkpoints == 0
    assert any("no checkpoint public key" in n for n in report.notes)
