"""The offline verifier against a tampered ledger, on SQLite and PostgreSQL.

The ledger holds real grants run through a real worker (two approved full lifecycles in
checkpoint #1, an auto-approved grant revoked early in checkpoint #2). Each test copies it, tampers
with the database the way someone with write access to it could, and runs
`jitaccess evidence verify --ledger URL --public-key K --checkpoints DIR --command-key A --all --json`:
the verifier must exit non-zero and name the tampering precisely.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, delete, select, text, update
from typer.testing import CliRunner

from jitaccess.cli import app
from jitaccess.domain.commands import load_private_key
from jitaccess.domain.events import IdentityEvent, make_event
from jitaccess.domain.evidence import event_leaf_hash, sign_checkpoint
from jitaccess.ledger import Ledger
from jitaccess.ledger.evidence_log import (
    CheckpointError,
    all_events,
    evidence_checkpoints,
    evidence_log,
    load_checkpoint_key,
    make_checkpoint,
)
from jitaccess.ledger.migrate import upgrade
from jitaccess.ledger.store import _row, grants, identity_events
from tests.integration.evidence_support import Pristine, copy_rows, copy_sqlite, generate, other_key_text
from tests.support import throwaway_postgres

runner = CliRunner()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, temporal_server, openbao, catalogue_file, command_keys) -> Pristine:
    return generate(tmp_path_factory.mktemp("evidence"), temporal_server, openbao, catalogue_file, command_keys)


@pytest.fixture(scope="module")
def pg_evidence_db():
    with throwaway_postgres("jitaccess_evidence") as db:
        upgrade(db.url)
        yield db.url


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request, pristine, tmp_path) -> str:
    """A fresh copy of the pristine ledger on this backend."""
    if request.param == "sqlite":
        return copy_sqlite(pristine.url, tmp_path / "copy.db")
    url = request.getfixturevalue("pg_evidence_db")
    copy_rows(pristine.url, url)
    return url


def verify(pristine: Pristine, url: str, *extra: str, checkpoints: bool = True, target: str = "--all") -> dict:
    args = ["evidence", "verify", target, "--ledger", url, "--public-key", str(pristine.public_key)]
    args += ["--command-key", str(pristine.command_key), "--json", *extra]
    if checkpoints:
        args += ["--checkpoints", str(pristine.export_dir)]
    res = runner.invoke(app, args)
    assert res.exit_code in (0, 1), res.output
    report = json.loads(res.stdout)
    assert (res.exit_code == 0) == report["ok"], res.output
    return report


def kinds(report: dict) -> set[str]:
    return {f["kind"] for f in report["findings"]}


def named(report: dict, kind: str) -> list[dict]:
    return [f for f in report["findings"] if f["kind"] == kind]


def sql(url: str, *stmts) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for s in stmts:
                conn.execute(s)
    finally:
        engine.dispose()


def chain(url: str, grant_id: str) -> list[IdentityEvent]:
    led = Ledger(url)
    try:
        return led.events(grant_id)
    finally:
        led.close()


def test_the_untouched_ledger_verifies_with_every_command_signature(pristine, ledger_url):
    report = verify(pristine, ledger_url)
    assert report["ok"], report["findings"]
    assert report["checkpoints"] == 2 and report["pending"] == 0
    assert report["log_size"] == report["events"] == report["latest_checkpoint"]["tree_size"]
    # approve + claim on each approved grant, revoke on the other
    assert report["commands_verified"] == 2 * 2 + 1
    assert all(c["ok"] for c in report["chains"])


def test_a_command_signed_by_an_unknown_key_is_named(pristine, ledger_url, tmp_path):
    from jitaccess.domain.commands import public_key_text

    stranger = tmp_path / "stranger.pub"
    stranger.write_text(public_key_text(load_private_key(other_key_text()).public_key()))
    res = runner.invoke(
        app, ["evidence", "verify", "--all", "--ledger", ledger_url, "--command-key", str(stranger), "--json"]
    )
    assert res.exit_code == 1
    report = json.loads(res.stdout)
    assert kinds(report) == {"bad_command"}
    assert all("unknown_signer" in f["message"] for f in report["findings"])


def test_edit_one_field(pristine, ledger_url):
    gid = pristine.approved[0]
    ev = next(e for e in chain(ledger_url, gid) if e.type == "approval.granted")
    data = {**ev.data, "comment": "approved by the CISO"}
    sql(
        ledger_url,
        update(identity_events).where(identity_events.c.event_id == ev.event_id).values(data=json.dumps(data)),
    )
    report = verify(pristine, ledger_url)
    assert not report["ok"]
    [edit] = named(report, "edited_event")
    assert edit["event_id"] == ev.event_id and "no longer matches its hash" in edit["message"]
    assert kinds(report) <= {"edited_event", "checkpoint_mismatch", "bad_command"}


def test_delete_one_event(pristine, ledger_url):
    gid = pristine.approved[1]
    victim = f"{gid}:4"  # approval.granted: who approved is gone
    sql(ledger_url, delete(identity_events).where(identity_events.c.event_id == victim))
    report = verify(pristine, ledger_url)
    [gone] = named(report, "deleted_event")
    assert gone["event_id"] == victim
    assert "truncated_chain" not in kinds(report) and "deleted_grant" not in kinds(report)


def test_truncate_a_chain_by_its_last_event(pristine, ledger_url):
    gid = pristine.approved[0]
    last = chain(ledger_url, gid)[-1]
    assert last.type == "revocation.confirmed"
    sql(ledger_url, delete(identity_events).where(identity_events.c.event_id == last.event_id))
    report = verify(pristine, ledger_url)
    [cut] = named(report, "truncated_chain")
    assert cut["grant_id"] == gid and cut["event_id"] == last.event_id
    assert f"now ends at seq {last.seq - 1}" in cut["message"]


def test_delete_a_whole_grant(pristine, ledger_url):
    gid = pristine.revoked
    sql(
        ledger_url,
        delete(identity_events).where(identity_events.c.grant_id == gid),
        delete(grants).where(grants.c.grant_id == gid),
    )
    report = verify(pristine, ledger_url)
    [gone] = named(report, "deleted_grant")
    assert gone["grant_id"] == gid


def test_delete_a_whole_grant_and_its_log_entries_is_caught_by_the_checkpoint(pristine, ledger_url):
    gid = pristine.revoked
    sql(
        ledger_url,
        delete(identity_events).where(identity_events.c.grant_id == gid),
        delete(grants).where(grants.c.grant_id == gid),
        delete(evidence_log).where(evidence_log.c.grant_id == gid),
    )
    report = verify(pristine, ledger_url)
    assert "log_gap" in kinds(report) or "checkpoint_mismatch" in kinds(report)
    [mismatch] = named(report, "checkpoint_mismatch")
    assert mismatch["checkpoint"] == 2 and "truncated" in mismatch["message"]


def test_swap_two_events(pristine, ledger_url):
    gid = pristine.approved[0]
    a, b = f"{gid}:5", f"{gid}:6"  # grant.approved <-> credential.issued
    sql(
        ledger_url,
        update(identity_events).where(identity_events.c.event_id == a).values(event_id="tmp", seq=-1),
        update(identity_events).where(identity_events.c.event_id == b).values(event_id=a, seq=5),
        update(identity_events).where(identity_events.c.event_id == "tmp").values(event_id=b, seq=6),
    )
    report = verify(pristine, ledger_url)
    swapped = named(report, "swapped_events")
    assert {f["event_id"] for f in swapped} == {a, b}
    assert any(f"logged as {b}" in f["message"] for f in swapped)


def test_reorder_the_log(pristine, ledger_url):
    gid = pristine.approved[1]
    engine = create_engine(ledger_url)
    with engine.connect() as conn:
        rows = {
            r.event_id: r.log_index for r in conn.execute(select(evidence_log).where(evidence_log.c.grant_id == gid))
        }
    engine.dispose()
    i, j = rows[f"{gid}:2"], rows[f"{gid}:3"]
    sql(
        ledger_url,
        update(evidence_log).where(evidence_log.c.log_index == i).values(log_index=-1),
        update(evidence_log).where(evidence_log.c.log_index == j).values(log_index=i),
        update(evidence_log).where(evidence_log.c.log_index == -1).values(log_index=j),
    )
    report = verify(pristine, ledger_url)
    [moved] = named(report, "reordered_log")
    assert moved["grant_id"] == gid and moved["event_id"] == f"{gid}:2"
    assert {m["checkpoint"] for m in named(report, "checkpoint_mismatch")} == {1, 2}


def _rewrite(url: str, grant_id: str) -> list[IdentityEvent]:
    """Rewrite a chain consistently from its start: a different reason on grant.requested, every
    hash recomputed, and the log's hashes updated to match. Every chain verifies afterwards."""
    old = chain(url, grant_id)
    new: list[IdentityEvent] = []
    prev = None
    for ev in old:
        data = {**ev.data, "reason": "routine maintenance"} if ev.seq == 1 else ev.data
        prev = make_event(grant_id, prev, ev.type, datetime_of(ev.at), ev.actor, data)
        new.append(prev)
    stmts = [delete(identity_events).where(identity_events.c.grant_id == grant_id)]
    stmts += [identity_events.insert().values(_row(e)) for e in new]
    stmts += [
        update(evidence_log)
        .where(evidence_log.c.event_id == e.event_id)
        .values(event_hash=e.hash, leaf_hash=event_leaf_hash(e))
        for e in new
    ]
    sql(url, *stmts)
    return new


def datetime_of(at: str):
    from jitaccess.domain.events import parse_at

    return parse_at(at)


def test_rewrite_a_chain_consistently_from_its_start_is_caught_by_the_checkpoint(pristine, ledger_url):
    gid = pristine.approved[0]
    new = _rewrite(ledger_url, gid)
    assert Ledger(ledger_url).verify(gid).ok  # the hash chain alone cannot tell
    report = verify(pristine, ledger_url)
    assert kinds(report) == {"checkpoint_mismatch"}, report["findings"]
    first = min(named(report, "checkpoint_mismatch"), key=lambda f: f["checkpoint"])
    assert first["checkpoint"] == 1 and "no longer hash to this checkpoint's signed root" in first["message"]
    assert new[0].event_id in first["message"] or "..." in first["message"]


def test_forge_a_checkpoint_with_another_key(pristine, ledger_url):
    """The rewrite above, covered by checkpoints re-made and signed with the attacker's own key."""
    gid = pristine.approved[0]
    _rewrite(ledger_url, gid)
    forger = load_private_key(other_key_text())
    engine = create_engine(ledger_url)
    with engine.begin() as conn:
        leaves = [
            bytes.fromhex(r.leaf_hash) for r in conn.execute(select(evidence_log).order_by(evidence_log.c.log_index))
        ]
        rows = list(conn.execute(select(evidence_checkpoints).order_by(evidence_checkpoints.c.number)))
        from jitaccess.domain import merkle

        prev = None
        for r in rows:
            cp = sign_checkpoint(
                forger,
                number=r.number,
                tree_size=r.tree_size,
                root_hash=merkle.root(leaves[: r.tree_size]).hex(),
                issued_at=r.issued_at,
                prev=prev,
            )
            conn.execute(
                update(evidence_checkpoints)
                .where(evidence_checkpoints.c.number == r.number)
                .values(**cp.model_dump(exclude={"v"}))
            )
            prev = cp
    engine.dispose()
    report = verify(pristine, ledger_url, checkpoints=False)
    forged = named(report, "forged_checkpoint")
    assert {f["checkpoint"] for f in forged} == {1, 2}
    assert all("not a checkpoint key" in f["message"] for f in forged)
    assert report["checkpoints"] == 0
    # with the exported copies, the verifier still has the genuine checkpoints: the rewrite shows
    report = verify(pristine, ledger_url)
    assert kinds(report) == {"forged_checkpoint", "checkpoint_mismatch"}
    replaced = named(report, "forged_checkpoint")
    assert {f["checkpoint"] for f in replaced} == {1, 2} and all("replaced" in f["message"] for f in replaced)


def test_deleted_checkpoints_are_named_from_the_exported_copies(pristine, ledger_url):
    sql(ledger_url, delete(evidence_checkpoints).where(evidence_checkpoints.c.number == 2))
    report = verify(pristine, ledger_url)
    [gone] = named(report, "checkpoint_missing")
    assert gone["checkpoint"] == 2 and "gone from the ledger" in gone["message"]


def test_the_checkpointer_refuses_to_sign_over_a_tampered_log(pristine, ledger_url):
    key = load_checkpoint_key(pristine.key_file)
    sql(ledger_url, delete(evidence_log).where(evidence_log.c.log_index == 3))
    led = Ledger(ledger_url)
    try:
        with pytest.raises(CheckpointError, match="no longer matches checkpoint #2"):
            make_checkpoint(led, key)
        sql(ledger_url, delete(evidence_checkpoints), delete(evidence_log))
        with pytest.raises(CheckpointError, match="lost checkpoints"):
            make_checkpoint(led, key, pristine.export_dir)
        assert len(all_events(led)) > 0
    finally:
        led.close()


def test_an_event_added_after_the_fact_is_named(pristine, ledger_url):
    gid = pristine.revoked
    evs = chain(ledger_url, gid)
    # rewrite the chain from seq 3 on with one more event in the middle (hashes consistent)
    keep, rest = evs[:2], evs[2:]
    prev = keep[-1]
    new = []
    extra = make_event(gid, prev, "approval.granted", datetime_of(prev.at), prev.actor, {"comment": "backdated"})
    new.append(extra)
    prev = extra
    for ev in rest:
        prev = make_event(gid, prev, ev.type, datetime_of(ev.at), ev.actor, ev.data)
        new.append(prev)
    stmts = [delete(identity_events).where(identity_events.c.grant_id == gid, identity_events.c.seq > 2)]
    stmts += [identity_events.insert().values(_row(e)) for e in new]
    sql(ledger_url, *stmts)
    report = verify(pristine, ledger_url)
    assert {"edited_event"} <= kinds(report)
    assert named(report, "edited_event")[0]["event_id"] == f"{gid}:3"


def test_text_output_names_the_finding(pristine, ledger_url):
    sql(ledger_url, text(f"DELETE FROM identity_events WHERE event_id = '{pristine.approved[1]}:4'"))
    res = runner.invoke(
        app,
        ["evidence", "verify", "--all", "--ledger", ledger_url, "--public-key", str(pristine.public_key)],
    )
    assert res.exit_code == 1
    assert "deleted_event" in res.output and f"{pristine.approved[1]}:4" in res.output


def test_one_grant(pristine, ledger_url):
    report = verify(pristine, ledger_url, target=pristine.revoked)
    assert report["ok"] and [c["grant_id"] for c in report["chains"]] == [pristine.revoked]
