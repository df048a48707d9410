"""Policy evaluation and catalogue validation: pure logic, no servers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from jitaccess.config import load_catalogue
from jitaccess.config.settings import EXAMPLES, ConfigError
from jitaccess.domain.catalogue import Catalogue
from jitaccess.domain.policy import INPUT_ERRORS, AccessRequest, Outcome, ReasonCode, evaluate
from jitaccess.domain.principals import ActorKind, Principal


def _ent(id: str, **over) -> dict:
    base = {
        "id": id,
        "description": f"test entitlement {id}",
        "provider": {"type": "vault_token", "params": {"policies": ["jit-platform-read"]}},
        "default_duration": "PT1H",
        "max_duration": "PT8H",
        "requester_groups": ["platform"],
        "approval": {"auto_approve": True},
        "reason_required": True,
    }
    base.update(over)
    return base


def make_catalogue(*ents: dict) -> Catalogue:
    return Catalogue.model_validate({"entitlements": list(ents)})


@pytest.fixture
def catalogue() -> Catalogue:
    return make_catalogue(
        _ent("db-read"),
        _ent(
            "db-admin",
            default_duration="PT30M",
            max_duration="PT2H",
            approval={"approver_groups": ["security", "dba"], "min_approvals": 2, "timeout": "PT4H"},
        ),
        _ent("no-reason", reason_required=False),
    )


ALICE = Principal(id="alice", groups=("platform",))
MALLORY = Principal(id="mallory", groups=("marketing",))


def req(ent: str = "db-read", duration: timedelta | None = timedelta(minutes=30), reason: str = "debug INC-1", **kw):
    return AccessRequest(entitlement=ent, duration=duration, reason=reason, **kw)


# -- denials, one per reason code -------------------------------------------------------


def test_not_in_catalogue_lists_valid_ids(catalogue):
    d = evaluate(catalogue, ALICE, req("nope"))
    assert d.outcome is Outcome.deny and not d.allowed
    assert d.reason_codes == (ReasonCode.not_in_catalogue,)
    assert d.rule == "catalogue"
    msg = d.messages[0]
    assert "'nope'" in msg
    for i in ("db-read", "db-admin", "no-reason"):
        assert i in msg
    assert d.is_input_error
    assert d.policy_version == catalogue.version
    assert d.inputs["entitlement"] == "nope"


def test_requester_not_eligible(catalogue):
    d = evaluate(catalogue, MALLORY, req())
    assert d.outcome is Outcome.deny
    assert d.reason_codes == (ReasonCode.requester_not_eligible,)
    assert "mallory" in d.messages[0] and "platform" in d.messages[0]
    # a policy outcome, not a malformed request: a grant is recorded
    assert not d.is_input_error
    assert d.rule == "entitlement:db-read/auto_approve"
    assert d.inputs["requester_groups"] == ["marketing"]


def test_duration_exceeds_max_states_the_max(catalogue):
    d = evaluate(catalogue, ALICE, req("db-admin", duration=timedelta(hours=3)))
    assert d.reason_codes == (ReasonCode.duration_exceeds_max,)
    msg = d.messages[0]
    assert "db-admin" in msg
    assert "7200s (2h00m00s)" in msg  # the maximum
    assert "10800s (3h00m00s)" in msg  # what was asked for
    assert d.is_input_error


def test_duration_at_max_is_allowed(catalogue):
    d = evaluate(catalogue, ALICE, req("db-read", duration=timedelta(hours=8)))
    assert d.allowed and d.duration == timedelta(hours=8)


@pytest.mark.parametrize("duration", [timedelta(0), timedelta(seconds=-5)])
def test_duration_not_positive(catalogue, duration):
    d = evaluate(catalogue, ALICE, req(duration=duration))
    assert d.reason_codes == (ReasonCode.duration_not_positive,)
    assert d.messages[0].startswith("duration must be positive; allowed for db-read: 60 to 28800 seconds")
    assert d.is_input_error


@pytest.mark.parametrize("reason", ["", "   \n\t"])
def test_reason_required(catalogue, reason):
    d = evaluate(catalogue, ALICE, req(reason=reason))
    assert d.reason_codes == (ReasonCode.reason_required,)
    assert "db-read" in d.messages[0]
    assert d.is_input_error
    assert d.inputs["reason_given"] is False


def test_reason_not_required_when_entitlement_says_so(catalogue):
    d = evaluate(catalogue, ALICE, req("no-reason", reason=""))
    assert d.allowed


def test_several_reasons_collected_and_input_error_only_if_all_are(catalogue):
    d = evaluate(catalogue, MALLORY, req(duration=timedelta(hours=9), reason=""))
    assert set(d.reason_codes) == {
        ReasonCode.duration_exceeds_max,
        ReasonCode.reason_required,
        ReasonCode.requester_not_eligible,
    }
    assert len(d.messages) == 3
    assert not d.is_input_error  # requester_not_eligible is a policy outcome
    # in a fixed order, each message beside its code: duration, reason, eligibility
    assert [c.value for c in d.reason_codes] == ["duration_exceeds_max", "reason_required", "requester_not_eligible"]
    assert d.messages[0].startswith("duration 32400s") and "mallory is in none" in d.messages[2]

    d2 = evaluate(catalogue, ALICE, req(duration=timedelta(hours=9), reason=""))
    assert set(d2.reason_codes) == {ReasonCode.duration_exceeds_max, ReasonCode.reason_required}
    assert d2.is_input_error


def test_is_input_error_false_on_allow(catalogue):
    d = evaluate(catalogue, ALICE, req())
    assert d.allowed and d.reason_codes == () and not d.is_input_error


def test_input_errors_set():
    assert ReasonCode.requester_not_eligible not in INPUT_ERRORS
    # eligibility is a policy outcome recorded on a grant; everything else is malformed input
    assert INPUT_ERRORS == set(ReasonCode) - {ReasonCode.requester_not_eligible, ReasonCode.not_break_glass_eligible}


# -- allow paths --------------------------------------------------------------------------


def test_allow_auto_approved(catalogue):
    d = evaluate(catalogue, ALICE, req(ticket="INC-1", request_id="r-1"))
    assert d.outcome is Outcome.allow and d.allowed
    assert d.auto_approved is True
    assert d.min_approvals == 0
    assert d.approver_groups == ()
    assert d.rule == "entitlement:db-read/auto_approve"
    assert d.policy_version == catalogue.version
    assert d.policy_version.startswith("sha256:")
    assert d.duration == timedelta(minutes=30)
    assert d.entitlement is not None and d.entitlement.id == "db-read"
    assert d.inputs == {
        "requester": "alice",
        "requester_kind": "human",
        "requester_groups": ["platform"],
        "entitlement": "db-read",
        "duration_seconds": 1800,
        "reason_given": True,
        "ticket": "INC-1",
        "requester_owner": None,
        "break_glass": False,
        "incident": None,
        "evaluated_at": None,
    }
    ev = d.evidence()
    assert ev["provider"] == "vault_token" and "entitlement" not in ev
    assert ev["outcome"] == "allow" and ev["policy_version"] == catalogue.version


def test_allow_approval_required(catalogue):
    d = evaluate(catalogue, ALICE, req("db-admin", duration=timedelta(hours=1)))
    assert d.allowed
    assert d.auto_approved is False
    assert d.approver_groups == ("security", "dba")
    assert d.min_approvals == 2
    assert d.approval_timeout == timedelta(hours=4)
    assert d.rule == "entitlement:db-admin/approval"
    assert d.policy_version == catalogue.version


def test_default_duration_when_none_given(catalogue):
    d = evaluate(catalogue, ALICE, req("db-admin", duration=None))
    assert d.allowed
    assert d.duration == timedelta(minutes=30)
    assert d.inputs["duration_seconds"] is None


def test_agent_requester_kind_recorded(catalogue):
    bot = Principal(id="bot-1", kind=ActorKind.agent, groups=("platform",))
    d = evaluate(catalogue, bot, req())
    assert d.allowed and d.inputs["requester_kind"] == "agent"


# -- policy version ------------------------------------------------------------------------


def test_policy_version_is_content_hash():
    a = make_catalogue(_ent("db-read"))
    b = make_catalogue(_ent("db-read"))
    assert a.version == b.version
    c = make_catalogue(_ent("db-read", max_duration="PT9H"))
    assert c.version != a.version
    d = make_catalogue(_ent("db-read", description="changed"))
    assert d.version != a.version
    # equivalent spellings of the same content give the same version
    e = make_catalogue(_ent("db-read", max_duration=8 * 3600))
    assert e.version == a.version
    assert evaluate(c, ALICE, req()).policy_version == c.version != evaluate(a, ALICE, req()).policy_version


# -- catalogue validation ----------------------------------------------------------------------


def test_duplicate_ids_rejected():
    with pytest.raises(ValidationError, match="duplicate entitlement ids: db-read"):
        make_catalogue(_ent("db-read"), _ent("other"), _ent("db-read"))


def test_default_longer_than_max_rejected():
    with pytest.raises(ValidationError, match="default_duration exceeds max_duration"):
        make_catalogue(_ent("db-read", default_duration="PT9H", max_duration="PT8H"))


def test_non_positive_durations_rejected():
    with pytest.raises(ValidationError, match="durations must be positive"):
        make_catalogue(_ent("db-read", default_duration="PT0S"))


def test_manual_approval_needs_approver_groups():
    with pytest.raises(ValidationError, match="needs approver_groups"):
        make_catalogue(_ent("db-read", approval={"auto_approve": False}))
    with pytest.raises(ValidationError, match="needs approver_groups"):
        make_catalogue(_ent("db-read", approval={}))


def test_other_catalogue_constraints():
    with pytest.raises(ValidationError):
        Catalogue.model_validate({"entitlements": []})
    with pytest.raises(ValidationError):
        make_catalogue(_ent("Bad ID"))
    with pytest.raises(ValidationError):
        make_catalogue(_ent("db-read", requester_groups=[]))
    with pytest.raises(ValidationError):
        make_catalogue(_ent("db-read", unknown_field=1))
    with pytest.raises(ValidationError):
        make_catalogue(_ent("db-read", approval={"approver_groups": ["s"], "min_approvals": 0}))


# -- the shipped example and load_catalogue ---------------------------------------------------


def test_example_catalogue_loads_and_evaluates():
    cat = load_catalogue(EXAMPLES / "catalogue.yaml")
    assert cat.ids[:2] == ["secrets-readonly", "secrets-admin"]
    ro = cat.get("secrets-readonly")
    assert ro.provider.type == "vault_token"
    assert ro.provider.params == {"policies": ["jit-platform-read"]}
    assert ro.default_duration == timedelta(hours=1) and ro.max_duration == timedelta(hours=8)

    d = evaluate(cat, ALICE, AccessRequest(entitlement="secrets-readonly", reason="debug"))
    assert d.allowed and d.auto_approved and d.duration == timedelta(hours=1)

    d = evaluate(cat, ALICE, AccessRequest(entitlement="secrets-admin", reason="fix"))
    assert d.allowed and not d.auto_approved
    assert d.approver_groups == ("security",) and d.min_approvals == 1
    assert d.approval_timeout == timedelta(hours=4)
    assert d.policy_version == cat.version

    bob = Principal(id="bob", groups=("security",))
    d = evaluate(cat, bob, AccessRequest(entitlement="secrets-admin", reason="fix"))
    assert d.reason_codes == (ReasonCode.requester_not_eligible,)


def test_load_catalogue_missing_file(tmp_path: Path):
    path = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match="not found") as ei:
        load_catalogue(path)
    assert str(path) in str(ei.value)


def test_load_catalogue_invalid_content(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "entitlements:\n"
        "  - id: x1\n"
        "    description: d\n"
        "    provider: {type: vault_token}\n"
        "    default_duration: PT2H\n"
        "    max_duration: PT1H\n"
        "    requester_groups: [a]\n"
        "    approval: {auto_approve: true}\n"
    )
    with pytest.raises(ConfigError) as ei:
        load_catalogue(path)
    assert str(path) in str(ei.value)
    assert "default_duration exceeds max_duration" in str(ei.value)


def test_load_catalogue_invalid_yaml(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("entitlements: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as ei:
        load_catalogue(path)
    assert str(path) in str(ei.value)


def test_load_catalogue_empty_file(tmp_path: Path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    with pytest.raises(ConfigError) as ei:
        load_catalogue(path)
    assert str(path) in str(ei.value)
