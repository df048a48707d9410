"""The attack suite: someone who reaches the Temporal frontend directly — a plain `temporalio`
client, with or without the payload key — tries to decide grants, take credentials, start grants
with provider parameters of their choosing, replay captured commands, forge the signals between
workflows, and answer workflow tasks as a rogue "worker". Every forgery must fail: the grant's
state and chain unchanged, and nothing issued.

Real Temporal dev server, real OpenBao, the real worker; the attacker's clients are raw.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import RetryPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from jitaccess.bootstrap import connect, data_converter
from jitaccess.domain import contracts as c
from jitaccess.domain.approval import Delegation
from jitaccess.domain.commands import CommandSigner, SignerRole, new_private_key_text
from jitaccess.domain.credentials import IssueResult, ProviderGrant
from jitaccess.domain.grant import ActionInput, IssueRequest
from jitaccess.domain.principals import Principal
from jitaccess.domain.reconciliation import DriftReport, Finding, FindingKind, Remedy
from jitaccess.domain.states import GrantState
from jitaccess.workflows.grant import GrantWorkflow
from tests.conftest import running_worker
from tests.workflows.support import (
    finish,
    grant_input,
    principal,
    settled_history,
    vault_provider,
    vault_root,
    wait_state,
)

MALLORY = Principal(id="mallory", groups=("security", "jitaccess-admins"))


def api_signer(settings) -> CommandSigner:
    return CommandSigner.from_text(settings.command_signing_key.get_secret_value(), SignerRole.api)


def signed(settings, cmd, target: str, action: str):
    """A genuine command as the API would sign it (what an attacker could copy out of history)."""
    return api_signer(settings).sign(cmd, target, action, datetime.now(UTC), secrets.token_hex(16))


async def attacker(settings, *, with_payload_key: bool = True) -> Client:
    """A plain client: no signing key; the payload key only if the attacker stole it too."""
    converter = data_converter(settings) if with_payload_key else pydantic_data_converter
    return await Client.connect(settings.temporal_address, data_converter=converter)


async def refused_update(handle, update, arg, rule: str | None = None) -> None:
    with pytest.raises(WorkflowUpdateFailedError) as e:
        await handle.execute_update(update, arg)
    if rule is not None:
        cause = e.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == c.REFUSAL, cause
        assert list(cause.details)[1] == rule, (list(cause.details), cause.message)


async def unchanged(handle, before) -> None:
    after = await settled_history(handle)
    assert [e.event_type for e in after.events] == [e.event_type for e in before.events]


async def test_forged_decisions_never_enter_history(settings):
    alice, bob = principal(settings, "alice"), principal(settings, "bob")
    inp = grant_input(settings, "alice", "secrets-admin", timedelta(minutes=30))
    async with running_worker(settings) as (client, ledger):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        await wait_state(handle, GrantState.awaiting_approval, ledger=ledger)
        before = await settled_history(handle)
        raw = (await attacker(settings)).get_workflow_handle(inp.grant_id)

        # an invented approver, an invented delegation "from bob", an invented admin revoking
        await refused_update(raw, GrantWorkflow.approve, ActionInput(actor=MALLORY), "unsigned_command")
        lent = Delegation(
            delegation_id="delegation-forged",
            delegator=bob,
            delegate="mallory",
            starts_at=datetime.now(UTC) - timedelta(hours=1),
            ends_at=datetime.now(UTC) + timedelta(hours=1),
        )
        await refused_update(
            raw, GrantWorkflow.approve, ActionInput(actor=MALLORY.model_copy(update={"groups": ()}), delegations=[lent])
        )
        await refused_update(raw, GrantWorkflow.revoke, ActionInput(actor=MALLORY, comment="x"), "unsigned_command")
        # signed, but with a key the worker does not trust
        own = CommandSigner.from_text(new_private_key_text(), SignerRole.api)
        forged = own.sign(ActionInput(actor=MALLORY), inp.grant_id, "approve", datetime.now(UTC), "n" * 32)
        await refused_update(raw, GrantWorkflow.approve, forged, "unknown_signer")
        # a genuine signature over a command whose principal was then changed
        genuine = signed(settings, ActionInput(actor=alice.model_copy(update={"id": "dave"})), inp.grant_id, "approve")
        tampered = genuine.model_copy(update={"actor": MALLORY})
        await refused_update(raw, GrantWorkflow.approve, tampered, "bad_signature")
        # a signature made for another action, and one too old
        as_deny = signed(settings, ActionInput(actor=bob), inp.grant_id, "deny")
        await refused_update(raw, GrantWorkflow.approve, as_deny, "bad_signature")
        old = api_signer(settings).sign(
            ActionInput(actor=bob), inp.grant_id, "approve", datetime.now(UTC) - timedelta(hours=1), "o" * 32
        )
        await refused_update(raw, GrantWorkflow.approve, old, "stale_command")

        await unchanged(handle, before)
        g = await handle.query(GrantWorkflow.status)
        assert g.state is GrantState.awaiting_approval and g.approvals == []
        await handle.execute_update(GrantWorkflow.deny, ActionInput(actor=bob, comment="end of test"))
        assert (await finish(handle)).state is GrantState.denied


async def test_a_captured_approval_replays_nowhere(settings):
    bob = principal(settings, "bob")
    a = grant_input(settings, "alice", "secrets-admin", timedelta(minutes=30))
    b = grant_input(settings, "alice", "secrets-admin", timedelta(minutes=30))
    async with running_worker(settings) as (client, ledger):
        ha = await client.start_workflow(GrantWorkflow.run, a, id=a.grant_id, task_queue=settings.task_queue)
        hb = await client.start_workflow(GrantWorkflow.run, b, id=b.grant_id, task_queue=settings.task_queue)
        await wait_state(hb, GrantState.awaiting_approval, ledger=ledger)
        before_b = await settled_history(hb)
        raw = await attacker(settings)

        captured = signed(settings, ActionInput(actor=bob, comment="ok"), a.grant_id, "approve")
        await refused_update(raw.get_workflow_handle(b.grant_id), GrantWorkflow.approve, captured, "bad_signature")
        await unchanged(hb, before_b)

        # on its own grant it counts once; sent again it is a replay
        await raw.get_workflow_handle(a.grant_id).execute_update(GrantWorkflow.approve, captured)
        await wait_state(ha, GrantState.active, ledger=ledger)
        await refused_update(raw.get_workflow_handle(a.grant_id), GrantWorkflow.approve, captured, "replayed_command")
        for h in (ha, hb):
            await h.execute_update(GrantWorkflow.revoke, ActionInput(actor=bob, comment="end of test"))
        await finish(ha)
        await finish(hb)


async def test_nobody_claims_a_credential_but_its_requester(settings):
    alice = principal(settings, "alice")
    inp = grant_input(settings, "alice", "secrets-readonly", timedelta(minutes=10))
    async with running_worker(settings) as (client, ledger):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        await wait_state(handle, GrantState.active, ledger=ledger)
        raw = (await attacker(settings)).get_workflow_handle(inp.grant_id)
        await refused_update(raw, GrantWorkflow.claim_credential, ActionInput(actor=alice), "unsigned_command")
        # alice still gets her credential, once
        handover = await handle.execute_update(GrantWorkflow.claim_credential, ActionInput(actor=alice))
        assert handover.wrapping_token
        await handle.execute_update(GrantWorkflow.revoke, ActionInput(actor=alice, comment="end of test"))
        assert (await finish(handle)).state is GrantState.revoked


@pytest.mark.parametrize("how", ["unsigned", "retargeted", "params_changed"])
async def test_a_forged_start_issues_nothing(settings, how):
    """`policies: [root]` in a GrantWorkflow input: unsigned, a genuine input moved to another
    workflow ID, or a genuine input whose provider params were changed."""
    genuine = grant_input(settings, "alice", "secrets-readonly", timedelta(minutes=10))
    ent = genuine.decision.entitlement
    assert ent is not None
    rooted = ent.model_copy(update={"provider": ent.provider.model_copy(update={"params": {"policies": ["root"]}})})
    evil_decision = genuine.decision.model_copy(update={"entitlement": rooted})
    gid = f"grant-{uuid.uuid4()}"
    if how == "unsigned":
        inp = genuine.model_copy(update={"grant_id": gid, "decision": evil_decision})
    elif how == "retargeted":
        inp = signed(settings, genuine.model_copy(update={"decision": evil_decision}), genuine.grant_id, "start:x")
        inp = inp.model_copy(update={"grant_id": gid})
    else:
        inp = signed(settings, genuine.model_copy(update={"grant_id": gid}), gid, "start:GrantWorkflow")
        inp = inp.model_copy(update={"decision": evil_decision})
    async with running_worker(settings) as (_client, ledger):
        raw = await attacker(settings)
        handle = await raw.start_workflow(GrantWorkflow.run, inp, id=gid, task_queue=settings.task_queue)
        result = await finish(handle)
        assert result.state is GrantState.denied and result.credential is None
        decided = [e for e in ledger.events(gid) if e.type == "policy.decided"][0]
        assert decided.data["rule"] == "trust:signed_request", decided.data
        assert decided.data["reason_codes"] == ["unsigned_command" if how == "unsigned" else "bad_signature"]
        assert vault_provider(settings).list_managed(gid) == []
        assert ledger.verify(gid).ok


@workflow.defn(name="RogueWorkflow")
class RogueWorkflow:
    """What a rogue process polling a task queue could make a real worker do: schedule the issue
    activity with whatever input it likes."""

    @workflow.run
    async def run(self, args: tuple[str, IssueRequest]) -> IssueResult:
        queue, req = args
        return await workflow.execute_activity(
            c.ISSUE_CREDENTIAL,
            req,
            result_type=IssueResult,
            task_queue=queue,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )


@pytest.mark.parametrize("how", ["unsigned", "unapproved", "root_params"])
async def test_a_rogue_worker_cannot_make_the_issuer_issue(settings, how):
    genuine = grant_input(settings, "alice", "secrets-admin", timedelta(minutes=10))  # needs bob's approval
    gid = genuine.grant_id
    root = ProviderGrant(
        grant_id=gid, provider="vault_token", params={"policies": ["root"]}, principal="mallory", ttl_seconds=600
    )
    if how == "unsigned":
        req = IssueRequest(grant=root, request=genuine)
    elif how == "unapproved":
        req = IssueRequest(grant=root, request=signed(settings, genuine, gid, "start:GrantWorkflow"))
    else:  # approved and signed, but the rogue asks for root: the issuer uses its own catalogue
        auto = grant_input(settings, "alice", "secrets-readonly", timedelta(minutes=10))
        gid = auto.grant_id
        root = root.model_copy(update={"grant_id": gid})
        req = IssueRequest(grant=root, request=signed(settings, auto, gid, "start:GrantWorkflow"))
    rogue_queue = f"rogue-{uuid.uuid4().hex[:8]}"
    async with running_worker(settings) as (_client, _ledger):
        raw = await attacker(settings)
        async with Worker(
            raw, task_queue=rogue_queue, workflows=[RogueWorkflow], workflow_runner=UnsandboxedWorkflowRunner()
        ):
            run = raw.execute_workflow(
                RogueWorkflow.run, (settings.task_queue, req), id=f"rogue-{uuid.uuid4()}", task_queue=rogue_queue
            )
            if how == "root_params":
                res = await run
                token = vault_provider(settings).list_managed(gid)
                assert len(token) == 1
                lookup = _lookup(settings, token[0].reference)
                assert "root" not in lookup["policies"] and lookup["meta"]["requester"] == "alice", lookup
                assert "root" not in str(res.credential.details), res.credential
                vault_provider(settings).revoke(token[0])
                return
            with pytest.raises(Exception) as e:
                await run
    cause = e.value
    while cause.__cause__ is not None and not isinstance(cause, ApplicationError):
        cause = cause.__cause__
    assert isinstance(cause, ApplicationError) and cause.type == c.ISSUE_REFUSED, e.value
    expected = {"unsigned": "unsigned_command", "unapproved": "approvals_missing"}[how]
    assert list(cause.details)[0] == expected, (list(cause.details), cause.message)
    assert vault_provider(settings).list_managed(gid) == []


def _lookup(settings, accessor: str) -> dict:
    return vault_root(settings).auth.token.lookup_accessor(accessor)["data"]


async def test_forged_signals_are_dropped(settings):
    inp = grant_input(settings, "alice", "secrets-readonly", timedelta(minutes=10))
    async with running_worker(settings) as (client, ledger):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        g = await wait_state(handle, GrantState.active, ledger=ledger)
        before = len(ledger.events(inp.grant_id))
        raw = (await attacker(settings)).get_workflow_handle(inp.grant_id)
        finding = Finding(
            kind=FindingKind.drift,
            provider="vault_token",
            grant_id=inp.grant_id,
            detail="forged",
            remedy=Remedy.signal_grant,
        )
        await raw.signal(c.REPORT_DRIFT_SIGNAL, DriftReport(finding=finding))  # unsigned
        as_api = signed(settings, DriftReport(finding=finding), inp.grant_id, c.REPORT_DRIFT_SIGNAL)
        await raw.signal(c.REPORT_DRIFT_SIGNAL, as_api)  # signed, but by the API: signals are the workers'
        await raw.signal(c.PARENT_REVOKE_SIGNAL, c.ParentRevoke(reason="forged offboarding"))
        await raw.signal(c.CHILD_UPDATE_SIGNAL, c.ChildUpdate(grant_id=inp.grant_id, state="revoked"))
        await asyncio.sleep(1.0)
        g = await handle.query(GrantWorkflow.status)
        assert g.state is GrantState.active and g.drift is None
        assert len(ledger.events(inp.grant_id)) == before
        await handle.execute_update(
            GrantWorkflow.revoke, ActionInput(actor=principal(settings, "alice"), comment="end of test")
        )
        assert (await finish(handle)).state is GrantState.revoked


async def test_a_captured_start_started_again_later_is_stale(settings):
    """A genuine signed start, copied out of history and started again under a fresh ID after the
    age limit: Temporal stamps the start when it accepts it, so the copy is too old there."""
    genuine = grant_input(settings, "alice", "secrets-readonly", timedelta(minutes=10))
    gid = f"grant-{uuid.uuid4()}"
    body = genuine.model_copy(update={"grant_id": gid})
    old = api_signer(settings).sign(body, gid, "start:GrantWorkflow", datetime.now(UTC) - timedelta(hours=1), "s" * 32)
    async with running_worker(settings) as (_client, ledger):
        raw = await attacker(settings)
        result = await finish(await raw.start_workflow(GrantWorkflow.run, old, id=gid, task_queue=settings.task_queue))
        assert result.state is GrantState.denied and result.credential is None
        decided = [e for e in ledger.events(gid) if e.type == "policy.decided"][0]
        assert decided.data["reason_codes"] == ["stale_command"], decided.data
        assert vault_provider(settings).list_managed(gid) == []


async def test_a_start_that_waits_longer_than_the_age_limit_for_a_worker_is_not_stale(settings):
    """The age limit counts to the moment Temporal accepted the start (its start event), never to
    when a worker first ran it: 10,000 grants requested at once queued their first tasks for over
    five minutes, and every one after that was denied as `stale_command` (bench, 2026-12-03)."""
    s = settings.model_copy(update={"command_max_age": timedelta(seconds=2)})
    client = await connect(s)  # signs the start, as the API does
    inp = grant_input(s, "alice", "secrets-admin", timedelta(minutes=10))
    handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=s.task_queue)
    await asyncio.sleep(3)  # no worker polls yet: the first task waits past the limit
    async with running_worker(s, client) as (_client, ledger):
        await wait_state(handle, GrantState.awaiting_approval, ledger=ledger)
        await handle.execute_update(GrantWorkflow.deny, ActionInput(actor=principal(s, "bob"), comment="end of test"))
        assert (await finish(handle)).state is GrantState.denied
    assert [e.type for e in ledger.events(inp.grant_id)][:3] == [
        "grant.requested",
        "policy.decided",
        "approval.requested",
    ]
