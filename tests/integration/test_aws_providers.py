"""The AWS providers against a real moto_server (session `moto` fixture, seeded by seed_dev_aws),
and their polling / validation / error logic against a failure-injecting stub of the boto3 client.
What every provider does alike (issue, read-back, revoke, idempotence, out-of-band removal,
retries, bad params, unreachable target) is tests/integration/test_provider_contract.py; this
file keeps what is particular to each AWS target.

What moto does NOT model, and where the stub covers it instead:
- Identity Center: moto completes every account assignment creation and deletion instantly
  (create/delete answer Status SUCCEEDED; the describe_*_status calls always say SUCCEEDED),
  never fails one, does not check that the permission set or the principal exist, and records
  a second identical assignment instead of treating create as idempotent. The IN_PROGRESS ->
  SUCCEEDED polling, FAILED with AWS's FailureReason, the poll bound and throttling are tested
  with `Scripted` clients below.
- STS: moto does not require the role to exist, ignores SourceIdentity and session tags, stores
  but never validates or enforces the session policy, and get_caller_identity answers a default
  identity for keys it does not know. So the provider compares the identity ARN with the
  session's, and the AssumeRole arguments are checked on the call itself (spy).
- IAM: moto validates the shape of the revocation policy document but does not evaluate
  policies: the deny statement is read back, never enforced, here. Nor does it enforce the
  10,240-character inline-policy budget per role.
- moto pre-creates one Identity Center instance per account and region (there is no
  CreateInstance); seed_dev_aws uses it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import hvac
import pytest
from botocore.exceptions import ClientError

from jitaccess.dev.seed import role_trust, seed_dev_aws
from jitaccess.domain.credentials import IssuedCredential, ProviderGrant
from jitaccess.providers.aws import (
    CLOCK_SKEW,
    REVOCATION_POLICY_PREFIX,
    AwsClients,
    IamGroupMembershipProvider,
    IdentityCenterAssignmentProvider,
    StsRoleSessionProvider,
    revocation_policy_name,
    role_session_name,
)
from jitaccess.providers.base import ProviderError
from jitaccess.providers.vault_token import VaultClients, VaultWrapper
from tests.support import Delegating

REGION = "us-east-1"
WRAP_TTL = timedelta(minutes=2)
DEV_USERS = ["alice", "bob", "carol", "dave", "erin"]


# -- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed(moto) -> dict[str, str]:
    first = seed_dev_aws(moto.address, REGION, DEV_USERS)
    assert seed_dev_aws(moto.address, REGION, DEV_USERS) == first  # idempotent (dev up may run it again)
    return first


@pytest.fixture
def clients(moto) -> AwsClients:
    return AwsClients(region=REGION, endpoint_url=moto.address, access_key_id="testing", secret_access_key="testing")


def admin(moto, service: str):
    """A separate boto3 client acting 'by hand' (an administrator, or the test reading AWS back)."""
    return boto3.client(
        service,
        endpoint_url=moto.address,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def gid() -> str:
    return f"grant-{uuid.uuid4()}"


def pgrant(
    provider: str, params: dict, principal: str = "alice", ttl: int = 600, grant_id: str | None = None
) -> ProviderGrant:
    return ProviderGrant(
        grant_id=grant_id or gid(), provider=provider, params=params, principal=principal, ttl_seconds=ttl
    )


def client_error(code: str, message: str = "", status: int = 400, op: str = "Operation") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, op
    )


class Scripted(Delegating):
    """A boto3 client whose named methods follow a script before passing through to the real one.
    A step is a response dict, an exception to raise, or a callable (real_method, **kwargs) -> response.
    Every call of a scripted method is recorded in `calls`."""

    def __init__(self, real, **scripts) -> None:
        super().__init__(real)
        self._scripts = {name: list(steps) for name, steps in scripts.items()}
        self.calls: list[tuple[str, dict]] = []

    def __getattr__(self, name):
        real = super().__getattr__(name)
        if name.startswith("_") or name not in self._scripts:
            return real

        def call(**kwargs):
            self.calls.append((name, kwargs))
            steps = self._scripts[name]
            if not steps:
                return real(**kwargs)
            step = steps.pop(0)
            if isinstance(step, BaseException):
                raise step
            return step(real, **kwargs) if callable(step) else step

        return call


class StubClients:
    """AwsClients with some services replaced by Scripted clients."""

    def __init__(self, real: AwsClients, **services) -> None:
        self._real, self._services = real, services
        self.region, self.endpoint_url = real.region, real.endpoint_url
        self.keyed: list = []

    def client(self, service: str):
        return self._services.get(service) or self._real.client(service)

    def client_with_keys(self, service: str, *keys):
        c = self._services.get(f"{service}:keys") or self._real.client_with_keys(service, *keys)
        self.keyed.append(service)
        return c


class RecordingSleep:
    def __init__(self) -> None:
        self.slept: list[float] = []

    def __call__(self, s: float) -> None:
        self.slept.append(s)


def status(state: str, request_id: str = "req-1", reason: str | None = None) -> dict:
    s = {"Status": state, "RequestId": request_id}
    if reason:
        s["FailureReason"] = reason
    return s


# -- seed_dev_aws --------------------------------------------------------------------------------


def test_seed_dev_aws(moto, seed):
    assert set(seed) == {
        "account_id",
        "region",
        "endpoint",
        "instance_arn",
        "identity_store_id",
        "permission_set_name",
        "permission_set_arn",
        "iam_group",
        "role_arn",
    }
    sso, ids, iam = admin(moto, "sso-admin"), admin(moto, "identitystore"), admin(moto, "iam")
    # moto pre-creates the instance (seed_dev_aws did not create it): it is the only one
    assert [i["InstanceArn"] for i in sso.list_instances()["Instances"]] == [seed["instance_arn"]]
    ps = sso.describe_permission_set(InstanceArn=seed["instance_arn"], PermissionSetArn=seed["permission_set_arn"])
    assert ps["PermissionSet"]["Name"] == "PlatformReadOnly"
    assert [
        p["Name"]
        for p in sso.list_managed_policies_in_permission_set(
            InstanceArn=seed["instance_arn"], PermissionSetArn=seed["permission_set_arn"]
        )["AttachedManagedPolicies"]
    ] == ["ReadOnlyAccess"]
    for user in DEV_USERS:
        ids.get_user_id(
            IdentityStoreId=seed["identity_store_id"],
            AlternateIdentifier={"UniqueAttribute": {"AttributePath": "userName", "AttributeValue": user}},
        )
        iam.get_user(UserName=user)
    assert iam.get_group(GroupName="platform-oncall")["Group"]["GroupName"] == seed["iam_group"]
    role = iam.get_role(RoleName="jit-platform-deploy")["Role"]
    assert role["Arn"] == seed["role_arn"] and role["MaxSessionDuration"] == 3600
    actions = role["AssumeRolePolicyDocument"]["Statement"][0]["Action"]
    assert {"sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"} <= set(actions)
    assert seed["account_id"] == "123456789012"


# -- IAM Identity Center ------------------------------------------------------------------------


@pytest.fixture
def idc(clients, seed) -> IdentityCenterAssignmentProvider:
    return IdentityCenterAssignmentProvider(clients, poll_initial=0.01)


def new_sso_user(moto, seed) -> tuple[str, str]:
    """A fresh Identity Store user (so tests never share an assignment)."""
    name = f"u-{uuid.uuid4().hex[:10]}"
    uid = admin(moto, "identitystore").create_user(
        IdentityStoreId=seed["identity_store_id"],
        UserName=name,
        DisplayName=name,
        Name={"GivenName": name, "FamilyName": "t"},
    )["UserId"]
    return name, uid


def assignments(moto, seed, user_id: str) -> list[dict]:
    found = admin(moto, "sso-admin").list_account_assignments(
        InstanceArn=seed["instance_arn"], AccountId=seed["account_id"], PermissionSetArn=seed["permission_set_arn"]
    )["AccountAssignments"]
    return [a for a in found if a["PrincipalId"] == user_id]


def idc_grant(seed, user: str, permission_set: str = "PlatformReadOnly") -> ProviderGrant:
    return pgrant(
        "aws_identity_center", {"permission_set": permission_set, "account_id": seed["account_id"]}, principal=user
    )


def test_identity_center_assignment_for_the_requesters_sso_user(moto, seed, idc):
    user, uid = new_sso_user(moto, seed)
    grant = idc_grant(seed, user)
    cred, handover = idc.issue(grant, wrap_ttl=WRAP_TTL)
    assert handover is None  # nothing secret: the requester signs in with their existing SSO
    assert cred.provider == "aws_identity_center" and cred.grant_id == grant.grant_id
    d = cred.details
    assert (d["instance_arn"], d["account_id"], d["permission_set_arn"], d["permission_set_name"]) == (
        seed["instance_arn"],
        seed["account_id"],
        seed["permission_set_arn"],
        "PlatformReadOnly",
    )
    assert (d["principal_type"], d["principal_id"], d["user_name"]) == ("USER", uid, user)
    assert d["creation_request_id"]
    assert cred.reference == f"{seed['instance_arn']}#{seed['account_id']}#{seed['permission_set_arn']}#USER:{uid}"
    assert assignments(moto, seed, uid) == [
        {
            "AccountId": seed["account_id"],
            "PermissionSetArn": seed["permission_set_arn"],
            "PrincipalType": "USER",
            "PrincipalId": uid,
        }
    ]

    # deterministic: the hold key and the clean-up reference are known before issuing
    assert idc.shared_target(grant) == f"aws_identity_center:{cred.reference}"
    assert idc.expected_credential(grant).reference == cred.reference
    assert idc.list_managed() == [] and idc.list_managed(grant.grant_id) == []

    ok, seen = idc.verify_active(cred)
    assert ok and "assignment present" in seen and user in seen

    assert idc.revoke(cred) is True
    assert "no assignment" in idc.verify_revoked(cred)[1]
    assert assignments(moto, seed, uid) == []


def test_identity_center_permission_set_by_arn_is_the_same_access(moto, seed, idc):
    user, _ = new_sso_user(moto, seed)
    by_name, by_arn = idc_grant(seed, user), idc_grant(seed, user, seed["permission_set_arn"])
    assert idc.shared_target(by_name) == idc.shared_target(by_arn)
    other, _ = new_sso_user(moto, seed)
    assert idc.shared_target(idc_grant(seed, other)) != idc.shared_target(by_name)


def test_identity_center_issue_twice_leaves_one_assignment(moto, seed, idc):
    # moto (unlike AWS) records a second identical assignment on a second create: the provider
    # reads first, so a retried issue or an overlapping grant never creates a duplicate
    user, uid = new_sso_user(moto, seed)
    a, b = idc_grant(seed, user), idc_grant(seed, user)
    first, _ = idc.issue(a, wrap_ttl=WRAP_TTL)
    again, _ = idc.issue(a, wrap_ttl=WRAP_TTL, first_attempt=False)
    other, _ = idc.issue(b, wrap_ttl=WRAP_TTL)
    assert first.reference == again.reference == other.reference
    assert again.details["already_assigned"] is True and other.details["already_assigned"] is True
    assert len(assignments(moto, seed, uid)) == 1
    assert idc.revoke(first) is True and idc.revoke(other) is False
    assert assignments(moto, seed, uid) == []


def test_identity_center_configured_instance(moto, seed, clients):
    p = IdentityCenterAssignmentProvider(
        clients, instance_arn=seed["instance_arn"], identity_store_id=seed["identity_store_id"]
    )
    user, _ = new_sso_user(moto, seed)
    cred, _ = p.issue(idc_grant(seed, user), wrap_ttl=WRAP_TTL)
    assert p.verify_active(cred)[0] and p.revoke(cred)
    wrong = IdentityCenterAssignmentProvider(clients, instance_arn="arn:aws:sso:::instance/ssoins-nope")
    with pytest.raises(ProviderError, match="ssoins-nope") as ei:
        wrong.issue(idc_grant(seed, user), wrap_ttl=WRAP_TTL)
    assert ei.value.retryable is False


@pytest.mark.parametrize(
    "params, principal, match",
    [
        (
            {"permission_set": "PlatformReadOnly", "account_id": "123456789012"},
            "nobody-here",
            "no Identity Store user named 'nobody-here'",
        ),
        ({"permission_set": "NoSuchSet", "account_id": "123456789012"}, "alice", "no permission set named 'NoSuchSet'"),
    ],
    ids=["unknown-user", "unknown-permission-set"],
)
def test_identity_center_bad_input_not_retryable(seed, idc, params, principal, match):
    grant = pgrant("aws_identity_center", params, principal=principal)
    with pytest.raises(ProviderError, match=match) as ei:
        idc.issue(grant, wrap_ttl=WRAP_TTL)
    assert ei.value.retryable is False
    # nothing can have been created: no hold, nothing to clean up
    assert idc.shared_target(grant) is None and idc.expected_credential(grant) is None


# Identity Center polling: moto completes assignments instantly, so the stub plays AWS's
# asynchronous statuses over the real moto client (the assignment itself is really created).


def in_progress(real, **kw):
    resp = real(**kw)
    key = (
        "AccountAssignmentCreationStatus"
        if "AccountAssignmentCreationStatus" in resp
        else "AccountAssignmentDeletionStatus"
    )
    return {key: {**resp[key], "Status": "IN_PROGRESS"}}


def test_identity_center_polls_creation_until_succeeded(moto, seed, clients):
    user, uid = new_sso_user(moto, seed)
    sso = Scripted(
        clients.client("sso-admin"),
        create_account_assignment=[in_progress],
        describe_account_assignment_creation_status=[
            {"AccountAssignmentCreationStatus": status("IN_PROGRESS")},
            {"AccountAssignmentCreationStatus": status("IN_PROGRESS")},
            # then the real answer (SUCCEEDED)
        ],
    )
    sleep = RecordingSleep()
    p = IdentityCenterAssignmentProvider(
        StubClients(clients, **{"sso-admin": sso}), poll_initial=0.5, poll_max=4, sleep=sleep
    )
    cred, _ = p.issue(idc_grant(seed, user), wrap_ttl=WRAP_TTL)
    polls = [c for c in sso.calls if c[0] == "describe_account_assignment_creation_status"]
    assert len(polls) == 3
    assert polls[0][1]["AccountAssignmentCreationRequestId"] == cred.details["creation_request_id"]
    assert sleep.slept == [0.5, 1.0, 2.0]  # capped exponential backoff between polls
    assert p.verify_active(cred)[0] and assignments(moto, seed, uid)
    p.revoke(cred)


def test_identity_center_creation_failed_is_final_with_aws_reason(moto, seed, clients):
    user, uid = new_sso_user(moto, seed)
    reason = "Received a 404 status error: Not supported policy arn:aws:iam::aws:policy/Nope"
    sso = Scripted(
        clients.client("sso-admin"),
        create_account_assignment=[{"AccountAssignmentCreationStatus": status("IN_PROGRESS", "req-f")}],
        describe_account_assignment_creation_status=[
            {"AccountAssignmentCreationStatus": status("IN_PROGRESS", "req-f")},
            {"AccountAssignmentCreationStatus": status("FAILED", "req-f", reason)},
        ],
    )
    p = IdentityCenterAssignmentProvider(StubClients(clients, **{"sso-admin": sso}), sleep=RecordingSleep())
    with pytest.raises(ProviderError) as ei:
        p.issue(idc_grant(seed, user), wrap_ttl=WRAP_TTL)
    assert ei.value.retryable is False
    assert reason in str(ei.value) and "req-f" in str(ei.value) and "FAILED" in str(ei.value)
    assert assignments(moto, seed, uid) == []


def test_identity_center_still_in_progress_at_the_bound_is_retryable(moto, seed, clients):
    user, _ = new_sso_user(moto, seed)
    sso = Scripted(
        clients.client("sso-admin"),
        create_account_assignment=[{"AccountAssignmentCreationStatus": status("IN_PROGRESS", "req-slow")}],
        describe_account_assignment_creation_status=[
            {"AccountAssignmentCreationStatus": status("IN_PROGRESS", "req-slow")}
        ]
        * 50,
    )
    sleep = RecordingSleep()
    p = IdentityCenterAssignmentProvider(
        StubClients(clients, **{"sso-admin": sso}), poll_timeout=10, poll_initial=0.5, poll_max=4, sleep=sleep
    )
    with pytest.raises(ProviderError, match="still IN_PROGRESS .*req-slow.*will retry") as ei:
        p.issue(idc_grant(seed, user), wrap_ttl=WRAP_TTL)
    assert ei.value.retryable is True
    assert sleep.slept == [0.5, 1.0, 2.0, 4.0] and sum(sleep.slept) <= 10  # bounded


def test_identity_center_polls_deletion(moto, seed, clients, idc):
    user, uid = new_sso_user(moto, seed)
    cred, _ = idc.issue(idc_grant(seed, user), wrap_ttl=WRAP_TTL)
    sso = Scripted(
        clients.client("sso-admin"),
        delete_account_assignment=[in_progress],
        describe_account_assignment_deletion_status=[{"AccountAssignmentDeletionStatus": status("IN_PROGRESS")}],
    )
    sleep = RecordingSleep()
    p = IdentityCenterAssignmentProvider(StubClients(clients, **{"sso-admin": sso}), sleep=sleep)
    assert p.revoke(cred) is True
    assert [c[0] for c in sso.calls].count("describe_account_assignment_deletion_status") == 2
    assert len(sleep.slept) == 2
    assert p.verify_revoked(cred)[0] and assignments(moto, seed, uid) == []


def test_identity_center_deletion_failed_is_reported(moto, seed, clients, idc):
    user, uid = new_sso_user(moto, seed)
    cred, _ = idc.issue(idc_grant(seed, user), wrap_ttl=WRAP_TTL)
    sso = Scripted(
        clients.client("sso-admin"),
        delete_account_assignment=[{"AccountAssignmentDeletionStatus": status("FAILED", "req-d", "Internal failure")}],
    )
    p = IdentityCenterAssignmentProvider(StubClients(clients, **{"sso-admin": sso}), sleep=RecordingSleep())
    with pytest.raises(ProviderError, match="deletion FAILED .*Internal failure"):
        p.revoke(cred)
    assert p.verify_revoked(cred)[0] is False  # still there: the workflow keeps retrying revocation
    assert idc.revoke(cred) is True


@pytest.mark.parametrize(
    "error, retryable",
    [
        (client_error("ThrottlingException", "Rate exceeded"), True),
        (client_error("InternalServerException", "oops", status=500), True),
        (client_error("ConflictException", "An account assignment operation is already in progress"), True),
        (client_error("AccessDeniedException", "User is not authorized"), False),
        (client_error("ValidationException", "bad principal"), False),
    ],
    ids=lambda v: v.response["Error"]["Code"] if isinstance(v, ClientError) else str(v),
)
def test_identity_center_error_translation(moto, seed, clients, error, retryable):
    user, _ = new_sso_user(moto, seed)
    sso = Scripted(clients.client("sso-admin"), create_account_assignment=[error])
    p = IdentityCenterAssignmentProvider(StubClients(clients, **{"sso-admin": sso}), sleep=RecordingSleep())
    with pytest.raises(ProviderError) as ei:
        p.issue(idc_grant(seed, user), wrap_ttl=WRAP_TTL)
    assert ei.value.retryable is retryable
    assert error.response["Error"]["Code"] in str(ei.value)


def test_identity_center_throttled_lookup_propagates_from_shared_target(moto, seed, clients):
    # AWS down while computing the hold key must be retried, not mistaken for "nothing to hold"
    user, _ = new_sso_user(moto, seed)
    ids = Scripted(clients.client("identitystore"), get_user_id=[client_error("ThrottlingException", "slow down")])
    p = IdentityCenterAssignmentProvider(StubClients(clients, identitystore=ids))
    with pytest.raises(ProviderError) as ei:
        p.shared_target(idc_grant(seed, user))
    assert ei.value.retryable is True


# -- IAM group membership -----------------------------------------------------------------------


@pytest.fixture
def iam_group(moto, seed) -> str:
    name = f"jit-test-{uuid.uuid4().hex[:8]}"
    admin(moto, "iam").create_group(GroupName=name)
    return name


@pytest.fixture
def grp(clients, seed) -> IamGroupMembershipProvider:
    return IamGroupMembershipProvider(clients)


def groups_of(moto, user: str) -> list[str]:
    return [g["GroupName"] for g in admin(moto, "iam").list_groups_for_user(UserName=user)["Groups"]]


def test_iam_group_membership_of_the_requesters_iam_user(moto, seed, grp, iam_group):
    grant = pgrant("aws_iam_group", {"group": iam_group}, principal="dave")
    cred, handover = grp.issue(grant, wrap_ttl=WRAP_TTL)
    assert handover is None
    assert cred.reference == f"{seed['account_id']}:group/{iam_group}:member/dave"
    assert cred.details == {
        "kind": "iam group membership",
        "account_id": seed["account_id"],
        "group": iam_group,
        "user_name": "dave",
    }
    assert iam_group in groups_of(moto, "dave")
    assert grp.shared_target(grant) == f"aws_iam_group:{cred.reference}"
    assert grp.expected_credential(grant) == cred
    assert grp.list_managed() == []

    ok, seen = grp.verify_active(cred)
    assert ok and f"member of {iam_group}" in seen

    # issuing again (retry / overlapping grant) is a no-op at AWS
    again, _ = grp.issue(grant, wrap_ttl=WRAP_TTL, first_attempt=False)
    assert again.reference == cred.reference and groups_of(moto, "dave").count(iam_group) == 1

    assert grp.revoke(cred) is True
    assert f"not a member of {iam_group}" in grp.verify_revoked(cred)[1]
    assert iam_group not in groups_of(moto, "dave")
    assert grp.revoke(cred) is False  # not a member any more: IAM's NoSuchEntity reads as already gone


def test_iam_group_user_deleted_by_hand(moto, seed, grp, iam_group):
    user = f"u-{uuid.uuid4().hex[:8]}"
    iam = admin(moto, "iam")
    iam.create_user(UserName=user)
    cred, _ = grp.issue(pgrant("aws_iam_group", {"group": iam_group}, principal=user), wrap_ttl=WRAP_TTL)
    iam.remove_user_from_group(GroupName=iam_group, UserName=user)
    iam.delete_user(UserName=user)
    assert grp.revoke(cred) is False
    gone, seen = grp.verify_revoked(cred)
    assert gone and "no such user" in seen


def test_iam_group_keys_differ_by_group_and_user(seed, grp, iam_group):
    a = grp.shared_target(pgrant("aws_iam_group", {"group": iam_group}, principal="alice"))
    assert a == grp.shared_target(pgrant("aws_iam_group", {"group": iam_group}, principal="alice"))
    assert a != grp.shared_target(pgrant("aws_iam_group", {"group": iam_group}, principal="dave"))
    assert a != grp.shared_target(pgrant("aws_iam_group", {"group": "platform-oncall"}, principal="alice"))


@pytest.mark.parametrize(
    "params, principal, match",
    [
        ({"group": "no-such-group"}, "alice", "Group no-such-group not found"),
        ({"group": "platform-oncall"}, "nobody-here", "nobody-here"),
    ],
    ids=["unknown-group", "unknown-user"],
)
def test_iam_group_bad_input_not_retryable(seed, grp, params, principal, match):
    grant = pgrant("aws_iam_group", params, principal=principal)
    with pytest.raises(ProviderError, match=match) as ei:
        grp.issue(grant, wrap_ttl=WRAP_TTL)
    assert ei.value.retryable is False


def test_iam_group_throttled_is_retryable(seed, clients, iam_group):
    iam = Scripted(
        clients.client("iam"),
        add_user_to_group=[client_error("Throttling", "Rate exceeded")],
        remove_user_from_group=[client_error("ServiceFailure", "try later", status=500)],
    )
    p = IamGroupMembershipProvider(StubClients(clients, iam=iam))
    grant = pgrant("aws_iam_group", {"group": iam_group}, principal="dave")
    with pytest.raises(ProviderError, match="Throttling") as ei:
        p.issue(grant, wrap_ttl=WRAP_TTL)
    assert ei.value.retryable is True
    cred, _ = p.issue(grant, wrap_ttl=WRAP_TTL)
    with pytest.raises(ProviderError, match="ServiceFailure") as ei:
        p.revoke(cred)
    assert ei.value.retryable is True
    assert p.revoke(cred) is True and p.verify_revoked(cred)[0]


# -- STS role session -----------------------------------------------------------------------------


@pytest.fixture
def wrapper(openbao) -> VaultWrapper:
    return VaultWrapper(VaultClients(openbao.address, openbao.extra["root_token"], timeout=5))


@pytest.fixture
def role(moto, seed) -> str:
    """A role of its own per test (revocation documents live on the role)."""
    name = f"jit-test-{uuid.uuid4().hex[:8]}"
    trust = json.dumps(role_trust(seed["account_id"]))
    created = admin(moto, "iam").create_role(RoleName=name, AssumeRolePolicyDocument=trust, MaxSessionDuration=3600)
    return created["Role"]["Arn"]


class Clock:
    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sts(clients, wrapper, clock) -> StsRoleSessionProvider:
    return StsRoleSessionProvider(clients, wrapper, now=clock)


SESSION_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
}


def sts_grant(role_arn: str, ttl: int = 1800, **params) -> ProviderGrant:
    return pgrant("aws_sts_session", {"role_arn": role_arn, **params}, principal="alice", ttl=ttl)


def unwrap(openbao, token: str) -> dict:
    """As the requester: a client holding only the wrapping token."""
    return hvac.Client(url=openbao.address, token=token).sys.unwrap()["data"]


def revocation_doc(moto, role_arn: str, grant_id: str) -> dict:
    return admin(moto, "iam").get_role_policy(
        RoleName=role_arn.split("/")[-1], PolicyName=revocation_policy_name(grant_id)
    )["PolicyDocument"]


def test_sts_session_keys_wrapped_and_revoked_by_a_deny_on_the_role(moto, openbao, seed, sts, role):
    grant = sts_grant(role, ttl=1800, session_policy=SESSION_POLICY)
    before = datetime.now(UTC)
    cred, handover = sts.issue(grant, wrap_ttl=WRAP_TTL)
    after = datetime.now(UTC)

    session = role_session_name(grant.grant_id)
    assert cred.reference == f"arn:aws:sts::{seed['account_id']}:assumed-role/{role.split('/')[-1]}/{session}"
    d = cred.details
    assert d["duration_seconds"] == 1800 and d["source_identity"] == "alice"
    assert d["session_tags"] == {"grant_id": grant.grant_id} and d["session_policy"] == SESSION_POLICY
    assert d["verified_caller"] == cred.reference
    # the residual window is the STS expiration itself
    assert before + timedelta(seconds=1799) <= cred.expires_at <= after + timedelta(seconds=1801)
    assert sts.expected_credential(grant).reference == cred.reference  # deterministic session ARN
    assert sts.shared_target(grant) is None  # a session of its own per grant

    # the keys are secrets: only in the wrapped hand-over, which unwraps once into working keys
    keys = unwrap(openbao, handover.wrapping_token)
    for secret in (keys["aws_access_key_id"], keys["aws_secret_access_key"], keys["aws_session_token"]):
        assert secret not in cred.model_dump_json() and secret not in repr(handover)
    assert keys["assumed_role_arn"] == cred.reference and keys["region"] == REGION
    assert keys["expiration"] == cred.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    with pytest.raises(hvac.exceptions.VaultError):
        unwrap(openbao, handover.wrapping_token)
    as_requester = boto3.client(
        "sts",
        endpoint_url=moto.address,
        region_name=keys["region"],
        aws_access_key_id=keys["aws_access_key_id"],
        aws_secret_access_key=keys["aws_secret_access_key"],
        aws_session_token=keys["aws_session_token"],
    )
    assert as_requester.get_caller_identity()["Arn"] == cred.reference

    ok, seen = sts.verify_active(cred)
    assert ok and "no revocation deny" in seen

    # revoke: an inline deny on the role for this grant's sessions, read back
    assert sts.revoke(cred) is True
    doc = revocation_doc(moto, role, grant.grant_id)
    [st] = doc["Statement"]
    assert st["Effect"] == "Deny" and st["Action"] == "*" and st["Resource"] == "*"
    assert st["Condition"]["StringEquals"] == {"aws:PrincipalTag/grant_id": grant.grant_id}
    cutoff = datetime.fromisoformat(st["Condition"]["DateLessThan"]["aws:TokenIssueTime"].replace("Z", "+00:00"))
    until = datetime.fromisoformat(st["Condition"]["DateLessThan"]["aws:CurrentTime"].replace("Z", "+00:00"))
    assert datetime.fromisoformat(d["issued_at"].replace("Z", "+00:00")) < cutoff <= datetime.now(UTC) + CLOCK_SKEW
    assert until >= cred.expires_at
    gone, seen = sts.verify_revoked(cred)
    assert gone and revocation_policy_name(grant.grant_id) in seen
    assert cred.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ") in seen  # the residual window, in the evidence
    # (moto does not evaluate IAM policies: on AWS the deny now refuses every call with these keys)
    assert [m.reference for m in sts.list_managed(grant.grant_id)] == [cred.reference]  # the deny names it


def test_extend(seed, idc, grp, sts, role, moto, iam_group):
    # identity-based access has no provider-side TTL (the grant's timer ends it); an STS
    # session's expiration is fixed at AssumeRole
    user, _ = new_sso_user(moto, seed)
    a, _ = idc.issue(idc_grant(seed, user), wrap_ttl=WRAP_TTL)
    assert idc.extend(a, 7200) == a
    g, _ = grp.issue(pgrant("aws_iam_group", {"group": iam_group}, principal="dave"), wrap_ttl=WRAP_TTL)
    assert grp.extend(g, 7200) == g
    s, _ = sts.issue(sts_grant(role), wrap_ttl=WRAP_TTL)
    with pytest.raises(ProviderError, match="cannot be extended") as ei:
        sts.extend(s, 7200)
    assert ei.value.retryable is False
    idc.revoke(a), grp.revoke(g)


def test_sts_keys_are_never_logged(openbao, sts, role, caplog):
    caplog.set_level(logging.DEBUG)  # everything, root level DEBUG
    cred, handover = sts.issue(sts_grant(role), wrap_ttl=WRAP_TTL)
    sts.verify_active(cred)
    keys = unwrap(openbao, handover.wrapping_token)
    assert caplog.records  # urllib3/hvac did log at DEBUG...
    logged = caplog.text + "".join(repr(r.__dict__) for r in caplog.records)
    for secret in (keys["aws_secret_access_key"], keys["aws_session_token"]):
        assert secret not in logged  # ...but botocore's response bodies and signed headers did not


@pytest.mark.parametrize(
    "ttl, max_session, expected",
    [(60, 3600, 900), (600, 3600, 900), (1800, 3600, 1800), (7200, 3600, 3600), (7200, 1200, 1200)],
)
def test_sts_duration(role, sts, ttl, max_session, expected):
    grant = sts_grant(role, ttl=ttl, max_session_seconds=max_session)
    cred, _ = sts.issue(grant, wrap_ttl=WRAP_TTL)
    assert cred.details["duration_seconds"] == expected
    issued = datetime.fromisoformat(cred.details["issued_at"].replace("Z", "+00:00"))
    assert abs((cred.expires_at - issued).total_seconds() - expected) < 1
    # a grant shorter than STS's 900 s minimum: the residual window outlives the grant, and says so
    assert cred.expires_at >= datetime.now(UTC) + timedelta(seconds=expected - 30)


def test_sts_duration_counts_to_the_grant_expiry_and_records_the_residual_window(role, sts):
    fixed = datetime.now(UTC) - timedelta(seconds=30)  # the workflow fixed the window 30 s before the call
    long = sts_grant(role, ttl=1800).model_copy(
        update={"issued_at": fixed, "expires_at": fixed + timedelta(seconds=1800)}
    )
    cred, _ = sts.issue(long, wrap_ttl=WRAP_TTL)
    assert 1700 <= cred.details["duration_seconds"] <= 1770  # counted to the fixed expiry, not 1800 s from now
    assert cred.expires_at <= long.expires_at and cred.details["residual_seconds"] == 0
    short = sts_grant(role, ttl=120).model_copy(
        update={"issued_at": fixed, "expires_at": fixed + timedelta(seconds=120)}
    )
    cred, _ = sts.issue(short, wrap_ttl=WRAP_TTL)
    assert cred.details["duration_seconds"] == 900  # STS's minimum forces a later end: recorded
    residual = (cred.expires_at - short.expires_at).total_seconds()
    assert cred.details["residual_seconds"] >= residual > 900 - 120


def test_sts_duration_capped_by_the_role(moto, sts, seed):
    name = f"jit-short-{uuid.uuid4().hex[:6]}"
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    arn = admin(moto, "iam").create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps(trust), MaxSessionDuration=3600
    )["Role"]["Arn"]
    assert StsRoleSessionProvider.duration_seconds(7200, 43200, 3600) == 3600
    cred, _ = sts.issue(sts_grant(arn, ttl=7200, max_session_seconds=43200), wrap_ttl=WRAP_TTL)
    assert cred.details["duration_seconds"] == 3600


def test_sts_session_never_outlives_the_grant_when_the_calls_before_it_are_slow(clients, wrapper, role):
    # CI's red run: the duration was counted before the role lookup, and STS counts it from its
    # own answer, so a slow machine ended the session after the grant (by 185 ms there)
    def slow(seconds):
        def step(real, **kwargs):
            time.sleep(seconds)
            return real(**kwargs)

        return step

    iam = Scripted(clients.client("iam"), get_role=[slow(0.9)])
    sts = Scripted(clients.client("sts"), assume_role=[slow(0.3)])
    p = StsRoleSessionProvider(StubClients(clients, iam=iam, sts=sts), wrapper)
    fixed = datetime.now(UTC)
    grant = sts_grant(role, ttl=1800).model_copy(
        update={"issued_at": fixed, "expires_at": fixed + timedelta(seconds=1800)}
    )
    cred, _ = p.issue(grant, wrap_ttl=WRAP_TTL)
    assert cred.expires_at is not None and cred.expires_at <= grant.expires_at
    assert cred.details["residual_seconds"] == 0


def test_sts_assume_role_arguments(clients, wrapper, role):
    # moto ignores SourceIdentity, session tags and the session policy: check what is sent
    spy = Scripted(clients.client("sts"), assume_role=[])
    p = StsRoleSessionProvider(StubClients(clients, sts=spy), wrapper)
    grant = sts_grant(role, ttl=1200, session_policy=SESSION_POLICY)
    p.issue(grant, wrap_ttl=WRAP_TTL)
    [(_, kw)] = spy.calls
    assert kw["RoleArn"] == role and kw["DurationSeconds"] == 1200
    assert kw["RoleSessionName"] == role_session_name(grant.grant_id) and len(kw["RoleSessionName"]) <= 64
    assert kw["SourceIdentity"] == "alice"
    assert kw["Tags"] == [{"Key": "grant_id", "Value": grant.grant_id}] and kw["TransitiveTagKeys"] == ["grant_id"]
    assert json.loads(kw["Policy"]) == SESSION_POLICY
    p.issue(sts_grant(role), wrap_ttl=WRAP_TTL)
    assert "Policy" not in spy.calls[-1][1]


def test_role_session_name():
    assert role_session_name("grant-0f8e") == "grant-0f8e"
    long = "grant-" + "x" * 100
    name = role_session_name(long)
    assert len(name) == 64 and name != role_session_name(long + "y")
    assert role_session_name("grant/with spaces:and*stars") == "grant-with-spaces-and-stars"
    assert len(revocation_policy_name("g" * 300)) <= 128
    assert revocation_policy_name("grant-1").startswith(REVOCATION_POLICY_PREFIX)


class SpyWrapper:
    def __init__(self) -> None:
        self.wrapped: list[dict] = []

    def wrap(self, payload, ttl):
        self.wrapped.append(payload)
        raise AssertionError("must not be called")


def test_sts_keys_that_do_not_authenticate_are_never_handed_over(clients, role):
    # moto answers a default identity for unknown keys: the provider compares the ARN
    impostor = Scripted(clients.client("sts"), get_caller_identity=[{"Arn": "arn:aws:sts::123456789012:user/moto"}])
    wrap = SpyWrapper()
    p = StsRoleSessionProvider(StubClients(clients, **{"sts:keys": impostor}), wrap)
    with pytest.raises(ProviderError, match="authenticate as .*user/moto") as ei:
        p.issue(sts_grant(role), wrap_ttl=WRAP_TTL)
    assert ei.value.retryable is True and wrap.wrapped == []

    rejected = Scripted(
        clients.client("sts"), get_caller_identity=[client_error("InvalidClientTokenId", "invalid token", 403)]
    )
    p = StsRoleSessionProvider(StubClients(clients, **{"sts:keys": rejected}), wrap)
    with pytest.raises(ProviderError, match="InvalidClientTokenId"):
        p.issue(sts_grant(role), wrap_ttl=WRAP_TTL)
    assert wrap.wrapped == []


@pytest.mark.parametrize(
    "error, retryable",
    [
        (client_error("Throttling", "Rate exceeded"), True),
        (client_error("AccessDenied", "not authorized to perform sts:AssumeRole"), False),
        (client_error("PackedPolicyTooLarge", "Packed size 104% of limit"), False),
        (client_error("ValidationError", "DurationSeconds exceeds the MaxSessionDuration"), False),
        (client_error("RegionDisabledException", "STS is not activated"), False),
    ],
    ids=lambda v: v.response["Error"]["Code"] if isinstance(v, ClientError) else str(v),
)
def test_sts_assume_role_errors(clients, wrapper, role, error, retryable):
    p = StsRoleSessionProvider(StubClients(clients, sts=Scripted(clients.client("sts"), assume_role=[error])), wrapper)
    with pytest.raises(ProviderError) as ei:
        p.issue(sts_grant(role), wrap_ttl=WRAP_TTL)
    assert ei.value.retryable is retryable


def test_sts_role_that_does_not_exist_is_not_retryable(seed, sts):
    # moto would assume it (it does not check that the role exists): the provider reads the role first
    grant = pgrant("aws_sts_session", {"role_arn": "arn:aws:iam::123456789012:role/does-not-exist"})
    with pytest.raises(ProviderError, match="does not exist") as ei:
        sts.issue(grant, wrap_ttl=WRAP_TTL)
    assert ei.value.retryable is False


def test_sts_needs_a_wrapper(clients, role):
    with pytest.raises(ProviderError, match="response-wrap") as ei:
        StsRoleSessionProvider(clients, None).issue(sts_grant(role), wrap_ttl=WRAP_TTL)
    assert ei.value.retryable is False


def test_sts_revoke_after_expiry_is_already_gone(sts, role, clock):
    cred, _ = sts.issue(sts_grant(role, ttl=900), wrap_ttl=WRAP_TTL)
    clock.offset = timedelta(seconds=900) + CLOCK_SKEW + timedelta(seconds=5)
    assert sts.verify_active(cred)[0] is False
    assert sts.revoke(cred) is False
    gone, seen = sts.verify_revoked(cred)
    assert gone and "expired on its own" in seen


def test_sts_role_deleted_by_hand(moto, sts, role):
    cred, _ = sts.issue(sts_grant(role), wrap_ttl=WRAP_TTL)
    iam = admin(moto, "iam")
    for p in iam.list_attached_role_policies(RoleName=role.split("/")[-1])["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=role.split("/")[-1], PolicyArn=p["PolicyArn"])
    iam.delete_role(RoleName=role.split("/")[-1])
    assert sts.revoke(cred) is False
    gone, seen = sts.verify_revoked(cred)
    assert gone and "no longer exists" in seen


def test_sts_revocation_documents_are_pruned_when_their_sessions_expired(moto, sts, role, clock):
    short, _ = sts.issue(sts_grant(role, ttl=900), wrap_ttl=WRAP_TTL)
    long, _ = sts.issue(sts_grant(role, ttl=3600), wrap_ttl=WRAP_TTL)
    assert sts.revoke(short) is True
    names = admin(moto, "iam").list_role_policies(RoleName=role.split("/")[-1])["PolicyNames"]
    assert names == [revocation_policy_name(short.grant_id)]
    # 25 minutes later the short session (15 min + margin) has lapsed; the long one is revoked
    clock.offset = timedelta(minutes=25)
    assert sts.revoke(long) is True
    names = admin(moto, "iam").list_role_policies(RoleName=role.split("/")[-1])["PolicyNames"]
    assert names == [revocation_policy_name(long.grant_id)]
    assert sts.verify_revoked(long)[0] is True
    assert sts.verify_revoked(short)[0] is True  # expired on its own
    assert [m.grant_id for m in sts.list_managed()] == [long.grant_id]


def test_sts_concurrent_revocations_on_one_role_keep_every_statement(moto, clients, wrapper, role):
    # one document per grant: workers revoking at the same time never overwrite each other
    p = StsRoleSessionProvider(clients, wrapper)
    creds = [p.issue(sts_grant(role), wrap_ttl=WRAP_TTL)[0] for _ in range(6)]
    barrier = threading.Barrier(len(creds))
    results: dict[str, bool] = {}

    def revoke(c: IssuedCredential) -> None:
        barrier.wait()
        results[c.grant_id] = StsRoleSessionProvider(clients, wrapper).revoke(c)

    threads = [threading.Thread(target=revoke, args=(c,)) for c in creds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results.values()) and len(results) == len(creds)
    assert all(p.verify_revoked(c)[0] for c in creds)
    assert {m.grant_id for m in p.list_managed()} == {c.grant_id for c in creds}


def test_sts_clean_up_after_a_lost_issue_denies_the_grants_sessions(moto, sts, role):
    # issue minted a session but its reply was lost: clean-up only knows the grant
    grant = sts_grant(role)
    minted, _ = sts.issue(grant, wrap_ttl=WRAP_TTL)
    expected = sts.expected_credential(grant)
    assert expected.reference == minted.reference
    assert sts.list_managed(grant.grant_id) == []
    assert sts.revoke(expected) is True
    assert sts.verify_revoked(expected)[0] is True
    assert sts.verify_revoked(minted)[0] is True  # the deny covers the session that was minted
    assert [m.reference for m in sts.list_managed(grant.grant_id)] == [minted.reference]
    # and clean-up of a grant whose role does not exist has nothing to deny
    ghost = sts_grant(role.rsplit("/", 1)[0] + "/no-such-role")
    exp = sts.expected_credential(ghost)
    assert sts.revoke(exp) is False and sts.verify_revoked(exp)[0] is True


def test_sts_revoke_errors(clients, wrapper, role):
    p = StsRoleSessionProvider(clients, wrapper)
    cred, _ = p.issue(sts_grant(role), wrap_ttl=WRAP_TTL)
    for error, retryable in [
        (client_error("Throttling", "Rate exceeded"), True),
        (client_error("LimitExceeded", "Maximum policy size of 10240 bytes exceeded for role"), True),
        (client_error("AccessDenied", "not authorized to perform iam:PutRolePolicy"), False),
    ]:
        iam = Scripted(clients.client("iam"), put_role_policy=[error])
        with pytest.raises(ProviderError) as ei:
            StsRoleSessionProvider(StubClients(clients, iam=iam), wrapper).revoke(cred)
        assert ei.value.retryable is retryable
        assert p.verify_revoked(cred)[0] is False
    assert p.revoke(cred) is True
