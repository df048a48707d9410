"""GrantWorkflow decisions through Temporal updates, on the real dev server and the real OpenBao.

Every approve / deny / revoke / claim goes through WorkflowHandle.execute_update.
A validator refusal must reach the caller as WorkflowUpdateFailedError whose
cause is ApplicationError(type="Refusal", details=(kind, rule)) — the API maps
kind to 403/409/410 — and must leave the workflow history untouched.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import hvac
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from jitaccess.config import load_catalogue
from jitaccess.domain.catalogue import ApprovalRule, Catalogue
from jitaccess.domain.credentials import IssuedCredential, WrappedHandover
from jitaccess.domain.grant import ActionInput
from jitaccess.domain.states import GrantState
from jitaccess.providers.base import ProviderRegistry
from jitaccess.workflows.grant import GrantWorkflow
from tests.conftest import running_worker
from tests.support import Delegating
from tests.workflows.support import (
    finish,
    grant_input,
    one,
    principal,
    settled_history,
    signed_data,
    token_is_dead,
    types,
    vault_provider,
    vault_root,
    wait_state,
)

UPDATE_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED: (
        "workflow_execution_update_admitted_event_attributes",
        "request",
    ),
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED: (
        "workflow_execution_update_accepted_event_attributes",
        "accepted_request",
    ),
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED: (
        "workflow_execution_update_rejected_event_attributes",
        "rejected_request",
    ),
}


def update_ids(history) -> list[str]:
    """The update IDs that entered history (admitted, accepted or rejected events)."""
    ids = []
    for ev in history.events:
        if ev.event_type in UPDATE_EVENTS:
            attrs, field = UPDATE_EVENTS[ev.event_type]
            ids.append(getattr(getattr(ev, attrs), field).meta.update_id)
    return ids


async def refused(handle: WorkflowHandle, update, actor, *, kind: str, rule: str, update_id: str | None = None) -> str:
    """Send an update the rules must refuse; check the refusal is precise. Returns its message."""
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.execute_update(update, ActionInput(actor=actor, comment="test"), id=update_id)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError), repr(cause)
    assert cause.type == "Refusal"
    assert tuple(cause.details) == (kind, rule)
    assert cause.non_retryable
    return cause.message


def two_person_catalogue(settings) -> Catalogue:
    """The example catalogue plus a secrets-admin variant that needs two distinct approvers."""
    cat = load_catalogue(settings.catalogue_file)
    admin = cat.get("secrets-admin")
    assert admin is not None
    two = admin.model_copy(
        update={"id": "secrets-admin-2p", "approval": ApprovalRule(approver_groups=("security",), min_approvals=2)}
    )
    return Catalogue(entitlements=(*cat.entitlements, two))


async def test_self_approval_is_refused_and_never_enters_history(settings):
    alice, bob, dave = (principal(settings, n) for n in ("alice", "bob", "dave"))
    inp = grant_input(settings, "alice", "secrets-admin", timedelta(minutes=30))
    async with running_worker(settings) as (client, ledger):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        await wait_state(handle, GrantState.awaiting_approval)
        before = await settled_history(handle)

        msg = await refused(
            handle, GrantWorkflow.approve, alice, kind="forbidden", rule="self_approval", update_id="self-approve"
        )
        assert "separation of duties" in msg
        await refused(handle, GrantWorkflow.deny, alice, kind="forbidden", rule="self_approval", update_id="self-deny")
        msg = await refused(
            handle, GrantWorkflow.approve, dave, kind="forbidden", rule="not_an_approver", update_id="dave-approve"
        )
        assert "security" in msg
        await refused(
            handle, GrantWorkflow.claim_credential, alice, kind="conflict", rule="wrong_state", update_id="early-claim"
        )

        # a refused update leaves history exactly as it was: no update event, no new event at all
        after = await settled_history(handle)
        assert update_ids(after) == []
        assert [e.event_type for e in after.events] == [e.event_type for e in before.events]
        g = await handle.query(GrantWorkflow.status)
        assert g.state is GrantState.awaiting_approval and g.approvals == []

        # a permitted decision does enter history
        denied = await handle.execute_update(
            GrantWorkflow.deny, ActionInput(actor=bob, comment="not today"), id="bob-deny"
        )
        assert denied.state is GrantState.denied
        result = await finish(handle)
        assert result.state is GrantState.denied and result.decided_by == "bob"
        assert update_ids(await handle.fetch_history()) == ["bob-deny"]

        # the workflow is closed now: the server itself turns further decisions away
        with pytest.raises(RPCError) as closed:
            await handle.execute_update(GrantWorkflow.approve, ActionInput(actor=bob))
        assert closed.value.status is RPCStatusCode.NOT_FOUND

        events = ledger.events(inp.grant_id)
        assert types(events) == ["grant.requested", "policy.decided", "approval.requested", "approval.denied"]
        denial = one(events, "approval.denied")
        assert (
            denial.actor.id == "bob"
            and denial.actor.role == "approver"
            and signed_data(denial, "deny") == {"reason": "not today"}
        )
        assert ledger.verify(inp.grant_id).ok
        assert vault_provider(settings).list_managed(inp.grant_id) == []


async def test_two_approvers_claim_once_and_early_revoke(settings):
    alice, bob, carol = (principal(settings, n) for n in ("alice", "bob", "carol"))
    inp = grant_input(
        settings, "alice", "secrets-admin-2p", timedelta(minutes=30), catalogue=two_person_catalogue(settings)
    )
    assert inp.decision.min_approvals == 2
    async with running_worker(settings, catalogue=two_person_catalogue(settings)) as (client, ledger):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        await wait_state(handle, GrantState.awaiting_approval)

        g = await handle.execute_update(GrantWorkflow.approve, ActionInput(actor=bob, comment="ok by me"))
        assert g.state is GrantState.awaiting_approval and [v.approver for v in g.approvals] == ["bob"]
        msg = await refused(
            handle, GrantWorkflow.approve, bob, kind="conflict", rule="duplicate_vote", update_id="bob-again"
        )
        assert "already approved" in msg
        assert "bob-again" not in update_ids(await handle.fetch_history())

        g = await handle.execute_update(GrantWorkflow.approve, ActionInput(actor=carol, comment="second pair of eyes"))
        assert g.state is GrantState.approved and g.decided_by == "bob,carol"
        await refused(handle, GrantWorkflow.approve, carol, kind="conflict", rule="wrong_state")
        await wait_state(handle, GrantState.active)

        # the wrapped credential goes to the requester only, exactly once
        await refused(handle, GrantWorkflow.claim_credential, bob, kind="forbidden", rule="not_requester")
        handover = await handle.execute_update(GrantWorkflow.claim_credential, ActionInput(actor=alice))
        assert isinstance(handover, WrappedHandover) and handover.wrapping_token
        msg = await refused(handle, GrantWorkflow.claim_credential, alice, kind="conflict", rule="already_delivered")
        assert "already delivered once" in msg

        # the handover is a real single-use Vault wrapping token for the token the grant tracks
        root = vault_root(settings)
        unwrapped = root.sys.unwrap(token=handover.wrapping_token)["auth"]
        status = await handle.query(GrantWorkflow.status)
        assert unwrapped["accessor"] == status.credential.reference
        assert sorted(unwrapped["policies"]) == ["jit-platform-admin"]
        with pytest.raises(hvac.exceptions.InvalidRequest):
            root.sys.unwrap(token=handover.wrapping_token)
        user = hvac.Client(url=settings.vault_addr, token=unwrapped["client_token"])
        secret = user.secrets.kv.v2.read_secret_version(
            path="platform/demo", mount_point="secret", raise_on_deleted_version=True
        )
        assert secret["data"]["data"] == {"greeting": "hello from jitaccess"}

        # the requester ends it early
        await handle.execute_update(GrantWorkflow.revoke, ActionInput(actor=alice, comment="done"))
        result = await finish(handle)
        assert result.state is GrantState.revoked and result.end_reason == "revoked early by alice: done"
        assert result.credential_delivered

        events = ledger.events(inp.grant_id)
        assert types(events) == [
            "grant.requested",
            "policy.decided",
            "approval.requested",
            "approval.granted",
            "approval.granted",
            "grant.approved",
            "credential.issued",
            "fulfilment.verified",
            "credential.delivered",
            "grant.revoke_requested",
            "revocation.confirmed",
        ]
        votes = [e for e in events if e.type == "approval.granted"]
        assert [(e.actor.id, e.actor.role, e.data["votes"]) for e in votes] == [
            ("bob", "approver", 1),
            ("carol", "approver", 2),
        ]
        assert votes[0].data["pending"] and not votes[1].data["pending"]  # one more vote was needed, then none
        assert one(events, "grant.approved").data["approvers"] == ["bob", "carol"]
        delivered = one(events, "credential.delivered")
        assert delivered.actor.id == "alice" and delivered.actor.role == "requester"
        assert handover.wrapping_token not in "".join(e.model_dump_json() for e in events)  # never in the evidence
        req = one(events, "grant.revoke_requested")
        assert (
            req.actor.id == "alice"
            and req.actor.role == "requester"
            and signed_data(req, "revoke") == {"reason": "done", "authority": "requester"}
        )
        assert one(events, "revocation.confirmed").data["reference"] == unwrapped["accessor"]
        assert ledger.verify(inp.grant_id).ok
        assert ledger.grant(inp.grant_id)["state"] == "revoked"

    assert token_is_dead(settings, unwrapped["accessor"])
    with pytest.raises(hvac.exceptions.Forbidden):
        user.secrets.kv.v2.read_secret_version(
            path="platform/demo", mount_point="secret", raise_on_deleted_version=True
        )


class GatedRevoke(Delegating):
    """The real provider, but revoke waits for the test to open the gate (a slow target)."""

    def __init__(self, settings) -> None:
        super().__init__(vault_provider(settings))
        self.entered = threading.Event()
        self.gate = threading.Event()

    def revoke(self, cred: IssuedCredential) -> bool:
        self.entered.set()
        assert self.gate.wait(20), "test never opened the gate"
        return self.real.revoke(cred)


async def test_decisions_after_revoke_are_conflicts(settings):
    alice, bob, carol, erin, dave = (principal(settings, n) for n in ("alice", "bob", "carol", "erin", "dave"))
    gated = GatedRevoke(settings)
    inp = grant_input(settings, "alice", "secrets-admin", timedelta(minutes=30))
    async with running_worker(settings, providers=ProviderRegistry({"vault_token": gated})) as (client, ledger):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        await wait_state(handle, GrantState.awaiting_approval)
        await handle.execute_update(GrantWorkflow.approve, ActionInput(actor=bob))
        await wait_state(handle, GrantState.active)

        await refused(handle, GrantWorkflow.revoke, dave, kind="forbidden", rule="not_allowed_to_revoke")
        g = await handle.execute_update(
            GrantWorkflow.revoke, ActionInput(actor=erin, comment="incident 42")
        )  # an admin
        assert g.state is GrantState.active  # the request is recorded; the run loop revokes
        assert await asyncio.to_thread(gated.entered.wait, 20)
        try:
            await wait_state(handle, GrantState.revoking)
            msg = await refused(
                handle, GrantWorkflow.approve, carol, kind="conflict", rule="wrong_state", update_id="late-approve"
            )
            assert "it is revoking" in msg
            await refused(handle, GrantWorkflow.deny, carol, kind="conflict", rule="wrong_state")
            await refused(
                handle, GrantWorkflow.revoke, alice, kind="conflict", rule="wrong_state", update_id="second-revoke"
            )
            await refused(handle, GrantWorkflow.claim_credential, alice, kind="conflict", rule="wrong_state")
        finally:
            gated.gate.set()
        result = await finish(handle)
        assert result.state is GrantState.revoked and result.end_reason == "revoked early by erin: incident 42"
        ids = update_ids(await handle.fetch_history())
        assert (
            "late-approve" not in ids and "second-revoke" not in ids and len(ids) == 2
        )  # bob's approve, erin's revoke

        events = ledger.events(inp.grant_id)
        assert types(events)[-2:] == ["grant.revoke_requested", "revocation.confirmed"]
        revoke_ev = one(events, "grant.revoke_requested")
        assert revoke_ev.actor.id == "erin" and revoke_ev.data["authority"] == "admin"
        assert ledger.verify(inp.grant_id).ok
        assert token_is_dead(settings, one(events, "credential.issued").data["reference"])


async def test_cancel_while_awaiting_approval_issues_nothing(settings):
    alice, bob = principal(settings, "alice"), principal(settings, "bob")
    inp = grant_input(settings, "alice", "secrets-admin", timedelta(minutes=30))
    async with running_worker(settings) as (client, ledger):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        await wait_state(handle, GrantState.awaiting_approval)
        g = await handle.execute_update(GrantWorkflow.revoke, ActionInput(actor=alice, comment="no longer needed"))
        assert g.state is GrantState.cancelled
        result = await finish(handle)
        assert result.state is GrantState.cancelled and result.credential is None
        with pytest.raises(RPCError):  # closed: the approval arrives too late
            await handle.execute_update(GrantWorkflow.approve, ActionInput(actor=bob))
        events = ledger.events(inp.grant_id)
        assert types(events) == ["grant.requested", "policy.decided", "approval.requested", "grant.cancelled"]
        assert signed_data(one(events, "grant.cancelled"), "revoke") == {
            "reason": "no longer needed",
            "before": "approval",
            "authority": "requester",
        }
        assert ledger.verify(inp.grant_id).ok
        assert vault_provider(settings).list_managed(inp.grant_id) == []
