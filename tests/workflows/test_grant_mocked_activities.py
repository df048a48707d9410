"""GrantWorkflow's behaviour with every activity mocked by name (tests/workflows/mocked_support.py),
on the time-skipping test server: no OpenBao, no ledger, no provider.

Only the public surface is used: the start input, the `status` query, the approve / deny / revoke /
extend / review / claim_credential updates as the API sends them, the result, and what the workflow
asks of its activities (their names and inputs). Time is locked while a test queries and updates, and
skips while it waits for the result, so every update here happens before `finish()`.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from jitaccess.domain import contracts as c
from jitaccess.domain.contracts import GrantOptions
from jitaccess.domain.grant import ExtendInput, ReviewInput
from jitaccess.domain.policy import evaluate_extension
from jitaccess.domain.reconciliation import DriftReport, Finding, FindingKind, Remedy
from jitaccess.domain.states import GrantState
from jitaccess.workflows.grant import GrantWorkflow
from tests.support import eventually
from tests.workflows.mocked_support import (
    FakeActivities,
    action,
    mocked_worker,
    person,
    request_input,
    worker_signed,
)
from tests.workflows.support import (
    ADMIN_APPROVAL_TIMELINE,
    AUTO_LIFECYCLE,
    EXTENSION_APPLIED,
    FULL_LIFECYCLE,
    at,
    extension_steps,
    finish,
    minutes_after,
    one,
    wait_state,
)

REQUESTED = ["grant.requested", "policy.decided"]
AUTO_APPROVED = [*REQUESTED, "grant.approved"]
AWAITING = [*REQUESTED, "approval.requested"]
ISSUED = ["credential.issued", "fulfilment.verified"]


def expired_on_time(events, grant) -> bool:
    """The expiry event came when the grant said it would (the timer, not a later wake-up)."""
    return timedelta(0) <= at(one(events, "grant.expired")) - grant.expires_at < timedelta(seconds=1)


def refused_rule(err: pytest.ExceptionInfo[WorkflowUpdateFailedError]) -> str:
    """The domain rule an update validator refused with (details: kind, rule)."""
    cause = err.value.cause
    assert isinstance(cause, ApplicationError), cause
    return str(cause.details[1])


async def test_auto_approved_grant_is_issued_expires_and_revocation_is_confirmed(time_env, command_keys):
    inp = request_input("alice", "secrets-readonly", timedelta(hours=4))
    assert inp.decision.auto_approved
    async with mocked_worker(time_env, command_keys) as run:
        result = await finish(await run.start(inp))
    fakes = run.fakes

    assert result.state is GrantState.revoked and result.end_reason == "expired"
    assert fakes.types(inp.grant_id) == AUTO_LIFECYCLE
    assert run.chain_ok(result)
    (issue,) = fakes.inputs(c.ISSUE_CREDENTIAL)
    assert issue.grant.grant_id == inp.grant_id and issue.grant.principal == "alice"
    assert issue.grant.provider == "vault_token" and issue.grant.ttl_seconds == 4 * 3600
    assert issue.grant.expires_at - issue.grant.issued_at == timedelta(hours=4)
    assert issue.request.auth is not None and issue.approvals == []  # the signed start input, no votes
    (revoked,) = fakes.inputs(c.REVOKE_CREDENTIAL)
    assert revoked == result.credential and fakes.live_for(inp.grant_id) == []
    events = fakes.chain(inp.grant_id)
    assert one(events, "revocation.confirmed").data["attempts"] == 1
    assert result.expires_at - result.issued_at == timedelta(hours=4) and expired_on_time(events, result)


async def test_approval_wait_then_approve_issues_and_hands_the_credential_over(time_env, command_keys):
    inp = request_input("alice", "secrets-admin", timedelta(minutes=30))
    async with mocked_worker(time_env, command_keys) as run:
        handle = await run.start(inp)
        await wait_state(handle, GrantState.awaiting_approval)
        # the evidence so far is stored while the workflow waits for a decision
        await eventually(lambda: run.fakes.types(inp.grant_id) == AWAITING, 10, "the request's evidence stored")
        assert run.fakes.inputs(c.ISSUE_CREDENTIAL) == []
        with pytest.raises(WorkflowUpdateFailedError) as e:
            await handle.execute_update(GrantWorkflow.approve, action("alice"))
        assert refused_rule(e) == "self_approval"
        g = await handle.execute_update(GrantWorkflow.approve, action("bob", "on-call change"))
        assert g.state is GrantState.approved
        await wait_state(handle, GrantState.active)
        handover = await handle.execute_update(GrantWorkflow.claim_credential, action("alice"))
        result = await finish(handle)
    fakes = run.fakes

    assert result.state is GrantState.revoked and result.end_reason == "expired"
    assert fakes.types(inp.grant_id) == FULL_LIFECYCLE
    assert run.chain_ok(result)
    events = fakes.chain(inp.grant_id)
    assert one(events, "approval.granted").actor.id == "bob"
    (issue,) = fakes.inputs(c.ISSUE_CREDENTIAL)
    assert [v.actor.id for v in issue.approvals] == ["bob"] and issue.approvals[0].auth is not None
    assert handover.wrapping_token == f"wrap-{result.credential.reference}"
    assert result.handover is None and result.credential_delivered
    assert fakes.inputs(c.REVOKE_CREDENTIAL) == [result.credential] and fakes.live_for(inp.grant_id) == []


async def test_denied_request_issues_nothing(time_env, command_keys):
    inp = request_input("alice", "secrets-admin", timedelta(minutes=30))
    async with mocked_worker(time_env, command_keys) as run:
        handle = await run.start(inp)
        await wait_state(handle, GrantState.awaiting_approval)
        g = await handle.execute_update(GrantWorkflow.deny, action("carol", "no change ticket"))
        assert g.state is GrantState.denied
        result = await finish(handle)
    fakes = run.fakes

    assert result.state is GrantState.denied and result.credential is None
    assert fakes.types(inp.grant_id) == [*AWAITING, "approval.denied"]
    denied = one(fakes.chain(inp.grant_id), "approval.denied")
    assert denied.actor.id == "carol" and denied.data["reason"] == "no change ticket"
    assert run.chain_ok(result)
    assert fakes.inputs(c.ISSUE_CREDENTIAL) == [] and fakes.inputs(c.REVOKE_CREDENTIAL) == []


async def test_approval_deadline_passes_reminding_then_escalating(time_env, command_keys):
    inp = request_input("alice", "secrets-admin", timedelta(minutes=30))  # remind 1h, escalate 2h, expire 4h
    async with mocked_worker(time_env, command_keys) as run:
        result = await finish(await run.start(inp))
    fakes = run.fakes

    assert result.state is GrantState.approval_expired
    assert result.end_reason == "no decision before the approval deadline"
    events = fakes.chain(inp.grant_id)
    assert minutes_after(events[2], events[2:]) == ADMIN_APPROVAL_TIMELINE
    assert one(events, "approval.expired").data["votes"] == 0
    assert run.chain_ok(result)
    assert fakes.inputs(c.ISSUE_CREDENTIAL) == [] and result.credential is None


async def test_cancelled_while_awaiting_approval(time_env, command_keys):
    inp = request_input("alice", "secrets-admin", timedelta(minutes=30))
    async with mocked_worker(time_env, command_keys) as run:
        handle = await run.start(inp)
        await wait_state(handle, GrantState.awaiting_approval)
        await handle.execute_update(GrantWorkflow.revoke, action("alice", "not needed"))
        result = await finish(handle)

    assert result.state is GrantState.cancelled
    assert run.fakes.types(inp.grant_id)[-1] == "grant.cancelled"
    assert one(run.fakes.chain(inp.grant_id), "grant.cancelled").data["before"] == "approval"
    assert run.fakes.inputs(c.ISSUE_CREDENTIAL) == [] and run.chain_ok(result)


async def test_early_revoke_ends_access_before_expiry(time_env, command_keys):
    inp = request_input("alice", "secrets-readonly", timedelta(hours=4))
    async with mocked_worker(time_env, command_keys) as run:
        handle = await run.start(inp)
        active = await wait_state(handle, GrantState.active)
        with pytest.raises(WorkflowUpdateFailedError) as e:
            await handle.execute_update(GrantWorkflow.revoke, action("dave", "not mine"))
        assert refused_rule(e) == "not_allowed_to_revoke"
        await handle.execute_update(GrantWorkflow.revoke, action("alice", "done early"))
        result = await finish(handle)
    fakes = run.fakes

    assert result.state is GrantState.revoked and result.end_reason == "revoked early by alice: done early"
    assert fakes.types(inp.grant_id) == [
        *AUTO_APPROVED,
        *ISSUED,
        "grant.revoke_requested",
        "revocation.confirmed",
    ]
    events = fakes.chain(inp.grant_id)
    requested = one(events, "grant.revoke_requested")
    assert requested.actor.id == "alice" and requested.data["authority"] == "requester"
    assert at(one(events, "revocation.confirmed")) < active.expires_at
    assert fakes.inputs(c.REVOKE_CREDENTIAL) == [active.credential] and fakes.live_for(inp.grant_id) == []
    assert run.chain_ok(result)


async def _active_admin_grant(run, minutes: int = 30):
    """secrets-admin requested by alice, approved by bob, active: (input, handle, grant)."""
    inp = request_input("alice", "secrets-admin", timedelta(minutes=minutes))
    handle = await run.start(inp)
    await wait_state(handle, GrantState.awaiting_approval)
    await handle.execute_update(GrantWorkflow.approve, action("bob"))
    return inp, handle, await wait_state(handle, GrantState.active)


def _extension(grant, requester: str, more: timedelta) -> ExtendInput:
    """An extension as the API asks for it: evaluated against the grant's own decision."""
    d = evaluate_extension(grant.decision, person(requester), grant.duration, more)
    return ExtendInput(actor=person(requester), reason="still fixing", decision=d)


async def test_extension_approved_moves_the_provider_ttl_and_the_expiry(time_env, command_keys):
    async with mocked_worker(time_env, command_keys) as run:
        inp, handle, g = await _active_admin_grant(run)
        pending = await handle.execute_update(GrantWorkflow.extend, _extension(g, "alice", timedelta(minutes=15)))
        assert pending.extension.status == "pending"
        await handle.execute_update(GrantWorkflow.approve, action("carol", "fine"))
        applied = await wait_state(handle, GrantState.active)
        assert applied.extension.status in ("approved", "applied")
        result = await finish(handle)
    fakes = run.fakes

    assert result.state is GrantState.revoked and result.end_reason == "expired"
    assert result.expires_at - g.expires_at == timedelta(minutes=15) and result.duration_seconds == 45 * 60
    assert extension_steps(fakes.chain(inp.grant_id)) == EXTENSION_APPLIED
    (ext,) = fakes.inputs(c.EXTEND_CREDENTIAL)
    assert ext.credential.reference == g.credential.reference and ext.expires_at == result.expires_at
    assert expired_on_time(fakes.chain(inp.grant_id), result)
    assert run.chain_ok(result)


async def test_extension_refused_keeps_the_original_expiry(time_env, command_keys):
    async with mocked_worker(time_env, command_keys) as run:
        inp, handle, g = await _active_admin_grant(run)
        await handle.execute_update(GrantWorkflow.extend, _extension(g, "alice", timedelta(minutes=15)))
        refused = await handle.execute_update(GrantWorkflow.deny, action("carol", "finish tomorrow"))
        assert refused.extension.status == "refused" and refused.state is GrantState.active
        result = await finish(handle)
    fakes = run.fakes

    assert result.state is GrantState.revoked and result.end_reason == "expired"
    assert result.expires_at == g.expires_at and fakes.inputs(c.EXTEND_CREDENTIAL) == []
    assert extension_steps(fakes.chain(inp.grant_id)) == [
        "extension.requested",
        "extension.refused",
    ]
    assert expired_on_time(fakes.chain(inp.grant_id), result)
    assert run.chain_ok(result)


async def test_break_glass_grant_is_reviewed_after_its_revocation(time_env, command_keys):
    inp = request_input("alice", "secrets-admin", timedelta(minutes=30), break_glass=True, incident="INC-9")
    async with mocked_worker(time_env, command_keys) as run:
        handle = await run.start(inp)
        await wait_state(handle, GrantState.active)  # no approval: issued at once
        await handle.execute_update(GrantWorkflow.revoke, action("alice", "incident over"))
        await wait_state(handle, GrantState.pending_review)
        with pytest.raises(WorkflowUpdateFailedError) as e:
            await handle.execute_update(GrantWorkflow.review, ReviewInput(actor=person("alice"), outcome="justified"))
        assert refused_rule(e) == "self_review"
        review = ReviewInput(actor=person("bob"), outcome="not_justified", notes="no incident on record")
        await handle.execute_update(GrantWorkflow.review, review)
        result = await finish(handle)
    fakes = run.fakes

    assert result.state is GrantState.reviewed and result.review.outcome == "not_justified"
    assert fakes.types(inp.grant_id) == [
        *AUTO_APPROVED,
        *ISSUED,
        "grant.revoke_requested",
        "revocation.confirmed",
        "review.requested",
        "review.completed",
        "review.finding",
    ]
    events = fakes.chain(inp.grant_id)
    assert one(events, "grant.approved").data["break_glass"] is True
    assert (
        one(events, "review.completed").actor.id == "bob" and one(events, "review.finding").data["incident"] == "INC-9"
    )
    assert fakes.live_for(inp.grant_id) == [] and run.chain_ok(result)


async def test_issue_failing_leaves_no_credential_behind(time_env, command_keys):
    options = GrantOptions(issue_timeout=timedelta(minutes=1))
    inp = request_input("alice", "secrets-readonly", timedelta(hours=1), options=options)
    async with mocked_worker(time_env, command_keys, FakeActivities(issue_fails=True)) as run:
        result = await finish(await run.start(inp))
    fakes = run.fakes

    assert result.state is GrantState.issue_failed and result.credential is None and result.handover is None
    assert len(fakes.inputs(c.ISSUE_CREDENTIAL)) > 1  # retried within the issue timeout
    assert fakes.live_for(inp.grant_id) == []  # every partial issue cleaned up
    (cleanup,) = fakes.inputs(c.CLEAN_UP_GRANT)
    assert cleanup.grant_id == inp.grant_id and fakes.inputs(c.REVOKE_CREDENTIAL) == []
    assert fakes.types(inp.grant_id) == [
        *AUTO_APPROVED,
        "credential.issue_failed",
        "credential.cleanup_confirmed",
    ]
    assert run.chain_ok(result)


async def test_issued_but_not_verified_is_cleaned_up(time_env, command_keys):
    inp = request_input("alice", "secrets-readonly", timedelta(hours=1))
    async with mocked_worker(time_env, command_keys, FakeActivities(issue_verified=False)) as run:
        result = await finish(await run.start(inp))
    fakes = run.fakes

    assert result.state is GrantState.issue_failed and result.credential is None
    assert fakes.types(inp.grant_id)[-3:] == [
        "credential.issued",
        "fulfilment.verification_failed",
        "credential.cleanup_confirmed",
    ]
    assert len(fakes.inputs(c.CLEAN_UP_GRANT)) == 1 and fakes.live_for(inp.grant_id) == []
    assert run.chain_ok(result)


async def test_issue_refused_by_the_issuer_is_a_denial(time_env, command_keys):
    inp = request_input("alice", "secrets-readonly", timedelta(hours=1))
    async with mocked_worker(time_env, command_keys, FakeActivities(issue_refused="unsigned_request")) as run:
        result = await finish(await run.start(inp))
    fakes = run.fakes

    assert result.state is GrantState.denied and result.credential is None
    assert len(fakes.inputs(c.ISSUE_CREDENTIAL)) == 1  # a refusal is not retried
    assert fakes.types(inp.grant_id)[-1] == "credential.issue_refused"
    assert one(fakes.chain(inp.grant_id), "credential.issue_refused").data["rule"] == "unsigned_request"
    assert run.chain_ok(result)


async def test_revocation_is_retried_until_the_read_back_confirms_it(time_env, command_keys):
    fakes = FakeActivities(revoke_plan=["error", "still_present", "error", "error"])
    inp = request_input("alice", "secrets-readonly", timedelta(hours=1))
    async with mocked_worker(time_env, command_keys, fakes) as run:
        result = await finish(await run.start(inp))

    assert result.state is GrantState.revoked and result.revocation_attempts == 5
    assert fakes.types(inp.grant_id)[-7:] == [
        "grant.expired",
        "revocation.retrying",
        "revocation.retrying",
        "revocation.retrying",
        "revocation.failing",  # after revocation_failing_after (3) attempts: an alert, still retrying
        "revocation.retrying",
        "revocation.confirmed",
    ]
    assert fakes.inputs(c.REVOKE_CREDENTIAL) == [result.credential] * 5 and fakes.live_for(inp.grant_id) == []
    events = fakes.chain(inp.grant_id)
    retries = [e for e in events if e.type == "revocation.retrying"]
    assert [e.data["attempt"] for e in retries] == [1, 2, 3, 4]
    assert [e.data["retry_in_seconds"] for e in retries] == [1, 2, 4, 8]
    assert "still present" in retries[1].data["problem"] and "unavailable" in retries[0].data["problem"]
    assert one(events, "revocation.confirmed").data["attempts"] == 5
    assert run.chain_ok(result)


async def test_extension_the_provider_refuses_leaves_the_expiry_untouched(time_env, command_keys):
    async with mocked_worker(time_env, command_keys, FakeActivities(extend_fails=True)) as run:
        inp, handle, g = await _active_admin_grant(run)
        await handle.execute_update(GrantWorkflow.extend, _extension(g, "alice", timedelta(minutes=15)))
        await handle.execute_update(GrantWorkflow.approve, action("carol"))
        result = await finish(handle)
    fakes = run.fakes

    assert result.state is GrantState.revoked and result.extension.status == "failed"
    assert result.expires_at == g.expires_at and result.duration_seconds == 30 * 60
    assert len(fakes.inputs(c.EXTEND_CREDENTIAL)) == 1  # the provider's refusal is final
    assert extension_steps(fakes.chain(inp.grant_id)) == [
        "extension.requested",
        "extension.approved",
        "extension.failed",
    ]
    assert expired_on_time(fakes.chain(inp.grant_id), result) and run.chain_ok(result)


async def test_notifications_go_to_each_audience_and_their_delivery_is_evidence(time_env, command_keys):
    options = GrantOptions(notifiers={"approvers": ["chat"], "requester": ["mail"]})
    inp = request_input("alice", "secrets-admin", timedelta(minutes=30), options=options)
    async with mocked_worker(time_env, command_keys) as run:
        handle = await run.start(inp)
        await wait_state(handle, GrantState.awaiting_approval)
        await handle.execute_update(GrantWorkflow.deny, action("carol", "no ticket"))
        result = await finish(handle)
    fakes = run.fakes

    sent = [(d.notifier, d.notification.kind.value, d.notification.recipients) for d in fakes.delivered]
    assert sent == [("chat", "approval_requested", ["security"]), ("mail", "denied", ["alice"])]
    assert all(d.notification.grant_id == inp.grant_id for d in fakes.delivered)
    notified = [e for e in fakes.chain(inp.grant_id) if e.type.startswith("notification.")]
    assert [(e.type, e.data["notifier"]) for e in notified] == [
        ("notification.sent", "chat"),
        ("notification.sent", "mail"),
    ]
    assert run.chain_ok(result)


async def test_two_stage_approval_issues_only_once_both_stages_approved(time_env, command_keys):
    inp = request_input("alice", "secrets-prod-write", timedelta(minutes=30))  # owning team + security, parallel
    async with mocked_worker(time_env, command_keys) as run:
        handle = await run.start(inp)
        await wait_state(handle, GrantState.awaiting_approval)
        g = await handle.execute_update(GrantWorkflow.approve, action("frank", "owning team"))
        assert g.state is GrantState.awaiting_approval and run.fakes.inputs(c.ISSUE_CREDENTIAL) == []
        with pytest.raises(WorkflowUpdateFailedError) as e:
            await handle.execute_update(GrantWorkflow.approve, action("frank", "again"))
        assert refused_rule(e) == "duplicate_vote"
        await handle.execute_update(GrantWorkflow.approve, action("bob", "security"))
        await wait_state(handle, GrantState.active)
        await handle.execute_update(GrantWorkflow.revoke, action("alice", "done"))
        result = await finish(handle)
    fakes = run.fakes

    assert result.state is GrantState.revoked
    granted = [e for e in fakes.chain(inp.grant_id) if e.type == "approval.granted"]
    assert [(e.actor.id, e.data["stage"]) for e in granted] == [("frank", "owning-team"), ("bob", "security")]
    (issue,) = fakes.inputs(c.ISSUE_CREDENTIAL)
    assert [v.actor.id for v in issue.approvals] == ["frank", "bob"]
    assert run.chain_ok(result)


async def test_drift_reported_by_a_worker_is_recorded_once_and_unsigned_reports_are_dropped(time_env, command_keys):
    inp = request_input("alice", "secrets-readonly", timedelta(hours=1))

    def report(detail: str) -> DriftReport:
        finding = Finding(
            kind=FindingKind.drift,
            provider="vault_token",
            grant_id=inp.grant_id,
            detail=detail,
            remedy=Remedy.signal_grant,
        )
        return DriftReport(finding=finding)

    async with mocked_worker(time_env, command_keys) as run:
        handle = await run.start(inp)
        await wait_state(handle, GrantState.active)
        await handle.signal(GrantWorkflow.report_drift, report("unsigned"))
        for detail in ("first", "second"):
            signed = worker_signed(command_keys, report(detail), inp.grant_id, c.REPORT_DRIFT_SIGNAL)
            await handle.signal(GrantWorkflow.report_drift, signed)

        async def drift_stored() -> bool:
            g = await handle.query(GrantWorkflow.status)
            assert g.drift is not None and "reconciliation.drift_detected" in run.fakes.types(inp.grant_id)
            return True

        await eventually(drift_stored, 10, "the drift recorded")
        await handle.execute_update(GrantWorkflow.revoke, action("alice", "done"))
        result = await finish(handle)
    fakes = run.fakes

    assert result.state is GrantState.revoked and result.drift.detail == "first"
    assert fakes.types(inp.grant_id)[-3:] == [
        "reconciliation.drift_detected",
        "grant.revoke_requested",
        "revocation.confirmed",
    ]
    drift = one(fakes.chain(inp.grant_id), "reconciliation.drift_detected")
    assert drift.data["detail"] == "first" and drift.data["command"]["role"] == "worker"
    assert run.chain_ok(result)
