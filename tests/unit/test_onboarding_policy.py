"""The onboarding policy: templates only, pre-approved for the onboarding automation in allowed
environments, the owning team otherwise, and security too for production."""

from jitaccess.domain.catalogue import Catalogue
from jitaccess.domain.onboarding import OnboardingRequest, WorkloadContext, evaluate_onboarding, onboarding_id
from jitaccess.domain.principals import ActorKind, Principal

BOT = Principal(id="deploy-bot", kind=ActorKind.service, groups=("platform",), owner="frank")
ALICE = Principal(id="alice", groups=("platform",))
CAT = Catalogue.model_validate(
    {
        "entitlements": [
            {
                "id": "kv",
                "description": "d",
                "provider": {"type": "vault_token", "params": {"policies": ["p"]}},
                "default_duration": "PT1H",
                "max_duration": "PT8H",
                "requester_groups": ["platform"],
                "approval": {"auto_approve": True},
            },
            {
                "id": "grp",
                "description": "d",
                "provider": {"type": "aws_iam_group", "params": {"group": "g"}},
                "default_duration": "PT1H",
                "max_duration": "PT8H",
                "requester_groups": ["platform"],
                "approval": {"auto_approve": True},
            },
        ],
        "onboarding_templates": [
            {
                "id": "svc",
                "description": "d",
                "entitlements": ["kv", "grp"],
                "environments": ["staging", "production"],
                "automation_principals": ["deploy-bot"],
                "pre_approved_environments": ["staging"],
                "max_lifetime": "P30D",
            },
        ],
    }
)


def req(template="svc", env="staging") -> OnboardingRequest:
    return OnboardingRequest(
        template=template,
        workload=WorkloadContext(service="pay", owning_team="pay-leads", environment=env, repository="r"),
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
    assert not d.pre_approved and [(s.name, s.approver_groups) for s in d.stages] == [("owning-team", ("pay-leads",))]
    d = evaluate_onboarding(CAT, BOT, req(env="production"))
    assert [s.name for s in d.stages] == ["owning-team", "security"]


def test_only_templates_and_their_environments():
    d = evaluate_onboarding(CAT, BOT, req(template="nope"))
    assert not d.allowed and d.reason_codes == ("template_not_in_catalogue",) and "valid ids: svc" in d.messages[0]
    d = evaluate_onboarding(CAT, BOT, req(env="dev"))
    assert d.reason_codes == ("environment_not_allowed",) and "staging, production" in d.messages[0]
