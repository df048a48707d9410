"""The decision use cases over fakes: what each sends to the grant's workflow, and each refusal
decided before anything is sent (the workflow's own refusals come back unchanged)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jitaccess.domain.policy import AccessRequest
from jitaccess.domain.principals import Principal
from jitaccess.domain.refusals import RefusalKind
from jitaccess.service.delegations import DelegationRequest
from jitaccess.service.errors import NotFound, RequestRefused
from jitaccess.service.use_cases import UseCases
from tests.unit.service_fakes import ALICE, BOB, ERIN, FakeWorkflows, build, world


async def _requested(uc: UseCases, entitlement: str = "secrets-admin") -> str:
    req = AccessRequest(entitlement=entitlement, duration=timedelta(minutes=30), reason="rotate key")
    return (await uc.requests.request(ALICE, req)).grant_id


async def test_an_approval_carries_the_delegations_lent_to_the_approver():
    uc, workflows, _ = world()
    gid = await _requested(uc)
    await uc.delegations.delegate(BOB, DelegationRequest("erin", "on leave", duration=timedelta(days=1)))
    await uc.decisions.approve(ERIN, gid, "ok")
    [(wid, action, arg)] = workflows.updates
    assert (wid, action, arg.actor.id, arg.comment) == (gid, "approve", "erin", "ok")
    assert [d.delegator.id for d in arg.delegations] == ["bob"]


async def test_a_delegator_counts_with_the_groups_the_directory_gives_them_now():
    workflows = FakeWorkflows()
    now_as = {"bob": Principal(id="bob", groups=("platform",))}  # bob has left security
    uc = build(workflows, directory=now_as.get)
    gid = await _requested(uc)
    await uc.delegations.delegate(BOB, DelegationRequest("erin", "on leave", duration=timedelta(days=1)))
    await uc.decisions.deny(ERIN, gid, "no")
    assert [d.delegator.groups for d in workflows.updates[0][2].delegations] == [("platform",)]
    now_as.clear()  # ... and has left altogether: lends nothing
    await uc.decisions.deny(ERIN, gid, "no")
    assert workflows.updates[1][2].delegations == []


async def test_revoke_review_and_claim_go_to_the_workflow():
    uc, workflows, _ = world()
    gid = await _requested(uc)
    await uc.decisions.revoke(BOB, gid, "done")
    await uc.decisions.review(BOB, gid, "justified", "fine")
    handover = await uc.decisions.claim_credential(ALICE, gid)
    assert [a for _, a, _ in workflows.updates] == ["revoke", "review", "claim_credential"]
    assert workflows.updates[1][2].outcome == "justified" and handover.wrapping_token


async def test_the_workflows_refusal_comes_back_as_it_is():
    uc, workflows, _ = world()
    gid = await _requested(uc)
    workflows.refuse["approve"] = RequestRefused(RefusalKind.forbidden, "self_approval", "no", grant_id=gid)
    with pytest.raises(RequestRefused) as e:
        await uc.decisions.approve(ALICE, gid)
    assert e.value.rule == "self_approval"


async def test_an_extension_is_decided_by_the_grants_own_rules():
    uc, workflows, _ = world()
    gid = await _requested(uc, "secrets-readonly")
    await uc.decisions.extend(ALICE, gid, timedelta(minutes=15), "still fixing")
    [(_, action, arg)] = workflows.updates
    assert action == "extend" and arg.reason == "still fixing"
    assert arg.decision.policy_version == workflows.grants[gid].decision.policy_version


async def test_an_extension_of_an_unknown_grant_is_not_found_before_anything_else():
    uc, _, _ = world()
    with pytest.raises(NotFound):
        await uc.decisions.extend(ALICE, "grant-none", None, "x")


async def test_an_extension_needs_a_duration():
    uc, workflows, _ = world()
    gid = await _requested(uc)
    with pytest.raises(RequestRefused) as e:
        await uc.decisions.extend(ALICE, gid, None, "x")
    assert (e.value.kind, e.value.rule) == (RefusalKind.invalid, "invalid_request") and workflows.updates == []


async def test_a_grant_never_allowed_has_nothing_to_extend():
    uc, workflows, _ = world()
    gid = await _requested(uc)
    g = workflows.grants[gid]
    g.decision = g.decision.model_copy(update={"entitlement": None})  # no entitlement was ever matched
    with pytest.raises(RequestRefused) as e:
        await uc.decisions.extend(BOB, gid, timedelta(minutes=5), "x")
    assert (e.value.kind, e.value.rule) == (RefusalKind.conflict, "wrong_state") and workflows.updates == []
