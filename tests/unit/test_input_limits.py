"""Issue 8 (input): durations the API cannot represent, durations below an entitlement's minimum,
size limits on every free-text field, and the delegation rules — all pure, no servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel, ValidationError

from jitaccess.api.models import (
    MAX_DURATION_SECONDS,
    CommentBody,
    DelegationBody,
    ExtendBody,
    GrantRequestBody,
    ReasonBody,
    ReviewBody,
)
from jitaccess.domain.approval import Delegation
from jitaccess.domain.catalogue import DEFAULT_MIN_DURATION, Catalogue
from jitaccess.domain.delegation import check_delegator, current_delegations, delegation_window
from jitaccess.domain.grant import Refusal, RefusalKind
from jitaccess.domain.onboarding import OnboardingRequest
from jitaccess.domain.policy import AccessRequest, ReasonCode, evaluate, evaluate_extension
from jitaccess.domain.principals import Principal
from tests.support import entitlement_spec

ALICE = Principal(id="alice", groups=("platform",))
CAROL = Principal(id="carol", groups=("security",))
NOW = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)


def _ent(id: str, **over: object) -> dict:
    defaults = {"default_duration": "PT1H", "max_duration": "PT8H", "approval": {"auto_approve": True}}
    return entitlement_spec(id, **{**defaults, **over})


CAT = Catalogue.model_validate(
    {
        "entitlements": [
            _ent("plain"),
            _ent("long-min", min_duration="PT10M"),
            _ent(
                "approved",
                approval={
                    "stages": [{"name": "sec", "approver_groups": ["security"]}],
                    "escalate_after": "PT1H",
                    "escalation_groups": ["security-leads"],
                },
            ),
        ],
        "onboarding_templates": [
            {
                "id": "svc",
                "description": "svc",
                "entitlements": ["plain"],
                "environments": ["staging"],
                "max_lifetime": "P1D",
                "security_groups": ["appsec"],
            }
        ],
    }
)


# -- durations the API cannot represent: 422 saying what is allowed, never an OverflowError ----------


@pytest.mark.parametrize(
    "value",
    [1e20, float("inf"), float("-inf"), float("nan"), "9" * 30, "9" * 5000, 10**30, "P999999999D", "PT1E5S", "²"],
)
@pytest.mark.parametrize("body", ["grant", "extend", "delegation"])
def test_unrepresentable_durations_are_validation_errors(value, body):
    make = {
        "grant": lambda d: GrantRequestBody(entitlement="plain", duration=d, reason="r"),
        "extend": lambda d: ExtendBody(duration=d, reason="r"),
        "delegation": lambda d: DelegationBody(delegate="erin", duration=d, reason="r"),
    }[body]
    with pytest.raises(ValidationError) as ei:
        make(value)
    msg = str(ei.value)
    assert "duration" in msg and f"whole number of seconds from 1 to {MAX_DURATION_SECONDS}" in msg


@pytest.mark.parametrize("value", [0.5, "PT0.5S", 60.25])
def test_fractional_seconds_are_refused(value):
    with pytest.raises(ValidationError, match="not a whole number of seconds"):
        GrantRequestBody(entitlement="plain", duration=value, reason="r")


@pytest.mark.parametrize(("value", "seconds"), [(900, 900), (900.0, 900), ("900", 900), ("PT15M", 900), ("P1D", 86400)])
def test_representable_durations_parse(value, seconds):
    assert GrantRequestBody(entitlement="plain", duration=value, reason="r").duration == timedelta(seconds=seconds)


# -- the minimum: default 60 s, per entitlement `min_duration` --------------------------------------


def test_duration_below_the_default_minimum_is_an_input_error():
    d = evaluate(CAT, ALICE, AccessRequest(entitlement="plain", duration=timedelta(seconds=30), reason="r"))
    assert not d.allowed and d.is_input_error and d.reason_codes == (ReasonCode.duration_below_min,)
    assert DEFAULT_MIN_DURATION == timedelta(seconds=60)
    assert "below the minimum for plain: 60s" in d.messages[0] and "allowed: 60 to 28800 seconds" in d.messages[0]
    ok = evaluate(CAT, ALICE, AccessRequest(entitlement="plain", duration=timedelta(seconds=60), reason="r"))
    assert ok.allowed


def test_min_duration_is_configurable_per_entitlement():
    d = evaluate(CAT, ALICE, AccessRequest(entitlement="long-min", duration=timedelta(minutes=5), reason="r"))
    assert d.reason_codes == (ReasonCode.duration_below_min,) and "allowed: 600 to 28800 seconds" in d.messages[0]
    short = Catalogue.model_validate({"entitlements": [_ent("xx", min_duration="PT1S")]})
    assert evaluate(short, ALICE, AccessRequest(entitlement="xx", duration=timedelta(seconds=2), reason="r")).allowed


@pytest.mark.parametrize(
    ("over", "problem"),
    [
        ({"min_duration": "PT0S"}, "at least 1"),
        ({"min_duration": "PT0.5S"}, "whole number of seconds"),
        ({"min_duration": "PT2H"}, "min_duration exceeds default_duration"),
    ],
)
def test_catalogue_refuses_a_bad_min_duration(over, problem):
    with pytest.raises(ValidationError, match=problem):
        Catalogue.model_validate({"entitlements": [_ent("xx", **over)]})


def test_extension_below_the_minimum_is_refused():
    d = evaluate(CAT, ALICE, AccessRequest(entitlement="plain", duration=timedelta(hours=1), reason="r"))
    ext = evaluate_extension(d, ALICE, timedelta(hours=1), timedelta(seconds=10))
    assert not ext.allowed and ext.reason_codes == (ReasonCode.duration_below_min,)
    assert "allowed: 60 to 25200 seconds" in ext.messages[0]
    full = evaluate_extension(d, ALICE, timedelta(hours=8) - timedelta(seconds=30), timedelta(seconds=10))
    assert "no extension of at least the minimum fits" in full.messages[0]


# -- size limits on every free-text field -------------------------------------------------------------

LIMITS: list[tuple[type[BaseModel], dict, str, int]] = [
    (GrantRequestBody, {"entitlement": "plain"}, "entitlement", 64),
    (GrantRequestBody, {"entitlement": "plain"}, "reason", 2000),
    (GrantRequestBody, {"entitlement": "plain"}, "ticket", 200),
    (GrantRequestBody, {"entitlement": "plain"}, "incident", 200),
    (GrantRequestBody, {"entitlement": "plain"}, "request_id", 128),
    (CommentBody, {}, "comment", 2000),
    (ReasonBody, {}, "reason", 2000),
    (ExtendBody, {"duration": 60}, "reason", 2000),
    (ReviewBody, {"outcome": "justified"}, "notes", 4000),
    (DelegationBody, {"delegate": "erin", "duration": 60}, "reason", 2000),
    (DelegationBody, {"reason": "r", "duration": 60}, "delegate", 200),
]
WORKLOAD = {"service": "svc", "owning_team": "t", "environment": "staging", "repository": "r"}


@pytest.mark.parametrize(("model", "base", "field", "limit"), LIMITS, ids=lambda x: getattr(x, "__name__", str(x)))
def test_every_free_text_field_has_a_size_limit(model, base, field, limit):
    if "reason" in model.model_fields:
        base = {"reason": "r", **base}
    model.model_validate({**base, field: "a" * limit})
    with pytest.raises(ValidationError) as ei:
        model.model_validate({**base, field: "a" * (limit + 1)})
    (err,) = ei.value.errors()
    assert err["loc"] == (field,) and f"at most {limit} characters" in err["msg"]


@pytest.mark.parametrize(
    ("where", "value", "loc", "limit"),
    [
        ("template", "a" * 65, ("template",), "at most 64 characters"),
        ("reason", "a" * 2001, ("reason",), "at most 2000 characters"),
        ("workload.owning_team", "a" * 201, ("workload", "owning_team"), "at most 200 characters"),
        ("workload.repository", "a" * 301, ("workload", "repository"), "at most 300 characters"),
        ("workload.service", "a" * 42, ("workload", "service"), "at most 41 characters"),
        ("workload.environment", "a" * 32, ("workload", "environment"), "at most 31 characters"),
        ("workload.dependencies", ["a" * 201], ("workload", "dependencies", 0), "at most 200 characters"),
        ("workload.dependencies", ["a"] * 51, ("workload", "dependencies"), "at most 50 items"),
    ],
)
def test_onboarding_fields_have_size_limits(where, value, loc, limit):
    body: dict = {"template": "svc", "reason": "r", "workload": dict(WORKLOAD)}
    if where.startswith("workload."):
        body["workload"][where.split(".", 1)[1]] = value
    else:
        body[where] = value
    with pytest.raises(ValidationError) as ei:
        OnboardingRequest.model_validate(body)
    (err,) = ei.value.errors()
    assert err["loc"] == loc and limit in err["msg"]


# -- delegation ---------------------------------------------------------------------------------------


def test_only_an_approver_may_delegate():
    assert CAT.approving_groups == ("security", "security-leads", "appsec")
    for who in (CAROL, Principal(id="grace", groups=("security-leads",)), Principal(id="x", groups=("appsec",))):
        check_delegator(CAT, who)
    with pytest.raises(Refusal) as ei:
        check_delegator(CAT, ALICE)
    assert ei.value.kind is RefusalKind.forbidden and ei.value.rule == "delegator_not_an_approver"
    assert "alice is in none of the approver or escalation groups" in ei.value.message


def test_delegation_window_rules():
    assert delegation_window(NOW, None, None, timedelta(hours=1), "carol", "erin") == (NOW, NOW + timedelta(hours=1))
    # a start a few seconds in the past (clock skew) counts as now
    assert delegation_window(NOW, NOW - timedelta(seconds=5), NOW + timedelta(hours=1), None, "carol", "erin")[0] == NOW
    cases = [
        ((NOW - timedelta(hours=1), None, timedelta(hours=2)), "is in the past"),
        ((None, NOW - timedelta(minutes=1), None), "must end after it starts"),
        ((None, None, None), "give ends_at or duration"),
        ((None, None, timedelta(days=31)), "at most 30 days"),
        ((NOW + timedelta(days=400), None, timedelta(hours=1)), "at most 365 days ahead"),
        ((datetime.max.replace(tzinfo=UTC) - timedelta(days=1), None, timedelta(days=2)), "end of the calendar"),
    ]
    for (starts, ends, duration), problem in cases:
        with pytest.raises(Refusal) as ei:
            delegation_window(NOW, starts, ends, duration, "carol", "erin")
        assert ei.value.kind is RefusalKind.invalid and problem in ei.value.message, (problem, ei.value.message)
    with pytest.raises(Refusal, match="yourself.*unknown delegate|yourself"):
        delegation_window(NOW, None, None, timedelta(hours=1), "carol", "carol", known_users={"carol"})
    with pytest.raises(Refusal, match="unknown delegate 'zed'"):
        delegation_window(NOW, None, None, timedelta(hours=1), "carol", "zed", known_users={"carol", "erin"})


def test_naive_datetimes_in_a_delegation_are_refused():
    with pytest.raises(ValidationError, match="timezone"):
        DelegationBody(delegate="erin", starts_at="2030-01-01T00:00:00", duration=60, reason="r")


def test_a_delegation_counts_with_the_delegators_current_groups():
    d = Delegation(
        delegation_id="delegation-1", delegator=CAROL, delegate="erin", starts_at=NOW, ends_at=NOW + timedelta(hours=1)
    )
    moved = Principal(id="carol", groups=("platform",))
    (now_d,) = current_delegations([d], lambda uid: moved if uid == "carol" else None)
    assert now_d.delegator == moved and now_d.delegation_id == "delegation-1"
    assert current_delegations([d], lambda uid: None) == []  # delegator no longer configured: does not count
