"""Step-up for approvers (catalogue `approver_auth`), as pure rules: the workflow's vote check, the
issuer's replay of the signed votes, and the onboarding round all apply it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jitaccess.config import load_catalogue
from jitaccess.config.settings import EXAMPLES
from jitaccess.domain.catalogue import Catalogue
from jitaccess.domain.commands import CommandSigner, CommandVerifier, SignerRole, new_private_key_text
from jitaccess.domain.credentials import ProviderGrant
from jitaccess.domain.grant import ActionInput, Grant, GrantInput, IssueRequest
from jitaccess.domain.issuance import START_GRANT, authorise_issue
from jitaccess.domain.policy import AccessRequest, evaluate
from jitaccess.domain.principals import AuthContext, Principal
from jitaccess.domain.refusals import Refusal
from jitaccess.domain.states import GrantState
from jitaccess.domain.stepup import ApproverAuth
from tests.support import entitlement_spec

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
STEP_UP = {"max_age": "PT15M", "amr": ["mfa"]}


def _ent(id: str, approver_auth: dict | None = None) -> dict:
    return entitlement_spec(id) if approver_auth is None else entitlement_spec(id, approver_auth=approver_auth)


CAT = Catalogue.model_validate({"entitlements": [_ent("plain"), _ent("strong", STEP_UP)]})
ALICE = Principal(id="alice", groups=("platform",))


def signed_in(amr=("pwd",), ago=timedelta(minutes=1), auth_time=True, acr=None) -> AuthContext:
    at = NOW - ago
    return AuthContext(
        issuer="https://idp.example",
        subject="bob-sub",
        token_hash="sha256:" + "0" * 64,
        issued_at=at,
        expires_at=at + timedelta(hours=1),
        auth_time=at if auth_time else None,
        amr=amr,
        acr=acr,
    )


def bob(ctx: AuthContext | None) -> Principal:
    return Principal(id="bob", groups=("security",), auth_context=ctx)


def pending(entitlement: str) -> Grant:
    req = AccessRequest(entitlement=entitlement, reason="r")
    g = Grant.from_input(
        GrantInput(grant_id="grant-1", requester=ALICE, request=req, decision=evaluate(CAT, ALICE, req, NOW))
    )
    g.move(GrantState.policy_evaluated)
    g.move(GrantState.awaiting_approval)
    g.open_approval(NOW)
    return g


def refusal(fn) -> Refusal:
    with pytest.raises(Refusal) as e:
        fn()
    return e.value


def test_an_entitlement_without_approver_auth_takes_any_sign_in():
    pending("plain").check_approve(bob(None), NOW)
    pending("plain").check_approve(bob(signed_in(ago=timedelta(days=2))), NOW)


@pytest.mark.parametrize(
    ("ctx", "names"),
    [
        (None, "a sign-in record"),
        (signed_in(amr=("pwd",)), "amr) mfa (this sign-in: pwd)"),
        (signed_in(amr=("pwd", "mfa"), ago=timedelta(minutes=40)), "within the last 15 min 0 s (this one was 40 min"),
        # no auth_time from the IdP: the token's iat counts as the sign-in
        (signed_in(amr=("mfa",), ago=timedelta(minutes=20), auth_time=False), "this one was 20 min"),
    ],
)
def test_a_vote_without_the_step_up_is_refused_naming_what_is_missing(ctx, names):
    e = refusal(lambda: pending("strong").check_approve(bob(ctx), NOW))
    assert (e.kind.value, e.rule) == ("forbidden", "step_up_required")
    assert names in e.message and "jitaccess auth login --step-up" in e.message


def test_a_recent_mfa_sign_in_approves_and_a_deny_never_needs_step_up():
    g = pending("strong")
    g.check_deny(bob(signed_in()), NOW)  # refusing access can never widen it
    g.approve(bob(signed_in(amr=("pwd", "otp", "mfa"), ago=timedelta(minutes=14))), NOW, "ok")
    assert g.state is GrantState.approved


def test_separation_of_duties_is_checked_before_step_up():
    g = pending("strong")
    assert refusal(lambda: g.check_approve(ALICE, NOW)).rule == "self_approval"
    stranger = Principal(id="mallory", groups=("marketing",), auth_context=signed_in())
    assert refusal(lambda: g.check_approve(stranger, NOW)).rule == "not_an_approver"


def test_acr_when_required_must_be_one_of_the_listed():
    req = ApproverAuth(acr=("phr", "mfa"))
    cat = Catalogue.model_validate({"entitlements": [_ent("acr", req.model_dump(mode="json"))]})
    r = AccessRequest(entitlement="acr", reason="r")
    g = Grant.from_input(GrantInput(grant_id="g", requester=ALICE, request=r, decision=evaluate(cat, ALICE, r, NOW)))
    g.move(GrantState.policy_evaluated)
    g.move(GrantState.awaiting_approval)
    g.open_approval(NOW)
    assert "acr one of phr, mfa (this sign-in: none)" in refusal(lambda: g.check_approve(bob(signed_in()), NOW)).message
    g.check_approve(bob(signed_in(acr="mfa")), NOW)


def test_the_issuer_replays_the_step_up_rule_on_the_signed_votes():
    """A forged workflow task cannot skip step-up: the issue activity re-checks the signed vote."""
    api = CommandSigner.from_text(new_private_key_text(), SignerRole.api)
    verifier = CommandVerifier([(api.public_key, SignerRole.api)])
    req = AccessRequest(entitlement="strong", duration=timedelta(minutes=10), reason="r")
    signed = api.sign(
        GrantInput(grant_id="grant-1", requester=ALICE, request=req, decision=evaluate(CAT, ALICE, req, NOW)),
        "grant-1",
        START_GRANT,
        NOW,
        "s" * 32,
    )
    asked = ProviderGrant(grant_id="grant-1", provider="vault_token", params={}, principal="alice", ttl_seconds=600)
    weak = api.sign(ActionInput(actor=bob(signed_in())), "grant-1", "approve", NOW, "w" * 32)
    e = refusal(lambda: authorise_issue(IssueRequest(grant=asked, request=signed, approvals=[weak]), CAT, verifier))
    assert e.rule == "step_up_required"
    strong = api.sign(ActionInput(actor=bob(signed_in(amr=("mfa",)))), "grant-1", "approve", NOW, "m" * 32)
    assert authorise_issue(IssueRequest(grant=asked, request=signed, approvals=[strong]), CAT, verifier).principal == (
        "alice"
    )


def test_absent_fields_leave_signed_bodies_and_the_policy_version_as_they_were():
    """Principal.auth_context and Entitlement.approver_auth are left out when unset: commands signed
    before they existed still verify, and a catalogue without step-up keeps its policy version."""
    assert "auth_context" not in Principal(id="bob").model_dump(mode="json")
    assert "approver_auth" not in CAT.entitlements[0].model_dump(mode="json")
    example = load_catalogue(EXAMPLES / "catalogue.yaml")
    assert all("approver_auth" not in e.model_dump(mode="json") for e in example.entitlements if not e.approver_auth)
    assert CAT.entitlements[1].model_dump(mode="json")["approver_auth"] == {
        "max_age": "PT15M",
        "amr": ["mfa"],
        "acr": [],
    }


def test_an_onboarding_round_takes_the_strictest_step_up_of_its_children():
    a = ApproverAuth(max_age=timedelta(minutes=30), amr=("mfa",))
    b = ApproverAuth(max_age=timedelta(minutes=10), amr=("hwk",), acr=("phr",))
    both = a.stricter(b)
    assert both.max_age == timedelta(minutes=10) and set(both.amr) == {"mfa", "hwk"} and both.acr == ("phr",)
    assert a.stricter(None) == a


def test_an_onboarding_needs_the_step_up_of_a_child_it_approves():
    from jitaccess.domain.approval import ApprovalRound
    from jitaccess.domain.onboarding import (
        Onboarding,
        OnboardingRequest,
        OnboardingState,
        WorkloadContext,
        evaluate_onboarding,
    )

    cat = Catalogue.model_validate(
        {
            "entitlements": [_ent("strong", STEP_UP)],
            "onboarding_templates": [
                {
                    "id": "svc",
                    "description": "d",
                    "entitlements": ["strong"],
                    "environments": ["staging"],
                    "requester_groups": ["platform"],
                    "max_lifetime": "P1D",
                }
            ],
        }
    )
    w = WorkloadContext(service="pay", owning_team="platform", environment="staging", repository="r")
    d = evaluate_onboarding(cat, ALICE, OnboardingRequest(template="svc", workload=w), now=NOW)
    assert d.allowed and d.approver_auth == ApproverAuth(max_age=timedelta(minutes=15), amr=("mfa",))
    o = Onboarding(
        onboarding_id="onboarding-pay-staging",
        state=OnboardingState.awaiting_approval,
        requester=ALICE,
        workload=w,
        template="svc",
        approval=ApprovalRound(
            stages=d.stages, requested_at=NOW, deadline=NOW + d.approval_timeout, approver_auth=d.approver_auth
        ),
    )
    security = Principal(id="bob", groups=("security", "platform"), auth_context=signed_in())
    assert refusal(lambda: o.check_decide(security, NOW, (), "approve")).rule == "step_up_required"
    o.check_decide(security, NOW)  # a deny (decide on) needs no step-up
    strong = security.model_copy(update={"auth_context": signed_in(amr=("pwd", "mfa"))})
    o.check_decide(strong, NOW, (), "approve")
