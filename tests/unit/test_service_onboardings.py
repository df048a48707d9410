"""The onboarding use cases over fakes: run numbering, joining a run, refusals, decisions, offboarding."""

from __future__ import annotations

import pytest

from jitaccess.domain.onboarding import Onboarding, OnboardingRequest, WorkloadContext
from jitaccess.domain.principals import Principal
from jitaccess.service.errors import NotFound, RequestRefused
from tests.unit.service_fakes import BOB, BOT, FRANK, FakeWorkflows, build

WORKLOAD = WorkloadContext(service="nightly", owning_team="platform", environment="staging", repository="git@x:y.git")
REQ = OnboardingRequest(template="batch-job", workload=WORKLOAD)
BASE = "onboarding-nightly-staging"


async def test_an_onboarding_starts_a_run():
    workflows = FakeWorkflows()
    o = await build(workflows).onboardings.onboard(BOT, REQ)
    assert o.onboarding_id == BASE and list(workflows.onboardings) == [BASE]


async def test_a_re_onboarding_after_an_end_gets_its_own_run_and_chain():
    workflows = FakeWorkflows()
    workflows.ended |= {BASE, f"{BASE}-r2"}
    o = await build(workflows).onboardings.onboard(BOT, REQ)
    assert o.onboarding_id == f"{BASE}-r3" and list(workflows.onboardings) == [f"{BASE}-r3"]


async def test_a_retry_joins_the_run_going_only_if_the_caller_may_read_it():
    workflows = FakeWorkflows()
    uc = build(workflows)
    await uc.onboardings.onboard(BOT, REQ)
    again = await uc.onboardings.onboard(BOT, REQ)  # its requester may read it
    assert again.onboarding_id == BASE and workflows.starts == 1
    other = Principal(id="other-bot", kind="service", groups=("security",))
    theirs = WORKLOAD.model_copy(update={"owning_team": "security"})
    workflows.onboardings[BASE] = Onboarding(onboarding_id=BASE, requester=other, workload=theirs, template="batch-job")
    with pytest.raises(RequestRefused) as e:
        await uc.onboardings.onboard(BOT, REQ)  # the same service and environment, someone else's run
    assert e.value.rule == "already_onboarding" and workflows.starts == 1


async def test_an_onboarding_a_rule_refuses_names_the_rule_and_starts_nothing():
    workflows = FakeWorkflows()
    bob_team = OnboardingRequest(template="batch-job", workload=WORKLOAD.model_copy(update={"owning_team": "security"}))
    with pytest.raises(RequestRefused) as e:
        await build(workflows).onboardings.onboard(BOB, bob_team)
    assert e.value.kind.value == "forbidden" and e.value.details["rule"] and workflows.starts == 0


async def test_malformed_onboarding_input_is_invalid():
    workflows = FakeWorkflows()
    with pytest.raises(RequestRefused) as e:
        await build(workflows).onboardings.onboard(BOT, OnboardingRequest(template="no-such", workload=WORKLOAD))
    assert (e.value.kind.value, e.value.rule) == ("invalid", "invalid_request") and workflows.starts == 0


async def test_an_onboarding_the_caller_may_not_read_does_not_exist_for_them():
    uc = build()
    await uc.onboardings.onboard(BOT, REQ)
    assert (await uc.onboardings.get(BOT, BASE)).onboarding_id == BASE
    with pytest.raises(NotFound):
        await uc.onboardings.get(BOB, BASE)
    with pytest.raises(NotFound):
        await uc.onboardings.get(BOT, "onboarding-none")


async def test_a_denial_goes_to_the_run_named():
    workflows = FakeWorkflows()
    uc = build(workflows)
    await uc.onboardings.onboard(BOT, REQ)
    await uc.onboardings.deny(FRANK, BASE, "no")
    [(wid, action, arg)] = workflows.updates
    assert (wid, action, arg.actor.id, arg.comment) == (BASE, "deny", "frank", "no")


async def test_decisions_and_offboarding_go_to_the_run_going():
    workflows = FakeWorkflows()
    uc = build(workflows)
    workflows.ended.add(BASE)
    await uc.onboardings.onboard(BOT, REQ)  # run 2
    await uc.onboardings.approve(FRANK, f"{BASE}-r2", "ok")
    await uc.onboardings.offboard(FRANK, BASE, "retired")  # named by its first ID: the run going is offboarded
    assert [(w, a) for w, a, _ in workflows.updates] == [(f"{BASE}-r2", "approve"), (f"{BASE}-r2", "offboard")]


async def test_offboarding_an_ended_run_says_it_has_ended():
    workflows = FakeWorkflows()
    uc = build(workflows)
    await uc.onboardings.onboard(BOT, REQ)
    workflows.ended.add(BASE)
    with pytest.raises(RequestRefused) as e:
        await uc.onboardings.offboard(FRANK, BASE, "retired")
    assert e.value.rule == "wrong_state"
