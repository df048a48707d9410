"""The onboarding policy: templates only, pre-approved for the onboarding automation in allowed
environments, the owning team otherwise, and security too for production — and the catalogue's own
rules still hold: who may use the template, whose team may own the service, and each child
entitlement's eligibility and approval rule (the stricter of the template's and the entitlement's)."""

from datetime import UTC, datetime, timedelta

import pytest

from jitaccess.domain.approval import ApprovalRound
from jitaccess.domain.catalogue import Catalogue
from jitaccess.domain.grant import Refusal
from jitaccess.domain.onboarding import (
    Onboarding,
    OnboardingRequest,
    OnboardingState,
    WorkloadContext,
    evaluate_onboarding,
    onboarding_id,
)
from jitaccess.domain.principals import ActorKind, Principal
from tests.support import entitlement_spec

BOT = Principal(id="deploy-bot", kind=ActorKind.service, groups=("platform", "automation"), owner="frank")
FRANK = Principal(id="frank", groups=("platform-leads",))
ALICE = Principal(id="alice", groups=("platform",))
DAVE = Principal(id="dave", groups=("platform",))
BOB = Principal(id="bob", groups=("security",))
NOW = datetime(2025, 1, 6, 10, 0, tzinfo=UTC)

SECRET_ID = {
    "id": "secret-id",
    "description": "an AppRole secret-ID; platform-leads approve, the automation is pre-authorised",
    "provider": {"type": "vault_approle", "params": {"role_name": "r"}},
    "default_duration": "PT8H",
    "max_duration": "P1D",
    "requester_groups": ["platform"],
    "approval": {
        "approver_groups": ["platform-leads"],
        "timeout": "PT2H",
        "auto_rules": [{"name": "automation", "requester_groups": ["automation"]}],
    },
}
HOURS = {"default_duration": "PT1H", "max_duration": "PT8H"}
SEC_TWO = entitlement_spec("sec-two", **HOURS, approval={"approver_groups": ["security"], "min_approvals": 2})
AUTO = {"auto_approve": True}
CAT = Catalogue.model_validate(
    {
        "entitlements": [
            entitlement_spec("kv", **HOURS, approval=AUTO),
            entitlement_spec(
                "grp", **HOURS, approval=AUTO, provider={"type": "aws_iam_group", "params": {"group": "g"}}
            ),
            SECRET_ID,
            SEC_TWO,
        ],
        "onboarding_templates": [
            {
                "id": "svc",
                "description": "d",
                "entitlements": ["kv", "grp"],
                "environments": ["staging", "production"],
                "automation_principals": ["deploy-bot"],
                "requester_groups": ["platform", "security"],
                "pre_approved_environments": ["staging"],
                "max_lifetime": "P30D",
            },
            {
                "id": "bot-only",
                "description": "only the automation may use it",
                "entitlements": ["kv"],
                "environments": ["staging"],
                "automation_principals": ["deploy-bot"],
                "pre_approved_environments": ["staging"],
                "max_lifetime": "P1D",
            },
            {
                "id": "with-secret",
                "description": "a child whose own rule needs platform-leads",
                "entitlements": ["kv", "secret-id"],
                "environments": ["staging", "production"],
                "automation_principals": ["deploy-bot"],
                "requester_groups": ["platform"],
                "pre_approved_environments": ["staging"],
                "max_lifetime": "P30D",
            },
            {
                "id": "two-sec",
                "description": "a child that needs two security approvers",
                "entitlements": ["kv", "sec-two"],
                "environments": ["staging", "production"],
                "automation_principals": ["deploy-bot"],
                "requester_groups": ["platform"],
                "pre_approved_environments": ["staging"],
                "max_lifetime": "P30D",
            },
        ],
    }
)


def req(template="svc", env="staging", team="platform") -> OnboardingRequest:
    return OnboardingRequest(
        template=template,
        workload=WorkloadContext(service="pay", owning_team=team, environment=env, repository="r"),
    )


def test_pre_approved_for_the_automation_in_an_allowed_environment():
    d = evaluate_onboarding(CAT, BOT, req())
    assert d.allowed and d.pre_approved and d.stages == ()
    assert [(c.entitlement, c.secret_bearing) for c in d.children] == [("kv", True), ("grp", False)]
    assert all(c.decision.auto_approved and c.decision.rule.startswith("onboarding:svc/") for c in d.children)
    assert d.children[0].decision.duration.total_seconds() == 8 * 3600  # capped by the entitlement max
    assert onboarding_id(req().workload) == "onboarding-pay-staging"


def test_others_need_the_owning_team_and_production_needs_security():
    d = evaluate_onboarding(CAT, ALICE, req())
    assert not d.pre_approved and [(s.name, s.approver_groups) for s in d.stages] == [("owning-team", ("platform",))]
    d = evaluate_onboarding(CAT, BOT, req(env="production"))
    assert [s.name for s in d.stages] == ["owning-team", "security"]


def test_only_templates_and_their_environments():
    d = evaluate_onboarding(CAT, BOT, req(template="nope"))
    assert not d.allowed and d.reason_codes == ("template_not_in_catalogue",) and "valid ids: svc" in d.messages[0]
    assert d.is_input_error
    d = evaluate_onboarding(CAT, BOT, req(env="dev"))
    assert d.reason_codes == ("environment_not_allowed",) and "staging, production" in d.messages[0]
    assert d.is_input_error


def test_only_the_templates_requesters_may_onboard():
    d = evaluate_onboarding(CAT, ALICE, req("bot-only"))  # a human, and the template names only the automation
    assert not d.allowed and not d.is_input_error
    assert d.reason_codes == ("template_requester_not_eligible",) and d.rule == "template:bot-only/requesters"
    assert "deploy-bot" in d.messages[0]
    assert evaluate_onboarding(CAT, BOT, req("bot-only")).allowed
    d = evaluate_onboarding(CAT, BOB, req("with-secret", team="security"))  # security may not use it
    assert not d.allowed and d.reason_codes[0] == "template_requester_not_eligible"


def test_the_owning_team_must_be_the_requesters():
    d = evaluate_onboarding(CAT, ALICE, req(team="security"))
    assert not d.allowed and not d.is_input_error
    assert d.reason_codes == ("owning_team_not_yours",) and d.rule == "template:svc/owning_team"
    assert "platform" in d.messages[0]
    # a service principal: a group it carries, or its declared owner's team
    assert evaluate_onboarding(CAT, BOT, req(team="platform")).allowed
    assert evaluate_onboarding(CAT, BOT, req(team="platform-leads")).reason_codes == ("owning_team_not_yours",)
    d = evaluate_onboarding(CAT, BOT, req(team="platform-leads"), owner=FRANK)
    assert d.allowed and d.inputs["owner_groups"] == ["platform-leads"]
    # someone else's groups are not the owner's
    impostor = Principal(id="mallory", groups=("platform-leads",))
    assert not evaluate_onboarding(CAT, BOT, req(team="platform-leads"), owner=impostor).allowed
    # a human's "owner" is no route to another team
    human = ALICE.model_copy(update={"owner": "frank"})
    assert not evaluate_onboarding(CAT, human, req(team="platform-leads"), owner=FRANK).allowed


def test_every_child_needs_the_requesters_own_eligibility():
    """bob (security) may use the template and owns the team he names, yet he may not request the
    children directly: neither through the onboarding."""
    d = evaluate_onboarding(CAT, BOB, req(team="security"))
    assert not d.allowed and not d.is_input_error
    assert d.reason_codes == ("requester_not_eligible", "requester_not_eligible")
    assert d.rule == "entitlement:kv/requester_groups"
    assert "kv" in d.messages[0] and "grp" in d.messages[1] and "platform" in d.messages[0]
    assert d.children == []


def test_child_approval_stages_join_the_round():
    """alice with her peer's team: the secret-ID's own platform-leads stage is still required."""
    d = evaluate_onboarding(CAT, ALICE, req("with-secret"), now=NOW)
    assert d.allowed and not d.pre_approved
    assert [(s.name, s.approver_groups, s.owner_may_approve) for s in d.stages] == [
        ("owning-team", ("platform",), True),
        ("secret-id-approvers", ("platform-leads",), False),
    ]
    assert d.stage_sources == {
        "owning-team": ["template:with-secret/owning-team"],
        "secret-id-approvers": ["entitlement:secret-id/approvers"],
    }
    assert d.approval_timeout == timedelta(hours=2)  # the stricter of the template's (1 day) and the child's
    secret = next(c for c in d.children if c.entitlement == "secret-id")
    assert secret.decision.inputs["entitlement_rule"] == "entitlement:secret-id/approval"
    assert secret.decision.inputs["onboarding_stages"] == ["secret-id-approvers"]
    kv = next(c for c in d.children if c.entitlement == "kv")
    assert kv.decision.inputs["entitlement_rule"] == "entitlement:kv/auto_approve"
    assert kv.decision.inputs["onboarding_stages"] == []


def test_pre_approved_only_if_every_child_auto_approves():
    # the automation carries the group the secret-ID's own auto rule admits: pre-approved
    d = evaluate_onboarding(CAT, BOT, req("with-secret"))
    assert d.allowed and d.pre_approved and d.stages == () and d.rule == "template:with-secret/pre_approved"
    # without that group the template's pre-approval is not enough: the child's own stage applies
    plain = BOT.model_copy(update={"groups": ("platform",)})
    d = evaluate_onboarding(CAT, plain, req("with-secret"))
    assert d.allowed and not d.pre_approved and d.rule == "template:with-secret/approval"
    assert [(s.name, s.approver_groups) for s in d.stages] == [("secret-id-approvers", ("platform-leads",))]
    d = evaluate_onboarding(CAT, BOT, req("two-sec"))
    assert not d.pre_approved and [(s.name, s.min_approvals) for s in d.stages] == [("sec-two-approvers", 2)]


def test_the_same_approvers_merge_into_the_stricter_stage():
    d = evaluate_onboarding(CAT, ALICE, req("two-sec", env="production"))
    assert [(s.name, s.approver_groups, s.min_approvals) for s in d.stages] == [
        ("owning-team", ("platform",), 1),
        ("security", ("security",), 2),  # the template's security stage, at the child's two approvers
    ]
    assert d.stage_sources["security"] == ["template:two-sec/security", "entitlement:sec-two/approvers"]
    # the owning-team stage merged with a child stage that needs independence: the owner no longer counts
    plain = BOT.model_copy(update={"groups": ("platform",)})
    d = evaluate_onboarding(CAT, plain, req("with-secret", env="production", team="platform-leads"), owner=FRANK)
    owning = d.stages[0]
    assert owning.name == "owning-team" and owning.approver_groups == ("platform-leads",)
    assert not owning.owner_may_approve
    assert d.stage_sources["owning-team"] == ["template:with-secret/owning-team", "entitlement:secret-id/approvers"]


def _pending(requester: Principal, d) -> Onboarding:
    return Onboarding(
        onboarding_id="onboarding-pay-staging",
        state=OnboardingState.awaiting_approval,
        requester=requester,
        workload=req().workload,
        template="with-secret",
        approval=ApprovalRound(stages=d.stages, requested_at=NOW, deadline=NOW + d.approval_timeout),
    )


def test_separation_of_duties_in_the_round():
    plain = BOT.model_copy(update={"groups": ("platform",)})
    o = _pending(plain, evaluate_onboarding(CAT, plain, req("with-secret")))
    with pytest.raises(Refusal) as e:  # the bot's owner cannot satisfy the secret-ID's independent stage
        o.check_decide(FRANK, NOW)
    assert e.value.rule == "owner_not_independent"
    o = _pending(ALICE, evaluate_onboarding(CAT, ALICE, req("with-secret")))
    with pytest.raises(Refusal) as e:
        o.check_decide(ALICE, NOW)
    assert e.value.rule == "self_approval"
    stage, _, _ = o.check_decide(DAVE, NOW)  # her peer counts for the owning team only
    assert stage.name == "owning-team"
