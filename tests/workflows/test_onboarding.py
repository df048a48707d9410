"""Service onboarding (issue 5) on the real dev server with the real OpenBao: a template's child
grants all or nothing, rotation with an overlap, offboarding, and the approval path."""

from __future__ import annotations

import asyncio

import hvac
import pytest
import yaml
from temporalio.client import WorkflowUpdateFailedError

from jitaccess.config import load_catalogue
from jitaccess.dev.seed import seed_dev_approle
from jitaccess.domain.grant import ActionInput
from jitaccess.domain.onboarding import (
    OnboardingInput,
    OnboardingRequest,
    WorkloadContext,
    evaluate_onboarding,
    onboarding_id,
)
from jitaccess.workflows.grant import GrantWorkflow
from jitaccess.workflows.onboarding import ServiceOnboardingWorkflow
from tests.conftest import running_worker
from tests.support import entitlement_spec, eventually
from tests.workflows.support import principal, token_is_dead, types

APPROLE = {"type": "vault_approle", "params": {"role_name": "payments-api", "policies": ["jit-payments-read"]}}
SERVICE_CATALOGUE = {
    "entitlements": [
        entitlement_spec(
            "svc-kv-read",
            provider={"type": "vault_token", "params": {"policies": ["jit-platform-read"]}},
            default_duration="PT1H",
            max_duration="P30D",
            approval={"auto_approve": True},
        ),
        entitlement_spec(
            "svc-secret-id",
            provider=APPROLE,
            default_duration="PT1H",
            max_duration="P1D",
            # the onboarding automation is pre-authorised; anyone else needs security
            approval={
                "approver_groups": ["security"],
                "auto_rules": [{"name": "automation", "requester_groups": ["platform-automation"]}],
            },
        ),
        entitlement_spec(
            "svc-lead-secret-id",
            provider=APPROLE,
            default_duration="PT1H",
            max_duration="P1D",
            approval={"approver_groups": ["platform-leads"]},
        ),
        # valid params (the catalogue checks them when it loads), but OpenBao has no such role
        entitlement_spec(
            "svc-broken",
            description="a misconfigured entitlement: its database role does not exist",
            provider={"type": "vault_database", "params": {"role": "no-such-role"}},
            default_duration="PT1H",
            max_duration="P1D",
            approval={"auto_approve": True},
        ),
    ],
    "onboarding_templates": [
        {
            "id": "payments-api",
            "description": "payments-api",
            "entitlements": ["svc-kv-read", "svc-secret-id"],
            "environments": ["staging", "production"],
            "automation_principals": ["deploy-bot"],
            "pre_approved_environments": ["staging"],
            "max_lifetime": "PT1H",
            "rotation_interval": "PT4S",
            "rotation_overlap": "PT1S",
        },
        {
            "id": "broken",
            "description": "one child cannot issue",
            "entitlements": ["svc-kv-read", "svc-broken"],
            "environments": ["staging"],
            "automation_principals": ["deploy-bot"],
            "pre_approved_environments": ["staging"],
            "max_lifetime": "PT1H",
        },
        {
            "id": "by-hand",
            "description": "platform engineers onboard by hand; the secret-ID still needs platform-leads",
            "entitlements": ["svc-kv-read", "svc-lead-secret-id"],
            "environments": ["staging"],
            "requester_groups": ["platform"],
            "max_lifetime": "PT1H",
        },
    ],
}


@pytest.fixture
def svc_settings(settings, tmp_path, openbao):
    seed_dev_approle(openbao.address, openbao.extra["root_token"])
    path = tmp_path / "catalogue.yaml"
    path.write_text(yaml.safe_dump(SERVICE_CATALOGUE))
    return settings.model_copy(update={"catalogue_file": path})


def make_input(
    settings,
    requester: str,
    template: str,
    env: str = "staging",
    team: str = "platform-leads",
    service: str = "payments-api",
) -> OnboardingInput:
    who = principal(settings, requester)
    owner = principal(settings, who.owner) if who.owner else None
    req = OnboardingRequest(
        template=template,
        reason="new service",
        workload=WorkloadContext(
            service=service,
            owning_team=team,
            environment=env,
            repository="git@example.com:pay/api.git",
            dependencies=("postgres", "vault"),
        ),
    )
    decision = evaluate_onboarding(load_catalogue(settings.catalogue_file), who, req, owner=owner)
    assert decision.allowed, decision.messages
    return OnboardingInput(
        onboarding_id=onboarding_id(req.workload),
        requester=who,
        request=req,
        decision=decision,
        admin_groups=settings.admin_groups,
    )


async def wait_for(handle, predicate, timeout: float = 30):
    async def reached():
        o = await handle.query(ServiceOnboardingWorkflow.status)
        assert predicate(o), f"onboarding stayed {o.state}: {o.children}"
        return o

    return await eventually(reached, timeout, "onboarding state")


async def test_pre_approved_onboarding_rotates_and_offboards(svc_settings):
    s = svc_settings
    inp = make_input(s, "deploy-bot", "payments-api")
    assert inp.decision.pre_approved and inp.decision.rule == "template:payments-api/pre_approved"
    async with running_worker(s) as (client, ledger):
        handle = await client.start_workflow(
            ServiceOnboardingWorkflow.run, inp, id=inp.onboarding_id, task_queue=s.task_queue
        )
        o = await wait_for(handle, lambda o: o.state.value == "active")
        first = {ch.entitlement: ch for ch in o.children}
        assert set(first) == {"svc-kv-read", "svc-secret-id"}
        # the automation fetches the secret-ID through its child grant, wrapped
        bot = principal(s, "deploy-bot")
        child = client.get_workflow_handle(first["svc-secret-id"].grant_id)
        handover = await child.execute_update(GrantWorkflow.claim_credential, ActionInput(actor=bot))
        creds = hvac.Client(url=s.vault_addr, token=handover.wrapping_token).sys.unwrap()["data"]
        assert set(creds) >= {"role_id", "secret_id"}

        o = await wait_for(handle, lambda o: o.rotations >= 2, timeout=40)  # both secret-bearing children rotated
        await handle.execute_update(
            ServiceOnboardingWorkflow.offboard, ActionInput(actor=principal(s, "frank"), comment="service retired")
        )
        result = await asyncio.wait_for(handle.result(), 60)
    assert result.state.value == "offboarded"
    assert all(ch.state == "revoked" for ch in result.children)
    evs = ledger.events(inp.onboarding_id)
    assert ledger.verify(inp.onboarding_id).ok
    assert (
        evs[0].type == "onboarding.requested"
        and evs[0].actor.id == "deploy-bot"
        and evs[0].actor.kind.value == "service"
    )
    assert evs[0].data["owner"] == "platform-leads" and evs[0].data["workload"]["repository"].endswith("api.git")
    rotated = [e for e in evs if e.type == "rotation.completed"]
    assert rotated and all(
        e.data["old_reference"] and e.data["new_reference"] and e.data["old_reference"] != e.data["new_reference"]
        for e in rotated
    )
    assert all(e.data["old_state"] == "revoked" for e in rotated)
    kv = [e for e in rotated if e.data["entitlement"] == "svc-kv-read"][0]
    assert token_is_dead(s, kv.data["old_reference"])  # the rotated-out credential is confirmed gone
    assert types(evs)[-2:] == ["offboarding.completed", "onboarding.offboarded"]
    # each child carries the workload context on its own chain, requester = the automation
    child_req = ledger.events(first["svc-kv-read"].grant_id)[0]
    assert child_req.data["workload"]["onboarding_id"] == inp.onboarding_id and child_req.actor.id == "deploy-bot"
    assert ledger.events(first["svc-kv-read"].grant_id)[-1].type == "revocation.confirmed"


async def test_all_or_nothing_revokes_what_was_issued(svc_settings):
    s = svc_settings
    inp = make_input(s, "deploy-bot", "broken")
    async with running_worker(s) as (client, ledger):
        result = await asyncio.wait_for(
            client.execute_workflow(ServiceOnboardingWorkflow.run, inp, id=inp.onboarding_id, task_queue=s.task_queue),
            90,
        )
    assert result.state.value == "failed" and "svc-broken issue_failed" in result.end_reason
    states = {ch.entitlement: ch.state for ch in result.children}
    assert states == {"svc-kv-read": "revoked", "svc-broken": "issue_failed"}
    kv = next(ch for ch in result.children if ch.entitlement == "svc-kv-read")
    assert token_is_dead(s, kv.reference)
    assert "onboarding.provisioning_failed" in types(ledger.events(inp.onboarding_id))


async def test_production_needs_the_owning_team_and_security(svc_settings):
    s = svc_settings
    inp = make_input(s, "deploy-bot", "payments-api", env="production")
    assert not inp.decision.pre_approved and [st.name for st in inp.decision.stages] == ["owning-team", "security"]
    async with running_worker(s) as (client, ledger):
        handle = await client.start_workflow(
            ServiceOnboardingWorkflow.run, inp, id=inp.onboarding_id, task_queue=s.task_queue
        )
        await wait_for(handle, lambda o: o.state.value == "awaiting_approval")
        with pytest.raises(WorkflowUpdateFailedError) as e:  # frank (owner of deploy-bot) is not in security
            await handle.execute_update(ServiceOnboardingWorkflow.approve, ActionInput(actor=principal(s, "dave")))
        assert e.value.cause.details[1] == "not_an_approver"
        await handle.execute_update(ServiceOnboardingWorkflow.approve, ActionInput(actor=principal(s, "frank")))
        await handle.execute_update(ServiceOnboardingWorkflow.approve, ActionInput(actor=principal(s, "bob")))
        await wait_for(handle, lambda o: o.state.value == "active")
        await handle.execute_update(
            ServiceOnboardingWorkflow.offboard, ActionInput(actor=principal(s, "deploy-bot"), comment="done")
        )
        result = await asyncio.wait_for(handle.result(), 60)
    assert result.state.value == "offboarded"
    granted = [e for e in ledger.events(inp.onboarding_id) if e.type == "approval.granted"]
    assert [(e.actor.id, e.data["stage"]) for e in granted] == [("frank", "owning-team"), ("bob", "security")]


async def test_the_owning_teams_vote_alone_does_not_complete_a_childs_own_stage(svc_settings):
    """Issue 8: alice (platform) names her own team; her peer dave approves for it. The secret-ID's own
    rule needs platform-leads, so the onboarding waits for frank before anything is issued."""
    s = svc_settings
    inp = make_input(s, "alice", "by-hand", team="platform", service="alice-svc")
    assert not inp.decision.pre_approved
    assert [st.name for st in inp.decision.stages] == ["owning-team", "svc-lead-secret-id-approvers"]
    async with running_worker(s) as (client, ledger):
        handle = await client.start_workflow(
            ServiceOnboardingWorkflow.run, inp, id=inp.onboarding_id, task_queue=s.task_queue
        )
        await wait_for(handle, lambda o: o.state.value == "awaiting_approval")
        o = await handle.execute_update(ServiceOnboardingWorkflow.approve, ActionInput(actor=principal(s, "dave")))
        assert o.state.value == "awaiting_approval" and o.children == []  # the owning team alone: not enough
        with pytest.raises(WorkflowUpdateFailedError) as e:
            await handle.execute_update(ServiceOnboardingWorkflow.approve, ActionInput(actor=principal(s, "alice")))
        assert e.value.cause.details[1] == "self_approval"
        await handle.execute_update(ServiceOnboardingWorkflow.approve, ActionInput(actor=principal(s, "frank")))
        o = await wait_for(handle, lambda o: o.state.value == "active")
        assert {ch.entitlement for ch in o.children} == {"svc-kv-read", "svc-lead-secret-id"}
        await handle.execute_update(
            ServiceOnboardingWorkflow.offboard, ActionInput(actor=principal(s, "alice"), comment="done")
        )
        result = await asyncio.wait_for(handle.result(), 60)
    assert result.state.value == "offboarded"
    evs = ledger.events(inp.onboarding_id)
    granted = [(e.actor.id, e.data["stage"]) for e in evs if e.type == "approval.granted"]
    assert granted == [("dave", "owning-team"), ("frank", "svc-lead-secret-id-approvers")]
    decided = next(e for e in evs if e.type == "policy.decided")
    assert decided.data["stage_sources"] == {
        "owning-team": ["template:by-hand/owning-team"],
        "svc-lead-secret-id-approvers": ["entitlement:svc-lead-secret-id/approvers"],
    }
    assert decided.data["entitlement_rules"]["svc-lead-secret-id"] == "entitlement:svc-lead-secret-id/approval"
