"""Issue 4 on real servers: reminders, escalation and break-glass review deadlines on the
time-skipping server (no updates there); stages, delegation, extensions and reviews through
updates on the dev server. Notifications go over real HTTP to a local receiver."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from jitaccess.activities.notify import route_table
from jitaccess.config import load_catalogue
from jitaccess.config.settings import NotifierConfig
from jitaccess.domain.approval import Delegation
from jitaccess.domain.contracts import GrantOptions
from jitaccess.domain.grant import ActionInput, ExtendInput, GrantInput, ReviewInput
from jitaccess.domain.policy import AccessRequest, evaluate_extension
from jitaccess.domain.states import GrantState
from jitaccess.ledger import Ledger
from jitaccess.workflows.grant import GrantWorkflow
from tests.conftest import running_worker
from tests.http_receiver import HttpReceiver
from tests.support import eventually
from tests.workflows.support import (
    ADMIN_APPROVAL_TIMELINE,
    AUTO_LIFECYCLE,
    EXTENSION_APPLIED,
    at,
    extension_steps,
    input_for,
    minutes_after,
    principal,
    token_is_dead,
    types,
    vault_ttl,
    wait_state,
    worker_on,
)


@pytest.fixture
def receiver():
    with HttpReceiver() as r:
        yield r


def notifying(settings, receiver):
    hook = NotifierConfig(name="hook", url=receiver.url)
    return settings.model_copy(update={"notifiers": [hook]})


def make_input(settings, requester: str, entitlement: str, duration: timedelta, **req) -> GrantInput:
    request = AccessRequest(entitlement=entitlement, duration=duration, reason="routing test", **req)
    cat, who = load_catalogue(settings.catalogue_file), principal(settings, requester)
    options = GrantOptions(notifiers=route_table(settings.notifiers))
    return input_for(cat, who, request, settings.admin_groups, options, datetime.now(UTC))


async def applied(handle, n: int):
    """The grant once `n` extensions are applied to it."""
    g = await handle.query(GrantWorkflow.status)
    assert g.extensions_applied >= n, f"{g.extensions_applied} applied; extension {g.extension}"
    return g


def kinds(receiver) -> list[str]:
    return [r.body["kind"] for r in receiver.delivered]


# -- time-skipping: reminders, escalation, review deadlines ------------------------------------
async def test_reminders_then_escalation_then_approval_timeout(time_env, settings, receiver):
    settings = notifying(settings, receiver)
    inp = make_input(settings, "alice", "secrets-admin", timedelta(minutes=30))  # remind 1h, escalate 2h, expire 4h
    async with worker_on(time_env.client, settings) as ledger:
        result = await time_env.client.execute_workflow(
            GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue
        )
    assert result.state is GrantState.approval_expired
    evs = [e for e in ledger.events(inp.grant_id) if not e.type.startswith("notification.")]
    assert minutes_after(evs[2], evs[2:]) == ADMIN_APPROVAL_TIMELINE
    assert evs[4].data["escalation_groups"] == ["security-leads"]
    # deliveries run concurrently (the escalation and a reminder fall due together): compare as a multiset
    assert sorted(kinds(receiver)) == sorted(
        [
            "approval_requested",
            "approval_reminder",
            "approval_escalated",
            "approval_reminder",
            "approval_reminder",
            "denied",
        ]
    )
    escalated = next(r.body for r in receiver.delivered if r.body["kind"] == "approval_escalated")
    assert escalated["severity"] == "high" and escalated["recipients"] == ["security-leads"]
    sent = [e for e in ledger.events(inp.grant_id) if e.type == "notification.sent"]
    assert len(sent) == 6 and all(e.data["status_code"] == 200 for e in sent)
    assert ledger.verify(inp.grant_id).ok


async def test_break_glass_is_issued_at_once_alerted_and_an_overdue_review_escalates(time_env, settings, receiver):
    settings = notifying(settings, receiver)
    inp = make_input(settings, "alice", "secrets-admin", timedelta(minutes=30), break_glass=True, incident="INC-42")
    async with worker_on(time_env.client, settings) as ledger:
        handle = await time_env.client.start_workflow(
            GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue
        )
        await time_env.sleep(timedelta(minutes=31))  # expiry passes
        await time_env.sleep(timedelta(days=1, minutes=1))  # the review deadline passes
        g = await handle.query(GrantWorkflow.status)
        await handle.terminate("test done")
    assert g.state is GrantState.pending_review and g.review_escalated
    evs = ledger.events(inp.grant_id)
    main = [e.type for e in evs if not e.type.startswith("notification.")]
    assert main[:8] == [*AUTO_LIFECYCLE, "review.requested"]
    assert "approval.requested" not in main  # no approval wait
    assert main.count("review.reminder") == 6 and "review.overdue" in main  # every 4 h (4..24 h); overdue at 24 h
    assert token_is_dead(settings, g.credential.reference)
    alert = receiver.delivered[0].body
    assert alert["kind"] == "break_glass_alert" and alert["severity"] == "high" and "INC-42" in alert["title"]
    # the alert goes out as access is issued, not after the fact
    alert_sent = next(e for e in evs if e.type == "notification.sent")
    assert alert_sent.data["kind"] == "break_glass_alert"
    assert at(alert_sent) - at(next(e for e in evs if e.type == "grant.approved")) < timedelta(seconds=30)
    overdue = [r.body for r in receiver.delivered if r.body["kind"] == "review_overdue"]
    assert overdue and overdue[0]["severity"] == "high" and "security-leads" in overdue[0]["recipients"]


async def test_a_notifier_that_stays_down_never_blocks_the_grant(time_env, settings):
    with HttpReceiver(fail_first=1000) as down:
        settings = notifying(settings, down)
        inp = make_input(settings, "alice", "secrets-readonly", timedelta(minutes=5))
        async with worker_on(time_env.client, settings) as ledger:
            result = await time_env.client.execute_workflow(
                GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue
            )
    assert result.state is GrantState.revoked
    evs = ledger.events(inp.grant_id)
    failed = [e for e in evs if e.type == "notification.failed"]
    assert failed and all(e.data["status_code"] == 503 for e in failed)
    assert [e.data["kind"] for e in evs if e.type == "notification.abandoned"] == ["issued", "revoked"]
    assert ledger.verify(inp.grant_id).ok


# -- dev server: decisions through updates -----------------------------------------------------
async def vote(handle, settings, who: str, comment: str = "", delegations=()):
    return await handle.execute_update(
        GrantWorkflow.approve,
        ActionInput(actor=principal(settings, who), comment=comment, delegations=list(delegations)),
    )


@pytest.mark.parametrize("order", [("frank", "bob"), ("bob", "frank")])
async def test_two_stage_approval_in_either_order(settings, order):
    inp = make_input(settings, "alice", "secrets-prod-write", timedelta(minutes=20))
    async with running_worker(settings) as (client, ledger):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        await wait_state(handle, GrantState.awaiting_approval)
        g = await vote(handle, settings, order[0])
        assert g.state is GrantState.awaiting_approval and len(g.approval.pending()) == 1
        with pytest.raises(WorkflowUpdateFailedError) as e:
            await vote(handle, settings, "alice")
        assert e.value.cause.details[1] == "self_approval"
        g = await vote(handle, settings, order[1])
        await wait_state(handle, GrantState.active)
        await handle.execute_update(
            GrantWorkflow.revoke, ActionInput(actor=principal(settings, "alice"), comment="done")
        )
        await handle.result()
    granted = [e for e in ledger.events(inp.grant_id) if e.type == "approval.granted"]
    stage_of = {"frank": "owning-team", "bob": "security"}
    assert [(e.actor.id, e.data["stage"]) for e in granted] == [(who, stage_of[who]) for who in order]


async def test_delegation_counts_inside_its_window_only(settings):
    now = datetime.now(UTC)
    bob = principal(settings, "bob")
    inside = Delegation(
        delegation_id="delegation-in",
        delegator=bob,
        delegate="erin",
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(hours=1),
    )
    lapsed = inside.model_copy(
        update={
            "delegation_id": "delegation-old",
            "starts_at": now - timedelta(days=2),
            "ends_at": now - timedelta(days=1),
        }
    )
    async with running_worker(settings) as (client, ledger):
        inp = make_input(settings, "alice", "secrets-admin", timedelta(minutes=20))
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        await wait_state(handle, GrantState.awaiting_approval)
        with pytest.raises(WorkflowUpdateFailedError) as e:
            await vote(handle, settings, "erin", delegations=[lapsed])
        assert e.value.cause.details[1] == "not_an_approver" and "valid only" in e.value.cause.message
        g = await vote(handle, settings, "erin", "covering for bob", [inside])
        assert g.state is GrantState.approved
        await wait_state(handle, GrantState.active)
        await handle.execute_update(
            GrantWorkflow.revoke, ActionInput(actor=principal(settings, "alice"), comment="done")
        )
        await handle.result()
    granted = next(e for e in ledger.events(inp.grant_id) if e.type == "approval.granted")
    assert (
        granted.actor.id == "erin"
        and granted.data["on_behalf_of"] == "bob"
        and granted.data["delegation_id"] == "delegation-in"
    )


async def test_extension_auto_approved_moves_expiry_and_the_vault_backstop(settings):
    async with running_worker(settings) as (client, ledger):
        inp = make_input(settings, "alice", "secrets-readonly", timedelta(minutes=10))
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        g = await wait_state(handle, GrantState.active)
        alice = principal(settings, "alice")
        too_much = evaluate_extension(g.decision, alice, g.duration, timedelta(hours=8))
        with pytest.raises(WorkflowUpdateFailedError) as e:
            await handle.execute_update(GrantWorkflow.extend, ExtendInput(actor=alice, reason="x", decision=too_much))
        assert list(e.value.cause.details[:2]) == ["invalid", "duration_exceeds_max"]
        d = evaluate_extension(g.decision, alice, g.duration, timedelta(minutes=20))
        await handle.execute_update(
            GrantWorkflow.extend, ExtendInput(actor=alice, reason="still debugging", decision=d)
        )
        g2 = await eventually(lambda: applied(handle, 1), 10, "the extension applied")
        assert g2.expires_at - g.expires_at == timedelta(minutes=20) and g2.duration_seconds == 30 * 60
        assert 25 * 60 < vault_ttl(settings, g.credential.reference) <= 30 * 60  # the provider backstop moved too
        await handle.execute_update(GrantWorkflow.revoke, ActionInput(actor=alice, comment="done"))
        await handle.result()
    assert extension_steps(ledger.events(inp.grant_id)) == EXTENSION_APPLIED


class LedgerHoldingExtensionApplied(Ledger):
    """A real ledger whose write of `extension.applied` waits until the test lets it go, so the
    workflow sits in that flush (the first extension applied, the wait not yet re-armed)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.holding, self.release = threading.Event(), threading.Event()

    def append(self, events, summary=None):
        events = list(events)
        if any(e.type == "extension.applied" for e in events) and not self.release.is_set():
            self.holding.set()
            self.release.wait(30)
        return super().append(events, summary)


async def test_second_extension_arriving_while_the_first_is_applied_is_applied_at_once(settings):
    """Regression: the second (auto-approved) extension arrived while the workflow wrote the first
    one's `extension.applied`; the active phase then cleared its wake flag and slept until the old
    expiry, leaving the second extension `approved` but not applied (and the provider TTL unmoved)."""
    held = LedgerHoldingExtensionApplied(settings.ledger_url)
    async with running_worker(settings, ledger=held) as (client, ledger):
        inp = make_input(settings, "alice", "secrets-readonly", timedelta(minutes=10))
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        g = await wait_state(handle, GrantState.active)
        alice = principal(settings, "alice")
        first = evaluate_extension(g.decision, alice, g.duration, timedelta(minutes=10))
        await handle.execute_update(GrantWorkflow.extend, ExtendInput(actor=alice, reason="one", decision=first))
        assert await asyncio.to_thread(held.holding.wait, 20), "extension.applied was never written"
        g1 = await handle.query(GrantWorkflow.status)
        assert g1.extension.status == "applied" and g1.duration_seconds == 20 * 60
        second = evaluate_extension(g1.decision, alice, g1.duration, timedelta(minutes=10))
        g2 = await handle.execute_update(GrantWorkflow.extend, ExtendInput(actor=alice, reason="two", decision=second))
        assert g2.extension.status == "approved"
        held.release.set()
        g3 = await eventually(lambda: applied(handle, 2), 10, "both extensions applied")
        assert g3.extensions_applied == 2 and g3.extension.status == "applied", g3.extension
        assert g3.expires_at - g.expires_at == timedelta(minutes=20) and g3.duration_seconds == 30 * 60
        assert (
            25 * 60 < vault_ttl(settings, g.credential.reference) <= 30 * 60
        )  # the provider backstop moved for the second one too
        await handle.execute_update(GrantWorkflow.revoke, ActionInput(actor=alice, comment="done"))
        await handle.result()
    assert extension_steps(ledger.events(inp.grant_id)) == EXTENSION_APPLIED * 2


async def test_extension_refused_leaves_the_expiry_untouched(settings):
    async with running_worker(settings) as (client, ledger):
        inp = make_input(settings, "alice", "secrets-admin", timedelta(minutes=10))
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        await wait_state(handle, GrantState.awaiting_approval)
        await vote(handle, settings, "bob")
        g = await wait_state(handle, GrantState.active)
        alice = principal(settings, "alice")
        d = evaluate_extension(g.decision, alice, g.duration, timedelta(minutes=10))
        g2 = await handle.execute_update(GrantWorkflow.extend, ExtendInput(actor=alice, reason="more", decision=d))
        assert g2.extension.status == "pending"
        await handle.execute_update(GrantWorkflow.deny, ActionInput(actor=principal(settings, "carol"), comment="no"))
        g3 = await handle.query(GrantWorkflow.status)
        assert g3.extension.status == "refused" and g3.expires_at == g.expires_at and g3.state is GrantState.active
        await handle.execute_update(GrantWorkflow.revoke, ActionInput(actor=alice, comment="done"))
        await handle.result()
    assert extension_steps(ledger.events(inp.grant_id)) == [
        "extension.requested",
        "extension.refused",
    ]


async def test_break_glass_grant_to_review_with_a_finding(settings):
    async with running_worker(settings) as (client, ledger):
        inp = make_input(settings, "alice", "secrets-admin", timedelta(seconds=2), break_glass=True, incident="INC-9")
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        await wait_state(handle, GrantState.pending_review, timeout=30)
        with pytest.raises(WorkflowUpdateFailedError) as e:
            await handle.execute_update(
                GrantWorkflow.review, ReviewInput(actor=principal(settings, "alice"), outcome="justified")
            )
        assert e.value.cause.details[1] == "self_review"
        await handle.execute_update(
            GrantWorkflow.review,
            ReviewInput(actor=principal(settings, "bob"), outcome="not_justified", notes="no incident on record"),
        )
        result = await handle.result()
    assert result.state is GrantState.reviewed and result.review.outcome == "not_justified"
    evs = ledger.events(inp.grant_id)
    assert types(evs)[-3:] == ["review.requested", "review.completed", "review.finding"]
    assert evs[-2].actor.role.value == "reviewer" and evs[-1].data["incident"] == "INC-9"
    assert ledger.verify(inp.grant_id).ok
