"""Replay: GrantWorkflow must stay deterministic against histories it already wrote.

Grants live for hours (approval waits, expiry timers, revocation that retries
forever), so workers are deployed while grants are in flight and every new
worker replays histories written by the old code. This test replays
tests/fixtures/histories/grant_full_lifecycle.json — a recorded secrets-admin
lifecycle: request, bob's approve update, alice's claim_credential update,
expiry timer, confirmed revocation, local-activity ledger flushes —, the same
lifecycle with signed commands, a break-glass grant with an approved extension and
a review (recorded before and after the lifecycle state machine), and a history
recorded fresh in this run.

The fixture was written by the first GrantWorkflow (commit 5316562): it is a
history from an older release, and it still replays because inputs written then
are upgraded on read (PolicyDecision._single_stage_from_legacy turns the old
approver_groups/min_approvals into the one approval stage they meant).

If you change GrantWorkflow and this replay fails, running grants would fail
the same way on deploy. Do not just re-record the fixture: gate the new
behaviour with `patches.patched("<change-id>")` (jitaccess/workflows/patches.py; keep the old path for old
histories), upgrade old inputs on read, or ship it as a new workflow type; then
add a new recording beside the old one (tests/fixtures/record_history.py OUT.json).
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from jitaccess.domain import contracts as c
from jitaccess.domain.commands import CommandSigner, CommandVerifier, SignerRole, load_public_key, new_private_key_text
from jitaccess.domain.contracts import RECORD_EVENTS
from jitaccess.domain.grant import ActionInput, Grant, GrantInput
from jitaccess.domain.states import GrantState
from jitaccess.workers.converter import PYDANTIC_DATA_CONVERTER
from jitaccess.workers.factory import SANDBOXED_RUNNER
from jitaccess.workflows import patches, trust
from jitaccess.workflows.common import EvidenceChain
from jitaccess.workflows.grant import GrantWorkflow
from tests.conftest import running_worker
from tests.fixtures.record_history import chain_file, keys_file
from tests.workflows.support import finish, full_lifecycle, grant_input, principal, wait_state

FIXTURE = Path(__file__).parents[1] / "fixtures" / "histories" / "grant_full_lifecycle.json"


def replayer(*workflows) -> Replayer:
    return Replayer(
        workflows=list(workflows) or [GrantWorkflow],
        data_converter=PYDANTIC_DATA_CONVERTER,
        workflow_runner=SANDBOXED_RUNNER,
    )


def recorded() -> WorkflowHistory:
    return WorkflowHistory.from_json("grant-fixture-full-lifecycle", FIXTURE.read_text())


def test_fixture_covers_the_whole_lifecycle():
    """Guard against a fixture re-recorded from a shorter path: it must exercise every kind of step."""
    kinds = Counter(e.event_type for e in recorded().events)
    assert kinds[EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED] == 2  # approve, claim_credential
    assert kinds[EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED] == 2
    assert kinds[EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED] == 2  # issue_credential, revoke_credential
    assert kinds[EventType.EVENT_TYPE_TIMER_CANCELED] == 1  # approval deadline, cancelled by the approval
    assert kinds[EventType.EVENT_TYPE_TIMER_FIRED] == 1  # expiry
    assert kinds[EventType.EVENT_TYPE_MARKER_RECORDED] >= 3  # ledger flushes (local activities)
    assert kinds[EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED] == 1


async def test_recorded_history_replays():
    result = await replayer().replay_workflow(recorded())
    assert result.replay_failure is None


SIGNED = FIXTURE.with_name("grant_signed_lifecycle.json")


def recording_trust(history: Path) -> trust.CommandVerifier:
    """The verifier of the keys a history was recorded with (their public halves sit beside it)."""
    keys = json.loads(keys_file(history).read_text())
    return CommandVerifier(
        [
            (load_public_key(keys["command_public_key"]), SignerRole.api),
            (load_public_key(keys["worker_public_key"]), SignerRole.worker),
        ]
    )


async def test_signed_commands_history_replays():
    """Recorded with signed commands, the signed issue request, the provider expiry from the grant and
    evidence written by an activity: replayed with the recording's public keys (the worker re-verifies
    the signed start on replay, so a public key stays trusted while its workflows may replay)."""
    history = WorkflowHistory.from_json("grant-fixture-full-lifecycle", SIGNED.read_text())
    kinds = Counter(e.event_type for e in history.events)
    assert kinds[EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED] == 2
    assert kinds[EventType.EVENT_TYPE_TIMER_FIRED] == 1
    throwaway = CommandSigner.from_text(new_private_key_text(), SignerRole.worker)
    with trust.installed(recording_trust(SIGNED), throwaway):
        assert (await replayer().replay_workflow(history)).replay_failure is None
    # with a key ring that no longer holds the recording's API key, the start is judged forged: replay fails
    stranger = CommandSigner.from_text(new_private_key_text(), SignerRole.api)
    with trust.installed(CommandVerifier([(stranger.public_key, SignerRole.api)]), throwaway):
        assert (await replayer().replay_workflow(history, raise_on_replay_failure=False)).replay_failure is not None


def recorded_chain(history: Path) -> list[tuple[int, str, str]]:
    """(seq, type, hash) of every event the recording stored: the ledger's, where the recording kept
    it (a local activity's input is not in the history), else the record_events activity inputs."""
    if chain_file(history).exists():
        return [tuple(e) for e in json.loads(chain_file(history).read_text())]
    out = []
    for ev in json.loads(history.read_text())["events"]:
        attrs = ev.get("activityTaskScheduledEventAttributes")
        if attrs and attrs["activityType"]["name"] == RECORD_EVENTS:
            batch = json.loads(base64.b64decode(attrs["input"]["payloads"][0]["data"]))
            out += [(e["seq"], e["type"], e["hash"]) for e in batch["events"]]
    return out


BREAK_GLASS = FIXTURE.with_name("grant_break_glass_lifecycle.json")
# the same scenario recorded by the GrantWorkflow before the lifecycle state machine (commit ede683d)
BREAK_GLASS_BEFORE = FIXTURE.with_name("grant_break_glass_before_lifecycle.json")


async def replay_signed(history_file: Path):
    """Replay a history recorded with signed commands, trusting the recording's keys."""
    history = WorkflowHistory.from_json(history_file.stem, history_file.read_text())
    throwaway = CommandSigner.from_text(new_private_key_text(), SignerRole.worker)
    with trust.installed(recording_trust(history_file), throwaway):
        return await replayer().replay_workflow(history, raise_on_replay_failure=False)


# the signed lifecycle and the break-glass scenario recorded with the patch baseline (one marker for every patch)
SIGNED_BASELINE = FIXTURE.with_name("grant_baseline_signed_lifecycle.json")
BREAK_GLASS_BASELINE = FIXTURE.with_name("grant_baseline_break_glass_lifecycle.json")
# the same two recorded with baseline-2026-12b: events fixed by an earlier task or by an activity's
# answer flushed by a local activity (EvidenceChain.flush)
SIGNED_LOCAL_FLUSH = FIXTURE.with_name("grant_local_flush_signed_lifecycle.json")
BREAK_GLASS_LOCAL_FLUSH = FIXTURE.with_name("grant_local_flush_break_glass_lifecycle.json")


@pytest.mark.parametrize(
    "history",
    [BREAK_GLASS, BREAK_GLASS_BEFORE, BREAK_GLASS_BASELINE, BREAK_GLASS_LOCAL_FLUSH],
    ids=["lifecycle", "before-lifecycle", "baseline", "local-flush"],
)
async def test_break_glass_history_replays(history):
    """Recorded by the lifecycle state machine (one effects loop, one updatable-timer wait): a
    break-glass grant issued at once, claimed, extended by an approved extension (the provider's
    TTL moved, the expiry timer re-armed), expired, revoked, then reviewed (the review wait)."""
    kinds = Counter(e.event_type for e in WorkflowHistory.from_json("bg", history.read_text()).events)
    assert kinds[EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED] == 4  # claim, extend, approve, review
    assert kinds[EventType.EVENT_TYPE_TIMER_CANCELED] >= 2  # expiry re-armed, review wait ended by the review
    assert kinds[EventType.EVENT_TYPE_TIMER_FIRED] == 1  # expiry
    scheduled = [n for n in activity_names(history) if n != RECORD_EVENTS]
    assert scheduled == [c.ISSUE_CREDENTIAL, c.EXTEND_CREDENTIAL, c.REVOKE_CREDENTIAL]
    assert (await replay_signed(history)).replay_failure is None


def activity_names(history: Path) -> list[str]:
    events = json.loads(history.read_text())["events"]
    return [a["activityType"]["name"] for ev in events if (a := ev.get("activityTaskScheduledEventAttributes"))]


@pytest.mark.parametrize(
    "history",
    [
        SIGNED,
        BREAK_GLASS,
        BREAK_GLASS_BEFORE,
        SIGNED_BASELINE,
        BREAK_GLASS_BASELINE,
        SIGNED_LOCAL_FLUSH,
        BREAK_GLASS_LOCAL_FLUSH,
    ],
    ids=[
        "signed",
        "break-glass",
        "break-glass-before",
        "signed-baseline",
        "break-glass-baseline",
        "signed-local-flush",
        "break-glass-local-flush",
    ],
)
async def test_replay_rebuilds_the_recorded_chain_byte_for_byte(monkeypatch, history):
    """The events the current code builds while replaying hash exactly as the recording's did:
    typed events and the lifecycle state machine changed nothing on the wire."""
    built: list[tuple[int, str, str]] = []
    emit = EvidenceChain.emit

    def recording_emit(self, *args, **kwargs):
        ev = emit(self, *args, **kwargs)
        built.append((ev.seq, ev.type, ev.hash))
        return ev

    monkeypatch.setattr(EvidenceChain, "emit", recording_emit)
    assert (await replay_signed(history)).replay_failure is None
    expected = recorded_chain(history)
    assert len(expected) >= 10
    assert built == expected


@pytest.mark.parametrize(
    ("history", "baseline"),
    [
        (SIGNED_BASELINE, patches.BASELINE_2026_12),
        (BREAK_GLASS_BASELINE, patches.BASELINE_2026_12),
        (SIGNED_LOCAL_FLUSH, patches.BASELINE),
        (BREAK_GLASS_LOCAL_FLUSH, patches.BASELINE),
    ],
    ids=["signed", "break-glass", "signed-local-flush", "break-glass-local-flush"],
)
async def test_baseline_recordings_replay_with_their_one_patch_marker(history, baseline):
    recorded_history = WorkflowHistory.from_json(history.stem, history.read_text())
    assert patch_markers(recorded_history) == [baseline]
    assert (await replay_signed(history)).replay_failure is None


def flush_kinds(history: Path) -> Counter:
    """How a recording's ledger flushes went: by regular activity, or as local-activity markers
    (the grant workflow runs no other local activity)."""
    kinds: Counter = Counter()
    for ev in json.loads(history.read_text())["events"]:
        if ev.get("activityTaskScheduledEventAttributes", {}).get("activityType", {}).get("name") == RECORD_EVENTS:
            kinds["activity"] += 1
        elif ev.get("markerRecordedEventAttributes", {}).get("markerName") == "core_local_activity":
            kinds["local"] += 1
    return kinds


def test_the_local_flush_recording_writes_the_last_events_by_local_activity():
    """The signed lifecycle: `grant.expired` (made in an accepted task) and `revocation.confirmed`
    (stamped from the revoke's answer), the grant's last write, go by a local activity; the other
    writes by regular activities, as before: one activity and one workflow task fewer."""
    assert flush_kinds(SIGNED_BASELINE) == Counter(activity=4)
    assert flush_kinds(SIGNED_LOCAL_FLUSH) == Counter(activity=3, local=1)


@workflow.defn(name="GrantWorkflow", sandboxed=False)
class GrantWorkflowThatSkipsTheLedger(GrantWorkflow):
    """A 'harmless-looking' change: no ledger flushes. Replay must reject it (proves the test has teeth)."""

    @workflow.run
    async def run(self, inp: GrantInput) -> Grant:
        return await super().run(inp)

    async def _flush(self) -> None:
        return None


async def test_replay_detects_an_incompatible_change():
    with pytest.raises(workflow.NondeterminismError):
        await replayer(GrantWorkflowThatSkipsTheLedger).replay_workflow(recorded())


async def test_fresh_history_replays(settings):
    async with running_worker(settings) as (client, ledger):
        handle, _ = await full_lifecycle(client, settings, ledger, duration=timedelta(seconds=2))
        history = await handle.fetch_history()
    assert any(e.event_type == EventType.EVENT_TYPE_TIMER_FIRED for e in history.events)
    # replay with the converter the history was written with (it may carry a payload codec)
    fresh = Replayer(workflows=[GrantWorkflow], data_converter=client.data_converter, workflow_runner=SANDBOXED_RUNNER)
    assert (await fresh.replay_workflow(history)).replay_failure is None
    # and through JSON, the form the fixture is stored in
    again = WorkflowHistory.from_json(history.workflow_id, history.to_json())
    assert (await fresh.replay_workflow(again)).replay_failure is None
    # a new run takes every patch's new path through one marker, the baseline, and one
    # TemporalChangeVersion upsert (a visibility write each) instead of one per patch id
    assert patch_markers(history) == [patches.BASELINE]
    assert change_version_upserts(history) == 1


async def test_a_worker_of_the_release_before_the_baseline_cannot_replay_it_unless_it_is_off(settings, monkeypatch):
    """Why JITACCESS_RECORD_PATCH_BASELINE exists: during a rolling upgrade from a release before the
    baseline, a new run's history must stay replayable by the old workers still polling."""
    runs = {}
    for record in (True, False):
        on_or_off = settings.model_copy(update={"record_patch_baseline": record})
        async with running_worker(on_or_off) as (client, ledger):
            handle, _ = await full_lifecycle(client, on_or_off, ledger, duration=timedelta(seconds=2))
            runs[record] = await handle.fetch_history()
    assert patches.BASELINE not in patch_markers(runs[False])
    assert set(patch_markers(runs[False])) >= {patches.SIGNED_COMMANDS, patches.EVIDENCE_BY_ACTIVITY}
    monkeypatch.setattr(patches, "IN_BASELINE", frozenset())  # the workflow code of the release before
    monkeypatch.setattr(patches, "OLDER_BASELINES", ())
    old = Replayer(workflows=[GrantWorkflow], data_converter=client.data_converter, workflow_runner=SANDBOXED_RUNNER)
    assert (await old.replay_workflow(runs[False], raise_on_replay_failure=False)).replay_failure is None
    assert (await old.replay_workflow(runs[True], raise_on_replay_failure=False)).replay_failure is not None


async def test_a_grant_started_before_the_baseline_keeps_answering_each_patch_by_its_own_marker(settings, monkeypatch):
    """Deployed while a grant waits for approval: the new worker replays a history without the
    baseline's marker, so every patch id it asks afterwards records its own marker, as the release
    before did, and the whole history replays."""
    monkeypatch.setattr(patches, "IN_BASELINE", frozenset())  # the release before the baseline
    monkeypatch.setattr(patches, "OLDER_BASELINES", ())
    inp = grant_input(settings, "alice", "secrets-admin", timedelta(seconds=2))
    async with running_worker(settings) as (client, _):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        await wait_state(handle, GrantState.awaiting_approval)
    before = patch_markers(await handle.fetch_history())
    monkeypatch.undo()
    async with running_worker(settings, client):  # a new worker, its cache empty: it replays the old one's tasks
        bob = principal(settings, "bob")
        await handle.execute_update(GrantWorkflow.approve, ActionInput(actor=bob, comment="after the deploy"))
        result = await finish(handle)
    assert result.state is GrantState.revoked
    history = await handle.fetch_history()
    after = patch_markers(history)
    assert patches.SIGNED_COMMANDS in before
    assert set(before) < set(after) <= patches.IN_BASELINE  # the ids first asked after the deploy: their own markers
    fresh = Replayer(workflows=[GrantWorkflow], data_converter=client.data_converter, workflow_runner=SANDBOXED_RUNNER)
    assert (await fresh.replay_workflow(history)).replay_failure is None


def change_version_upserts(history: WorkflowHistory) -> int:
    return sum(
        1
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
        and "TemporalChangeVersion"
        in e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
    )


def patch_markers(history: WorkflowHistory) -> list[str]:
    ids = []
    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            details = e.marker_recorded_event_attributes.details
            if "patch-data" in details:
                ids.append(json.loads(details["patch-data"].payloads[0].data)["id"])
    return ids
