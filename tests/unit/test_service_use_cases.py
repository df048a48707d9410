"""The request use case over fakes: no Temporal, no HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jitaccess.config import load_catalogue
from jitaccess.config.settings import EXAMPLES
from jitaccess.domain.contracts import GrantOptions
from jitaccess.domain.grant import Grant, GrantInput
from jitaccess.domain.onboarding import Onboarding, OnboardingInput, OnboardingRequest, WorkloadContext
from jitaccess.domain.policy import AccessRequest
from jitaccess.domain.principals import Principal
from jitaccess.domain.refusals import Refusal
from jitaccess.domain.states import GrantState
from jitaccess.service.delegations import DelegationRequest, Delegations
from jitaccess.service.grants import GrantRequests, RequestRefused
from jitaccess.service.onboardings import Onboardings

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
ALICE = Principal(id="alice", groups=("platform", "oncall"))
BOB = Principal(id="bob", groups=("security",))


class FakeStarter:
    """Workflows by ID, as Temporal keeps them: a second start of an existing ID starts nothing."""

    def __init__(self) -> None:
        self.grants: dict[str, Grant] = {}
        self.starts = 0

    async def start(self, inp: GrantInput) -> None:
        self.starts += 1
        if inp.grant_id not in self.grants:
            g = Grant.from_input(inp)
            g.state = GrantState.denied if not inp.decision.allowed else GrantState.requested
            self.grants[inp.grant_id] = g

    async def status(self, grant_id: str) -> Grant:
        return self.grants[grant_id]


class FixedClock:
    def now(self) -> datetime:
        return NOW


@pytest.fixture
def starter() -> FakeStarter:
    return FakeStarter()


@pytest.fixture
def requests(starter) -> GrantRequests:
    return GrantRequests(load_catalogue(EXAMPLES / "catalogue.yaml"), starter, FixedClock(), (), GrantOptions())


def ask(entitlement="secrets-readonly", reason="debug", request_id=None, minutes=10) -> AccessRequest:
    return AccessRequest(
        entitlement=entitlement, duration=timedelta(minutes=minutes), reason=reason, request_id=request_id
    )


async def test_a_request_starts_one_grant(requests, starter):
    out = await requests.request(ALICE, ask())
    assert out.grant_id in starter.grants and out.grant.requester.id == "alice"
    assert out.grant.decision.rule.startswith("entitlement:secrets-readonly")


async def test_a_retried_request_id_lands_on_the_same_grant(requests, starter):
    first = await requests.request(ALICE, ask(request_id="r-1"))
    again = await requests.request(ALICE, ask(request_id="r-1"))
    assert first.grant_id == again.grant_id and len(starter.grants) == 1
    # the same ID from another requester is another grant
    other = await requests.request(Principal(id="dave", groups=("platform",)), ask(request_id="r-1"))
    assert other.grant_id != first.grant_id


async def test_a_reused_request_id_with_another_request_is_a_conflict(requests):
    await requests.request(ALICE, ask(request_id="r-2"))
    with pytest.raises(RequestRefused) as e:
        await requests.request(ALICE, ask(request_id="r-2", reason="something else"))
    assert (e.value.kind.value, e.value.rule) == ("conflict", "request_id_reused")


async def test_a_denied_request_is_started_for_its_evidence_and_refused(requests, starter):
    with pytest.raises(RequestRefused) as e:
        await requests.request(BOB, ask())  # bob is not in the requester groups
    assert (e.value.kind.value, e.value.rule) == ("forbidden", "policy_denied")
    assert e.value.details["grant_id"] in starter.grants
    assert "requester_not_eligible" in e.value.details["reason_codes"]


async def test_malformed_input_starts_nothing(requests, starter):
    with pytest.raises(RequestRefused) as e:
        await requests.request(ALICE, ask(entitlement="no-such-thing"))
    assert (e.value.kind.value, e.value.rule) == ("invalid", "invalid_request")
    assert "secrets-readonly" in e.value.details["valid_entitlements"]
    assert starter.starts == 0


class FakeDelegationStore:
    def __init__(self) -> None:
        self.saved: list[tuple[object, object]] = []

    def add_delegation(self, d, event) -> None:
        self.saved.append((d, event))


def test_a_delegation_is_stored_with_its_evidence():
    store = FakeDelegationStore()
    delegations = Delegations(load_catalogue(EXAMPLES / "catalogue.yaml"), store, FixedClock())
    d = delegations.delegate(BOB, DelegationRequest("erin", "on leave", duration=timedelta(days=1)))
    assert (d.delegator.id, d.delegate, d.starts_at, d.ends_at) == ("bob", "erin", NOW, NOW + timedelta(days=1))
    [(saved, ev)] = store.saved
    assert saved == d and ev.type == "delegation.granted" and ev.grant_id == d.delegation_id
    assert ev.actor.id == "bob" and ev.data["delegator_groups"] == ["security"]


def test_only_an_approver_delegates_and_never_into_the_past():
    store = FakeDelegationStore()
    delegations = Delegations(load_catalogue(EXAMPLES / "catalogue.yaml"), store, FixedClock())
    with pytest.raises(Refusal) as e:
        delegations.delegate(ALICE, DelegationRequest("dave", "x", duration=timedelta(hours=1)))
    assert e.value.rule == "delegator_not_an_approver"
    with pytest.raises(Refusal) as e:
        delegations.delegate(BOB, DelegationRequest("erin", "x", starts_at=NOW - timedelta(hours=1)))
    assert e.value.kind.value == "invalid"
    assert store.saved == []


class FakeRuns:
    """Onboarding runs by ID: ended ones, the one going, and what was started."""

    def __init__(self, ended: tuple[str, ...] = (), going: str | None = None) -> None:
        self.ended, self.going = set(ended), going
        self.started: list[OnboardingInput] = []

    async def running(self, oid: str) -> bool | None:
        if oid == self.going:
            return True
        return False if oid in self.ended else None

    async def start(self, inp: OnboardingInput) -> None:
        self.started.append(inp)
        self.going = inp.onboarding_id

    async def status(self, oid: str) -> Onboarding:
        return Onboarding(onboarding_id=oid, requester=BOT, workload=WORKLOAD, template="batch-job")


BOT = Principal(id="deploy-bot", kind="service", groups=("platform", "platform-automation"), owner="frank")
WORKLOAD = WorkloadContext(service="nightly", owning_team="platform", environment="staging", repository="git@x:y.git")


def onboardings(runs: FakeRuns) -> Onboardings:
    return Onboardings(load_catalogue(EXAMPLES / "catalogue.yaml"), runs, FixedClock(), (), GrantOptions())


async def test_a_re_onboarding_after_an_end_gets_its_own_run_and_chain():
    runs = FakeRuns(ended=("onboarding-nightly-staging", "onboarding-nightly-staging-r2"))
    o = await onboardings(runs).onboard(BOT, OnboardingRequest(template="batch-job", workload=WORKLOAD), lambda o: True)
    assert o.onboarding_id == "onboarding-nightly-staging-r3"
    assert [i.onboarding_id for i in runs.started] == ["onboarding-nightly-staging-r3"]


async def test_a_retry_joins_the_run_going_only_if_the_caller_may_see_it():
    runs = FakeRuns(going="onboarding-nightly-staging")
    req = OnboardingRequest(template="batch-job", workload=WORKLOAD)
    o = await onboardings(runs).onboard(BOT, req, lambda o: True)
    assert o.onboarding_id == "onboarding-nightly-staging" and runs.started == []
    with pytest.raises(RequestRefused) as e:
        await onboardings(runs).onboard(BOT, req, lambda o: False)
    assert e.value.rule == "already_onboarding"


async def test_an_onboarding_a_rule_refuses_names_the_rule_and_starts_nothing():
    runs = FakeRuns()
    bob_team = WORKLOAD.model_copy(update={"owning_team": "security"})
    with pytest.raises(RequestRefused) as e:
        await onboardings(runs).onboard(BOB, OnboardingRequest(template="batch-job", workload=bob_team), lambda o: True)
    assert e.value.kind.value == "forbidden" and e.value.details["rule"] and runs.started == []
