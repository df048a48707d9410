"""The Provider port's contract, the same tests over every provider on its real server: OpenBao
(vault_token, vault_approle, vault_database with PostgreSQL) and moto (aws_identity_center,
aws_iam_group, aws_sts_session, handed over through OpenBao).

issue -> verify_active -> revoke -> verify_revoked, what clean-up needs to find a grant's
leftovers, idempotent revocation, access removed out of band, a retried issue, bad params and
an unreachable or refusing target. What only one provider does (hand-over contents, TTLs,
policies, AWS polling, PostgreSQL read-back) stays in that provider's own test file.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import boto3
import hvac
import pytest

from jitaccess.dev.seed import role_trust, seed_dev_approle, seed_dev_aws
from jitaccess.dev.servers import free_port
from jitaccess.domain.credentials import IssuedCredential, ProviderGrant
from jitaccess.providers.aws import (
    AwsClients,
    IamGroupMembershipProvider,
    IdentityCenterAssignmentProvider,
    StsRoleSessionProvider,
)
from jitaccess.providers.base import Provider, ProviderError
from jitaccess.providers.vault_approle import VaultAppRoleSecretIdProvider
from jitaccess.providers.vault_database import VaultDatabaseCredentialsProvider
from jitaccess.providers.vault_token import VaultClients, VaultTokenProvider, VaultWrapper

WRAP_TTL = timedelta(minutes=2)
REGION = "us-east-1"
APPROLE = "payments-api"


@dataclass
class Case:
    provider: Provider
    grant: Callable[[], ProviderGrant]  # a fresh grant, of its own principal or target where access is shared
    remove_by_hand: Callable[[IssuedCredential], None]  # what an administrator does out of band
    down: Provider  # the same provider against a target that is not there
    refused: Provider | None = None  # ... against one that refuses its credentials (where the double checks them)
    lists_revoked: bool = False  # list_managed still names revoked grants (STS: their deny documents)


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens here


def vault(openbao, token: str | None = None) -> VaultClients:
    return VaultClients(openbao.address, token or openbao.extra["root_token"], timeout=5)


def grant_of(provider: str, params: dict, principal: str = "alice") -> Callable[[], ProviderGrant]:
    return lambda: ProviderGrant(
        grant_id=f"grant-{uuid.uuid4().hex[:26]}",
        provider=provider,
        params=params,
        principal=principal,
        ttl_seconds=600,
    )


def admin(moto, service: str):
    kw = dict(aws_access_key_id="testing", aws_secret_access_key="testing")
    return boto3.client(service, endpoint_url=moto.address, region_name=REGION, **kw)


def aws_clients(url: str, **timeouts) -> AwsClients:
    return AwsClients(region=REGION, endpoint_url=url, access_key_id="testing", secret_access_key="testing", **timeouts)


def aws_down() -> AwsClients:
    return aws_clients(dead_url(), connect_timeout=1, read_timeout=1, max_attempts=1)


# -- the cases -------------------------------------------------------------------------------------


def vault_token_case(request) -> Case:
    openbao = request.getfixturevalue("openbao")
    root = hvac.Client(url=openbao.address, token=openbao.extra["root_token"])
    return Case(
        provider=VaultTokenProvider(vault(openbao)),
        grant=grant_of("vault_token", {"policies": ["jit-platform-read"]}),
        remove_by_hand=lambda cred: root.auth.token.revoke_accessor(cred.reference),
        down=VaultTokenProvider(VaultClients(dead_url(), "x", timeout=1)),
        refused=VaultTokenProvider(vault(openbao, "not-a-real-token")),
    )


def vault_approle_case(request) -> Case:
    openbao = request.getfixturevalue("openbao")
    assert seed_dev_approle(openbao.address, openbao.extra["root_token"])  # idempotent
    root = hvac.Client(url=openbao.address, token=openbao.extra["root_token"])
    return Case(
        provider=VaultAppRoleSecretIdProvider(vault(openbao)),
        grant=grant_of("vault_approle", {"role_name": APPROLE, "policies": ["jit-payments-read"]}, "deployer"),
        remove_by_hand=lambda cred: root.auth.approle.destroy_secret_id_accessor(APPROLE, cred.reference),
        down=VaultAppRoleSecretIdProvider(VaultClients(dead_url(), "x", timeout=1)),
        refused=VaultAppRoleSecretIdProvider(vault(openbao, "not-a-real-token")),
    )


def vault_database_case(request) -> Case:
    openbao, pg = request.getfixturevalue("openbao"), request.getfixturevalue("vault_postgres")
    root = hvac.Client(url=openbao.address, token=openbao.extra["root_token"])
    return Case(
        provider=VaultDatabaseCredentialsProvider(vault(openbao), mount=pg["mount"], verify_dsn=pg["dsn"]),
        grant=grant_of("vault_database", {"role": pg["role"]}),
        remove_by_hand=lambda cred: root.sys.revoke_lease(cred.reference),
        down=VaultDatabaseCredentialsProvider(VaultClients(dead_url(), "x", timeout=1)),
        refused=VaultDatabaseCredentialsProvider(vault(openbao, "not-a-real-token"), mount=pg["mount"]),
    )


def identity_center_case(request) -> Case:
    moto, seed = request.getfixturevalue("moto"), request.getfixturevalue("aws_seed")
    sso, ids = admin(moto, "sso-admin"), admin(moto, "identitystore")
    params = {"permission_set": seed["permission_set_name"], "account_id": seed["account_id"]}

    def grant() -> ProviderGrant:  # a user of its own: an assignment is shared by the user's grants
        name = f"u-{uuid.uuid4().hex[:10]}"
        store = seed["identity_store_id"]
        ids.create_user(
            IdentityStoreId=store, UserName=name, DisplayName=name, Name={"GivenName": name, "FamilyName": "t"}
        )
        return grant_of("aws_identity_center", params, name)()

    def remove_by_hand(cred: IssuedCredential) -> None:
        d = cred.details
        sso.delete_account_assignment(
            InstanceArn=d["instance_arn"],
            TargetId=d["account_id"],
            TargetType="AWS_ACCOUNT",
            PermissionSetArn=d["permission_set_arn"],
            PrincipalType="USER",
            PrincipalId=d["principal_id"],
        )

    configured = dict(instance_arn=seed["instance_arn"], identity_store_id=seed["identity_store_id"])
    return Case(
        provider=IdentityCenterAssignmentProvider(aws_clients(moto.address), poll_initial=0.01),
        grant=grant,
        remove_by_hand=remove_by_hand,
        down=IdentityCenterAssignmentProvider(aws_down(), **configured),
    )


def iam_group_case(request) -> Case:
    moto, _ = request.getfixturevalue("moto"), request.getfixturevalue("aws_seed")
    iam = admin(moto, "iam")

    def grant() -> ProviderGrant:  # a group of its own: a membership is shared by the user's grants
        group = f"jit-contract-{uuid.uuid4().hex[:8]}"
        iam.create_group(GroupName=group)
        return grant_of("aws_iam_group", {"group": group}, "dave")()

    return Case(
        provider=IamGroupMembershipProvider(aws_clients(moto.address)),
        grant=grant,
        remove_by_hand=lambda c: iam.remove_user_from_group(GroupName=c.details["group"], UserName="dave"),
        down=IamGroupMembershipProvider(aws_down()),
    )


def sts_session_case(request) -> Case:
    moto, openbao = request.getfixturevalue("moto"), request.getfixturevalue("openbao")
    seed = request.getfixturevalue("aws_seed")
    trust = json.dumps(role_trust(seed["account_id"]))
    # revocation documents live on the role: one of its own per test
    role = admin(moto, "iam").create_role(
        RoleName=f"jit-contract-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument=trust
    )
    role = role["Role"]["Arn"]
    clients = aws_clients(moto.address)
    return Case(
        provider=StsRoleSessionProvider(clients, VaultWrapper(vault(openbao))),
        grant=grant_of("aws_sts_session", {"role_arn": role}),
        # an administrator (or a second worker) denies the grant's sessions with the same document
        remove_by_hand=lambda cred: StsRoleSessionProvider(clients, None).revoke(cred) and None,
        down=StsRoleSessionProvider(aws_down(), VaultWrapper(vault(openbao))),
        lists_revoked=True,
    )


CASES = {
    "vault_token": vault_token_case,
    "vault_approle": vault_approle_case,
    "vault_database": vault_database_case,
    "aws_identity_center": identity_center_case,
    "aws_iam_group": iam_group_case,
    "aws_sts_session": sts_session_case,
}


@pytest.fixture(scope="module")
def aws_seed(moto) -> dict[str, str]:
    return seed_dev_aws(moto.address, REGION, ["alice", "bob", "carol", "dave", "erin"])


@pytest.fixture(params=sorted(CASES))
def case(request) -> Case:
    made = CASES[request.param](request)
    assert made.provider.name == request.param
    return made


def findable(provider: Provider, grant: ProviderGrant, cred: IssuedCredential) -> bool:
    """What clean-up after a failed issue relies on: the grant's access is listed by its grant tag,
    or issue() is deterministic and expected_credential names it."""
    if any(m.grant_id == grant.grant_id for m in provider.list_managed(grant.grant_id)):
        return True
    expected = provider.expected_credential(grant)
    return expected is not None and expected.reference == cred.reference


def nothing_left(case: Case, grant: ProviderGrant) -> None:
    left = case.provider.list_managed(grant.grant_id)
    if case.lists_revoked:
        assert all(case.provider.verify_revoked(m)[0] for m in left), left
    else:
        assert left == []


# -- the contract ------------------------------------------------------------------------------------


def test_issue_verify_revoke_verify(case):
    p, grant = case.provider, case.grant()
    cred, handover = p.issue(grant, wrap_ttl=WRAP_TTL)
    assert cred.provider == p.name and cred.grant_id == grant.grant_id and cred.reference
    shared = p.shared_target(grant)
    # identity-based (shared) access hands nothing over; a credential of its own goes over wrapped
    assert (handover is None) if shared else (handover is not None and handover.wrapping_token not in cred.reference)
    assert shared is None or shared == p.shared_target(grant)  # a stable hold key
    ok, seen = p.verify_active(cred)
    assert ok, seen
    assert findable(p, grant, cred)

    assert p.revoke(cred) is True
    gone, seen = p.verify_revoked(cred)
    assert gone, seen
    assert p.verify_active(cred)[0] is False
    nothing_left(case, grant)

    assert p.revoke(cred) is False  # idempotent: already gone
    assert p.verify_revoked(cred)[0] is True


def test_removed_out_of_band_counts_as_already_gone(case):
    p, grant = case.provider, case.grant()
    cred, _ = p.issue(grant, wrap_ttl=WRAP_TTL)
    case.remove_by_hand(cred)
    assert p.verify_active(cred)[0] is False
    assert p.revoke(cred) is False
    gone, seen = p.verify_revoked(cred)
    assert gone, seen
    nothing_left(case, grant)


def test_a_retried_issue_leaves_nothing_of_the_first_attempt(case):
    p, grant = case.provider, case.grant()
    first, _ = p.issue(grant, wrap_ttl=WRAP_TTL)
    second, _ = p.issue(grant, wrap_ttl=WRAP_TTL, first_attempt=False)  # the first reply may have been lost
    assert p.verify_active(second)[0] is True
    p.revoke(second)
    assert p.verify_revoked(first)[0] is True
    assert p.verify_revoked(second)[0] is True
    nothing_left(case, grant)


def test_bad_params_are_not_retryable_and_leave_nothing(case):
    p, grant = case.provider, case.grant()
    bad = grant.model_copy(update={"params": {**grant.params, "unexpected": 1}})
    with pytest.raises(ProviderError, match=r"params\.unexpected") as ei:
        p.issue(bad, wrap_ttl=WRAP_TTL)
    assert ei.value.retryable is False
    assert p.shared_target(bad) is None and p.expected_credential(bad) is None  # nothing to hold or clean up
    assert p.list_managed(bad.grant_id) == []


def test_an_unreachable_target_is_retryable(case):
    p, grant = case.provider, case.grant()
    with pytest.raises(ProviderError, match="unreachable") as ei:
        case.down.issue(grant, wrap_ttl=WRAP_TTL)
    assert ei.value.retryable is True
    cred, _ = p.issue(grant, wrap_ttl=WRAP_TTL)
    try:
        for call in (case.down.verify_active, case.down.verify_revoked, case.down.revoke):
            with pytest.raises(ProviderError) as ei:
                call(cred)
            assert ei.value.retryable is True, call
        try:
            case.down.list_managed()  # identity-based providers list nothing, so they call nothing
        except ProviderError as e:
            assert e.retryable is True
    finally:
        p.revoke(cred)


def test_a_refused_credential_is_not_retryable(case):
    if case.refused is None:
        pytest.skip("moto accepts any AWS credentials")
    with pytest.raises(ProviderError, match="permission denied") as ei:
        case.refused.issue(case.grant(), wrap_ttl=WRAP_TTL)
    assert ei.value.retryable is False
