"""The request use case over fakes: no Temporal, no HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jitaccess.domain.policy import AccessRequest
from jitaccess.domain.principals import Principal
from jitaccess.service.errors import RequestRefused
from jitaccess.service.grants import entitlements_for
from tests.unit.service_fakes import ALICE, BOB, CATALOGUE, world


def ask(entitlement="secrets-readonly", reason="debug", request_id=None, minutes=10) -> AccessRequest:
    return AccessRequest(
        entitlement=entitlement, duration=timedelta(minutes=minutes), reason=reason, request_id=request_id
    )


async def test_a_request_starts_one_grant():
    uc, workflows, _ = world()
    requests = uc.requests
    out = await requests.request(ALICE, ask())
    assert out.grant_id in workflows.grants and out.grant.requester.id == "alice"
    assert out.grant.decision.rule.startswith("entitlement:secrets-readonly")


async def test_a_retried_request_id_lands_on_the_same_grant():
    uc, workflows, _ = world()
    requests = uc.requests
    first = await requests.request(ALICE, ask(request_id="r-1"))
    again = await requests.request(ALICE, ask(request_id="r-1"))
    assert first.grant_id == again.grant_id and len(workflows.grants) == 1
    # the same ID from another requester is another grant
    other = await requests.request(Principal(id="dave", groups=("platform",)), ask(request_id="r-1"))
    assert other.grant_id != first.grant_id


async def test_a_reused_request_id_with_another_request_is_a_conflict():
    uc, _, _ = world()
    requests = uc.requests
    await requests.request(ALICE, ask(request_id="r-2"))
    with pytest.raises(RequestRefused) as e:
        await requests.request(ALICE, ask(request_id="r-2", reason="something else"))
    assert (e.value.kind.value, e.value.rule) == ("conflict", "request_id_reused")


async def test_a_denied_request_is_started_for_its_evidence_and_refused():
    uc, workflows, _ = world()
    requests = uc.requests
    with pytest.raises(RequestRefused) as e:
        await requests.request(BOB, ask())  # bob is not in the requester groups
    assert (e.value.kind.value, e.value.rule) == ("forbidden", "policy_denied")
    assert e.value.details["grant_id"] in workflows.grants
    assert "requester_not_eligible" in e.value.details["reason_codes"]


async def test_malformed_input_starts_nothing():
    uc, workflows, _ = world()
    requests = uc.requests
    with pytest.raises(RequestRefused) as e:
        await requests.request(ALICE, ask(entitlement="no-such-thing"))
    assert (e.value.kind.value, e.value.rule) == ("invalid", "invalid_request")
    assert "secrets-readonly" in e.value.details["valid_entitlements"]
    assert workflows.starts == 0


def test_the_catalogue_says_what_the_caller_may_request():
    seen = dict((e.id, may) for e, may in entitlements_for(CATALOGUE, BOB))
    assert seen["secrets-readonly"] is False
    assert dict((e.id, may) for e, may in entitlements_for(CATALOGUE, ALICE))["secrets-readonly"] is True
