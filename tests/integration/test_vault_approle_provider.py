"""VaultAppRoleSecretIdProvider against a real OpenBao dev server (the session `openbao`
fixture; seed_dev_approle enables AppRole and the example `payments-api` role). What every provider does alike is
tests/integration/test_provider_contract.py; this file keeps what is particular to this one."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import hvac
import pytest
from hvac import exceptions as hv

from jitaccess.dev.seed import seed_dev_approle
from jitaccess.domain.credentials import ProviderGrant
from jitaccess.providers.base import ProviderError
from jitaccess.providers.vault_approle import KIND, MANAGED_BY, VaultAppRoleSecretIdProvider
from jitaccess.providers.vault_token import VaultClients, VaultTokenProvider

WRAP_TTL = timedelta(minutes=2)
ROLE = "payments-api"
POLICY = "jit-payments-read"


@pytest.fixture(scope="module")
def approle(openbao):
    result = seed_dev_approle(openbao.address, openbao.extra["root_token"])
    assert result, result.message
    return openbao


@pytest.fixture
def root(approle) -> hvac.Client:
    return hvac.Client(url=approle.address, token=approle.extra["root_token"])


def clients(openbao) -> VaultClients:
    return VaultClients(openbao.address, openbao.extra["root_token"], timeout=5)


@pytest.fixture
def provider(approle) -> VaultAppRoleSecretIdProvider:
    return VaultAppRoleSecretIdProvider(clients(approle))


def make_grant(ttl: int = 600, role: object = ROLE, policies: object = (POLICY,), principal: str = "payments-deployer"):
    params: dict = {}
    if role is not None:
        params["role_name"] = role
    if policies is not None:
        params["policies"] = list(policies) if isinstance(policies, tuple) else policies
    return ProviderGrant(
        grant_id=f"grant-{uuid.uuid4().hex[:26]}",
        provider="vault_approle",
        params=params,
        principal=principal,
        ttl_seconds=ttl,
    )


def unwrap(openbao, wrapping_token: str) -> dict:
    return hvac.Client(url=openbao.address, token=wrapping_token).sys.unwrap()["data"]


def login(openbao, creds: dict, mount: str = "approle") -> dict:
    return hvac.Client(url=openbao.address).auth.approle.login(
        role_id=creds["role_id"], secret_id=creds["secret_id"], mount_point=mount
    )["auth"]


def read_config(openbao, token: str) -> dict:
    c = hvac.Client(url=openbao.address, token=token)
    return c.secrets.kv.v2.read_secret_version(
        path="payments/config", mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]


def test_a_wrapped_secret_id_whose_login_tokens_are_swept(approle, root, provider):
    openbao = approle
    grant = make_grant(ttl=600)
    before = datetime.now(UTC)
    cred, handover = provider.issue(grant, wrap_ttl=WRAP_TTL)

    assert cred.provider == "vault_approle" and cred.grant_id == grant.grant_id
    assert cred.details["kind"] == KIND and cred.details["role_name"] == ROLE and cred.details["policies"] == [POLICY]
    assert cred.details["secret_id_ttl"] == 600
    assert before + timedelta(seconds=599) <= cred.expires_at <= datetime.now(UTC) + timedelta(seconds=601)

    # hand-over: {role_id, secret_id}, once; the secret-ID is nowhere in the credential
    creds = unwrap(openbao, handover.wrapping_token)
    assert set(creds) == {"role_id", "secret_id"}
    assert creds["role_id"] == root.auth.approle.read_role_id(ROLE)["data"]["role_id"]
    assert creds["secret_id"] not in cred.model_dump_json() and creds["secret_id"] != cred.reference
    with pytest.raises(hv.VaultError):
        unwrap(openbao, handover.wrapping_token)

    # the service logs in and gets a token with the entitlement's policy, bounded lifetime, tagged
    auth = login(openbao, creds)
    assert POLICY in auth["policies"] and auth["lease_duration"] == 900
    assert auth["metadata"] == {
        "grant_id": grant.grant_id,
        "requester": "payments-deployer",
        "managed_by": MANAGED_BY,
        "role_name": ROLE,
    }
    assert read_config(openbao, auth["client_token"]) == {"endpoint": "https://payments.example.internal"}
    role = root.auth.approle.read_role(ROLE)["data"]
    assert role["token_policies"] == [POLICY] and role["token_ttl"] == 900 and role["token_max_ttl"] == 3600
    assert role["token_type"] == "service"

    # the secret-ID itself: TTL = grant, metadata names the grant
    info = root.auth.approle.read_secret_id_accessor(ROLE, cred.reference)["data"]
    assert info["secret_id_ttl"] == 600
    assert info["metadata"] == {"grant_id": grant.grant_id, "requester": "payments-deployer", "managed_by": MANAGED_BY}

    assert "grant_id matches" in provider.verify_active(cred)[1]
    managed = provider.list_managed(grant.grant_id)
    assert [(m.reference, m.details["role_name"], m.details["policies"]) for m in managed] == [
        (cred.reference, ROLE, [POLICY])
    ]

    # revoke: the secret-ID is destroyed and the token it already minted is swept
    assert provider.revoke(cred) is True
    gone, seen = provider.verify_revoked(cred)
    assert gone and "failed to find accessor entry" in seen and "no residual window" in seen
    with pytest.raises(hv.InvalidPath):
        root.auth.approle.read_secret_id_accessor(ROLE, cred.reference)
    with pytest.raises(hv.InvalidRequest, match="invalid role or secret ID"):
        login(openbao, creds)
    with pytest.raises(hv.Forbidden):
        read_config(openbao, auth["client_token"])
    assert "no such secret-ID" in provider.verify_active(cred)[1]


def test_residual_window_without_token_sweep(approle, root):
    """Destroying a secret-ID does not end tokens already minted with it: said so, honestly."""
    openbao = approle
    provider = VaultAppRoleSecretIdProvider(clients(openbao), revoke_login_tokens=False)
    cred, handover = provider.issue(make_grant(), wrap_ttl=WRAP_TTL)
    creds = unwrap(openbao, handover.wrapping_token)
    auth = login(openbao, creds)
    assert provider.revoke(cred) is True
    gone, seen = provider.verify_revoked(cred)
    assert gone and "residual window" in seen and "900s" in seen and "3600s" in seen
    with pytest.raises(hv.InvalidRequest):
        login(openbao, creds)
    assert read_config(openbao, auth["client_token"])  # the minted token still works until its TTL
    root.auth.token.revoke_accessor(auth["accessor"])


def test_removed_by_hand_after_login_still_sweeps_the_token(approle, root, provider):
    cred, handover = provider.issue(make_grant(), wrap_ttl=WRAP_TTL)
    auth = login(approle, unwrap(approle, handover.wrapping_token))
    root.auth.approle.destroy_secret_id_accessor(ROLE, cred.reference)
    assert provider.revoke(cred) is True  # the secret-ID was gone, but access (a login token) was removed
    assert provider.verify_revoked(cred)[0] is True
    with pytest.raises(hv.Forbidden):
        read_config(approle, auth["client_token"])


def test_issue_creates_and_updates_the_service_role(approle, root, provider):
    role = f"svc-{uuid.uuid4().hex[:8]}"
    cred, handover = provider.issue(make_grant(role=role, policies=("jit-platform-read",)), wrap_ttl=WRAP_TTL)
    try:
        data = root.auth.approle.read_role(role)["data"]
        assert (
            data["token_policies"] == ["jit-platform-read"]
            and data["token_ttl"] == 900
            and data["token_max_ttl"] == 3600
        )
        auth = login(approle, unwrap(approle, handover.wrapping_token))
        assert "jit-platform-read" in auth["policies"]
        # someone widens the role by hand: verify_active notices
        root.auth.approle.create_or_update_approle(role, token_policies=["jit-platform-admin"])
        ok, seen = provider.verify_active(cred)
        assert not ok and "policies" in seen
        # the next issue puts the entitlement's policies back
        again, _ = provider.issue(make_grant(role=role, policies=("jit-platform-read",)), wrap_ttl=WRAP_TTL)
        assert root.auth.approle.read_role(role)["data"]["token_policies"] == ["jit-platform-read"]
        assert provider.verify_active(cred)[0] is True
        assert provider.revoke(again) is True
    finally:
        provider.revoke(cred)
        root.auth.approle.delete_role(role)
    ok, seen = provider.verify_active(cred)
    assert not ok


def test_extend_is_refused(provider):
    """A secret-ID's TTL cannot be moved: extension is not retryable (a new grant is needed)."""
    if not hasattr(provider, "extend"):
        pytest.skip("the Provider port has no extend() in this tree")
    cred, _ = provider.issue(make_grant(), wrap_ttl=WRAP_TTL)
    try:
        with pytest.raises(ProviderError) as ei:
            provider.extend(cred, 1200)
        assert ei.value.retryable is False
    finally:
        provider.revoke(cred)


def test_secret_id_ttl_is_the_grants(root, provider):
    cred, _ = provider.issue(make_grant(ttl=30), wrap_ttl=timedelta(seconds=20))
    try:
        info = root.auth.approle.read_secret_id_accessor(ROLE, cred.reference)["data"]
        assert info["secret_id_ttl"] == 30
        expires = datetime.fromisoformat(info["expiration_time"][:26] + "+00:00")
        assert 0 < (expires - datetime.now(UTC)).total_seconds() <= 30
    finally:
        provider.revoke(cred)


def test_role_secret_id_ttl_cap_is_not_retryable(root, provider):
    role = f"svc-{uuid.uuid4().hex[:8]}"
    root.auth.approle.create_or_update_approle(role, token_policies=[POLICY], secret_id_ttl="60s")
    grant = make_grant(ttl=600, role=role)
    try:
        with pytest.raises(ProviderError, match="secret_id_ttl") as ei:
            provider.issue(grant, wrap_ttl=WRAP_TTL)
        assert ei.value.retryable is False
        assert provider.list_managed(grant.grant_id) == []
    finally:
        root.auth.approle.delete_role(role)


def test_list_managed_ignores_unmanaged_and_other_grants(approle, root, provider):
    g1, g2 = make_grant(), make_grant()
    c1, h1 = provider.issue(g1, wrap_ttl=WRAP_TTL)
    c2, _ = provider.issue(g2, wrap_ttl=WRAP_TTL)
    # a secret-ID claiming the grant but not created by us is not ours to manage
    foreign = root.adapter.post(
        f"/v1/auth/approle/role/{ROLE}/secret-id",
        json={"metadata": json.dumps({"grant_id": g1.grant_id}), "ttl": "60s"},
    )["data"]
    try:
        assert [m.reference for m in provider.list_managed(g1.grant_id)] == [c1.reference]
        assert [m.reference for m in provider.list_managed(g2.grant_id)] == [c2.reference]
        everything = {m.reference for m in provider.list_managed()}
        assert {c1.reference, c2.reference} <= everything and foreign["secret_id_accessor"] not in everything
        # login tokens inherit our metadata, but the vault_token provider does not take them for its own
        auth = login(approle, unwrap(approle, h1.wrapping_token))
        assert root.auth.token.lookup_accessor(auth["accessor"])["data"]["meta"]["grant_id"] == g1.grant_id
        assert VaultTokenProvider(clients(approle)).list_managed(g1.grant_id) == []
    finally:
        provider.revoke(c1)
        provider.revoke(c2)
        root.auth.approle.destroy_secret_id_accessor(ROLE, foreign["secret_id_accessor"])
    assert provider.list_managed(g1.grant_id) == []
    with pytest.raises(hv.InvalidRequest, match="invalid accessor"):  # swept with c1
        root.auth.token.lookup_accessor(auth["accessor"])


def test_approle_not_mounted_not_retryable(approle):
    p = VaultAppRoleSecretIdProvider(clients(approle), mount="no-such-approle")
    with pytest.raises(ProviderError, match="no AppRole auth method") as ei:
        p.issue(make_grant(), wrap_ttl=WRAP_TTL)
    assert ei.value.retryable is False
    assert p.list_managed() == []


def test_secret_id_ttl_ends_at_the_grant_expiry(root, provider):
    fixed = datetime.now(UTC) - timedelta(seconds=5)
    grant = make_grant(ttl=60).model_copy(update={"issued_at": fixed, "expires_at": fixed + timedelta(seconds=60)})
    cred, _ = provider.issue(grant, wrap_ttl=WRAP_TTL)
    data = root.adapter.post(
        f"/v1/auth/approle/role/{ROLE}/secret-id-accessor/lookup", json={"secret_id_accessor": cred.reference}
    )["data"]
    assert datetime.fromisoformat(data["expiration_time"]) <= grant.expires_at
    assert cred.details["secret_id_ttl"] <= 55 and cred.expires_at <= grant.expires_at
    provider.revoke(cred)
