"""Signed commands and the issuer's last check, as pure functions (no servers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jitaccess.config import load_catalogue
from jitaccess.config.settings import EXAMPLES
from jitaccess.domain.approval import Delegation
from jitaccess.domain.commands import CommandSigner, CommandVerifier, SignerRole, new_private_key_text
from jitaccess.domain.credentials import ProviderGrant
from jitaccess.domain.grant import ActionInput, GrantInput, IssueRequest
from jitaccess.domain.issuance import START_GRANT, authorise_issue
from jitaccess.domain.policy import AccessRequest, evaluate
from jitaccess.domain.principals import Principal
from jitaccess.domain.refusals import Refusal

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
CAT = load_catalogue(EXAMPLES / "catalogue.yaml")
ALICE = Principal(id="alice", groups=("platform", "oncall"))
BOB = Principal(id="bob", groups=("security",))
API = CommandSigner.from_text(new_private_key_text(), SignerRole.api)
WORKER = CommandSigner.from_text(new_private_key_text(), SignerRole.worker)
VERIFIER = CommandVerifier([(API.public_key, SignerRole.api), (WORKER.public_key, SignerRole.worker)])


def sign(cmd, target="grant-1", action="approve", signer=API, at=NOW, nonce="n" * 32):
    return signer.sign(cmd, target, action, at, nonce)


def rule(fn) -> str:
    with pytest.raises(Refusal) as e:
        fn()
    return e.value.rule


def test_a_genuine_command_verifies_and_names_its_signer():
    auth = VERIFIER.verify(sign(ActionInput(actor=BOB)), "grant-1", "approve", NOW)
    assert auth.key_id == API.key_id and auth.role is SignerRole.api


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c.model_copy(update={"auth": None}), "unsigned_command"),
        (lambda c: c.model_copy(update={"actor": Principal(id="mallory", groups=("security",))}), "bad_signature"),
        (lambda c: c.model_copy(update={"comment": "changed"}), "bad_signature"),
        (
            lambda c: c.model_copy(
                update={
                    "delegations": [
                        Delegation(delegation_id="d", delegator=BOB, delegate="x", starts_at=NOW, ends_at=NOW)
                    ]
                }
            ),
            "bad_signature",
        ),
    ],
)
def test_any_change_to_a_signed_command_is_refused(mutate, expected):
    cmd = mutate(sign(ActionInput(actor=BOB, comment="ok")))
    assert rule(lambda: VERIFIER.verify(cmd, "grant-1", "approve", NOW)) == expected


def test_a_command_binds_its_target_action_time_and_signer():
    cmd = sign(ActionInput(actor=BOB))
    assert rule(lambda: VERIFIER.verify(cmd, "grant-2", "approve", NOW)) == "bad_signature"
    assert rule(lambda: VERIFIER.verify(cmd, "grant-1", "deny", NOW)) == "bad_signature"
    assert rule(lambda: VERIFIER.verify(cmd, "grant-1", "approve", NOW + timedelta(minutes=6))) == "stale_command"
    assert rule(lambda: VERIFIER.verify(cmd, "grant-1", "approve", NOW, (SignerRole.worker,))) == "wrong_signer"
    stranger = CommandSigner.from_text(new_private_key_text(), SignerRole.api)
    assert rule(lambda: VERIFIER.verify(sign(ActionInput(actor=BOB), signer=stranger), "grant-1", "approve", NOW)) == (
        "unknown_signer"
    )
    # a worker key cannot pass itself off as the API
    posing = WORKER.sign(ActionInput(actor=BOB), "grant-1", "approve", NOW, "p" * 32)
    posing = posing.model_copy(update={"auth": posing.auth.model_copy(update={"role": SignerRole.api})})
    assert rule(lambda: VERIFIER.verify(posing, "grant-1", "approve", NOW)) == "wrong_signer"


def _request(entitlement: str, who: Principal = ALICE) -> GrantInput:
    req = AccessRequest(entitlement=entitlement, duration=timedelta(minutes=10), reason="unit test")
    return GrantInput(grant_id="grant-1", requester=who, request=req, decision=evaluate(CAT, who, req, NOW))


def _asked(policies=("root",)) -> ProviderGrant:
    return ProviderGrant(
        grant_id="grant-1",
        provider="vault_token",
        params={"policies": list(policies)},
        principal="mallory",
        ttl_seconds=600,
    )


def test_the_issuer_takes_provider_params_from_its_own_catalogue():
    signed_request = sign(_request("secrets-readonly"), action=START_GRANT)
    grant = authorise_issue(IssueRequest(grant=_asked(), request=signed_request), CAT, VERIFIER)
    ent = CAT.get("secrets-readonly")
    assert ent is not None
    assert grant.params == dict(ent.provider.params) and grant.principal == "alice"


def test_the_issuer_refuses_what_it_cannot_prove():
    unsigned = IssueRequest(grant=_asked(), request=_request("secrets-readonly"))
    assert rule(lambda: authorise_issue(unsigned, CAT, VERIFIER)) == "unsigned_command"
    needs_bob = sign(_request("secrets-admin"), action=START_GRANT)
    assert rule(lambda: authorise_issue(IssueRequest(grant=_asked(), request=needs_bob), CAT, VERIFIER)) == (
        "approvals_missing"
    )
    # the requester's own "approval", even signed, is not one
    own = sign(ActionInput(actor=ALICE), nonce="a" * 32)
    assert rule(
        lambda: authorise_issue(IssueRequest(grant=_asked(), request=needs_bob, approvals=[own]), CAT, VERIFIER)
    ) == ("self_approval")
    bobs = sign(ActionInput(actor=BOB), nonce="b" * 32, at=NOW + timedelta(minutes=1))
    ok = authorise_issue(IssueRequest(grant=_asked(), request=needs_bob, approvals=[bobs]), CAT, VERIFIER)
    assert ok.principal == "alice"
    # bob's vote for another grant does not count here
    elsewhere = sign(ActionInput(actor=BOB), target="grant-9", nonce="c" * 32)
    assert rule(
        lambda: authorise_issue(IssueRequest(grant=_asked(), request=needs_bob, approvals=[elsewhere]), CAT, VERIFIER)
    ) == ("bad_signature")


def test_the_issuer_refuses_a_definition_it_does_not_hold():
    inp = _request("secrets-readonly")
    ent = inp.decision.entitlement
    assert ent is not None
    rooted = ent.model_copy(update={"provider": ent.provider.model_copy(update={"params": {"policies": ["root"]}})})
    forged = sign(
        inp.model_copy(update={"decision": inp.decision.model_copy(update={"entitlement": rooted})}),
        action=START_GRANT,
    )
    assert rule(lambda: authorise_issue(IssueRequest(grant=_asked(), request=forged), CAT, VERIFIER)) == (
        "catalogue_mismatch"
    )
    too_long = _asked().model_copy(update={"ttl_seconds": 10**7})
    signed_request = sign(_request("secrets-readonly"), action=START_GRANT)
    assert rule(lambda: authorise_issue(IssueRequest(grant=too_long, request=signed_request), CAT, VERIFIER)) == (
        "duration_exceeds_max"
    )


class ActionInputOfLater(ActionInput):
    """The same command model after a later release added a field (with a default)."""

    urgency: str = "normal"


def test_a_field_added_later_keeps_old_signatures_valid():
    old = sign(ActionInput(actor=BOB, comment="ok"))
    after_upgrade = ActionInputOfLater.model_validate(old.model_dump())
    assert VERIFIER.verify(after_upgrade, "grant-1", "approve", NOW).key_id == API.key_id
    changed = after_upgrade.model_copy(update={"urgency": "high"})
    assert rule(lambda: VERIFIER.verify(changed, "grant-1", "approve", NOW)) == "bad_signature"
