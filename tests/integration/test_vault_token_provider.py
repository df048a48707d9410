"""VaultTokenProvider against a real OpenBao dev server (the session `openbao` fixture, example policies
seeded): what is particular to it. The Provider contract every provider keeps (issue, read-back,
revoke, idempotence, out-of-band removal, retries, bad params, unreachable target) is
tests/integration/test_provider_contract.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import hvac
import pytest
from hvac import exceptions as hv

from jitaccess.domain.credentials import ProviderGrant
from jitaccess.providers.base import ProviderError
from jitaccess.providers.vault_token import MANAGED_BY, VaultClients, VaultTokenProvider

WRAP_TTL = timedelta(minutes=2)
READ_POLICY = "jit-platform-read"


@pytest.fixture
def root(openbao) -> hvac.Client:
    return hvac.Client(url=openbao.address, token=openbao.extra["root_token"])


@pytest.fixture
def provider(openbao) -> VaultTokenProvider:
    return VaultTokenProvider(VaultClients(openbao.address, openbao.extra["root_token"], timeout=5))


def make_grant(ttl: int = 600, policies: object = (READ_POLICY,), principal: str = "alice") -> ProviderGrant:
    params = {"policies": list(policies) if isinstance(policies, tuple) else policies}
    return ProviderGrant(
        grant_id=f"g-{uuid.uuid4().hex[:12]}",
        provider="vault_token",
        params=params,
        principal=principal,
        ttl_seconds=ttl,
    )


def unwrap(openbao, wrapping_token: str) -> str:
    """Unwrap as the requester would: a client holding only the wrapping token."""
    resp = hvac.Client(url=openbao.address, token=wrapping_token).sys.unwrap()
    return resp["auth"]["client_token"]


def client(openbao, token: str) -> hvac.Client:
    return hvac.Client(url=openbao.address, token=token)


def read_demo(c: hvac.Client) -> dict:
    return c.secrets.kv.v2.read_secret_version(
        path="platform/demo", mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]


def test_a_wrapped_token_with_exactly_the_entitlements_policies(openbao, root, provider):
    grant = make_grant(ttl=600)
    before = datetime.now(UTC)
    cred, handover = provider.issue(grant, wrap_ttl=WRAP_TTL)

    # the credential is a non-secret reference: the accessor of the wrapped token
    assert cred.provider == "vault_token" and cred.grant_id == grant.grant_id
    assert cred.reference and cred.reference != handover.wrapping_token
    assert cred.details["policies"] == [READ_POLICY] and cred.details["ttl_seconds"] == 600
    assert before + timedelta(seconds=599) <= cred.expires_at <= datetime.now(UTC) + timedelta(seconds=601)
    assert before + WRAP_TTL - timedelta(seconds=2) <= handover.expires_at <= datetime.now(UTC) + WRAP_TTL
    assert handover.wrapping_token not in repr(handover)

    # hand-over: unwraps exactly once
    token = unwrap(openbao, handover.wrapping_token)
    assert token
    with pytest.raises(hv.VaultError):
        unwrap(openbao, handover.wrapping_token)
    with pytest.raises(hv.VaultError):
        root.sys.unwrap(handover.wrapping_token)

    # the token carries exactly the entitlement's (read-only) policy
    user = client(openbao, token)
    assert read_demo(user) == {"greeting": "hello from jitaccess"}
    with pytest.raises(hv.Forbidden):
        user.secrets.kv.v2.create_or_update_secret(path="platform/demo", secret={"x": "y"}, mount_point="secret")
    with pytest.raises(hv.Forbidden):
        user.secrets.kv.v2.create_or_update_secret(path="platform/new", secret={"x": "y"}, mount_point="secret")
    with pytest.raises(hv.Forbidden):
        user.sys.list_acl_policies()
    assert read_demo(root) == {"greeting": "hello from jitaccess"}  # the write really did not happen

    # TTL backstop: ttl <= requested, explicit max = the cumulative cap, renewable only by the pipeline
    # (renew-accessor, for an approved extension): without the default policy the holder cannot renew-self
    info = root.auth.token.lookup_accessor(cred.reference)["data"]
    assert 0 < info["ttl"] <= 600 and info["ttl"] >= 590
    assert info["explicit_max_ttl"] == 600  # max_ttl_seconds not given: the cap is the grant itself
    assert info["renewable"] is True
    assert info["policies"] == [READ_POLICY]
    assert info["meta"] == {"grant_id": grant.grant_id, "requester": "alice", "managed_by": MANAGED_BY}
    with pytest.raises(hv.VaultError):
        user.auth.token.renew_self()

    assert "grant_id matches" in provider.verify_active(cred)[1]
    managed = provider.list_managed(grant.grant_id)
    assert [(m.reference, m.details["policies"]) for m in managed] == [(cred.reference, [READ_POLICY])]

    # revoked: the accessor is gone and the requester's token refused
    assert provider.revoke(cred) is True
    with pytest.raises(hv.InvalidRequest, match="invalid accessor"):
        root.auth.token.lookup_accessor(cred.reference)
    with pytest.raises(hv.Forbidden):
        read_demo(user)
    assert "does not exist" in provider.verify_active(cred)[1]


def test_first_attempt_does_not_touch_other_tokens(provider):
    grant = make_grant()
    a, _ = provider.issue(grant, wrap_ttl=WRAP_TTL)
    b, _ = provider.issue(grant, wrap_ttl=WRAP_TTL)  # first_attempt=True: no clean-up
    try:
        assert {m.reference for m in provider.list_managed(grant.grant_id)} == {a.reference, b.reference}
    finally:
        provider.revoke(a)
        provider.revoke(b)


def test_list_managed_ignores_unmanaged_and_other_grants(root, provider):
    g1, g2 = make_grant(), make_grant()
    c1, _ = provider.issue(g1, wrap_ttl=WRAP_TTL)
    c2, _ = provider.issue(g2, wrap_ttl=WRAP_TTL)
    # a token without the managed_by tag but claiming the grant id is not ours to manage
    foreign = root.auth.token.create(policies=[READ_POLICY], ttl="60s", meta={"grant_id": g1.grant_id})["auth"]
    try:
        assert [m.reference for m in provider.list_managed(g1.grant_id)] == [c1.reference]
        assert [m.reference for m in provider.list_managed(g2.grant_id)] == [c2.reference]
        everything = {m.reference for m in provider.list_managed()}
        assert {c1.reference, c2.reference} <= everything
        assert foreign["accessor"] not in everything
    finally:
        provider.revoke(c1)
        provider.revoke(c2)
        root.auth.token.revoke_accessor(foreign["accessor"])


def test_verify_active_detects_mismatch(provider):
    grant = make_grant()
    cred, _ = provider.issue(grant, wrap_ttl=WRAP_TTL)
    try:
        wrong_grant = cred.model_copy(update={"grant_id": "g-other"})
        ok, seen = provider.verify_active(wrong_grant)
        assert not ok and "grant_id" in seen
        wrong_policies = cred.model_copy(update={"details": {**cred.details, "policies": ["jit-platform-admin"]}})
        ok, seen = provider.verify_active(wrong_policies)
        assert not ok and "policies" in seen
    finally:
        provider.revoke(cred)


def test_short_ttl_is_respected(root, provider):
    cred, _ = provider.issue(make_grant(ttl=30), wrap_ttl=timedelta(seconds=20))
    try:
        info = root.auth.token.lookup_accessor(cred.reference)["data"]
        assert 0 < info["ttl"] <= 30
        assert info["explicit_max_ttl"] == 30
    finally:
        provider.revoke(cred)


def test_admin_policy_can_write(openbao, provider):
    cred, h = provider.issue(make_grant(policies=("jit-platform-admin",)), wrap_ttl=WRAP_TTL)
    try:
        user = client(openbao, unwrap(openbao, h.wrapping_token))
        user.secrets.kv.v2.create_or_update_secret(path="platform/jit-test", secret={"x": "y"}, mount_point="secret")
        assert user.secrets.kv.v2.read_secret_version(
            path="platform/jit-test", mount_point="secret", raise_on_deleted_version=True
        )["data"]["data"] == {"x": "y"}
        with pytest.raises(hv.Forbidden):  # outside its path
            user.secrets.kv.v2.read_secret_version(path="other/x", mount_point="secret", raise_on_deleted_version=True)
    finally:
        assert provider.revoke(cred) is True


def test_extend_moves_the_ttl_backstop_up_to_the_cumulative_cap(provider, openbao):
    grant = make_grant(ttl=600).model_copy(update={"max_ttl_seconds": 1200})
    cred, _ = provider.issue(grant, wrap_ttl=timedelta(minutes=5))
    root = client(openbao, openbao.extra["root_token"])
    assert root.auth.token.lookup_accessor(cred.reference)["data"]["explicit_max_ttl"] == 1200
    extended = provider.extend(cred, 900)
    ttl = root.auth.token.lookup_accessor(cred.reference)["data"]["ttl"]
    assert 890 <= ttl <= 900 and extended.details["ttl_seconds"] == ttl
    assert extended.expires_at > cred.expires_at
    with pytest.raises(ProviderError) as e:  # beyond the entitlement max: vault caps it, we refuse
        provider.extend(cred, 5000)
    assert not e.value.retryable and "explicit max" in str(e.value)
    provider.revoke(cred)


def test_ttl_ends_at_the_grant_expiry_however_late_the_issue_runs(root, provider):
    """The workflow fixed the grant's window 5 s before this call: the token's TTL counts down to
    the grant's expiry (rounded down), not a full duration from its creation."""
    fixed = datetime.now(UTC) - timedelta(seconds=5)
    grant = make_grant(ttl=60).model_copy(
        update={"issued_at": fixed, "expires_at": fixed + timedelta(seconds=60), "max_ttl_seconds": 120}
    )
    cred, _ = provider.issue(grant, wrap_ttl=WRAP_TTL)
    data = root.auth.token.lookup_accessor(cred.reference)["data"]
    assert datetime.fromisoformat(data["expire_time"]) <= grant.expires_at
    assert 50 <= data["ttl"] <= 55 and data["explicit_max_ttl"] <= 115  # the cap counts from the window too
    assert cred.expires_at <= grant.expires_at and cred.details["ttl_seconds"] <= 55
    provider.revoke(cred)


def test_a_grant_already_expired_is_not_issued(provider):
    past = datetime.now(UTC) - timedelta(seconds=61)
    grant = make_grant(ttl=60).model_copy(update={"issued_at": past, "expires_at": past + timedelta(seconds=60)})
    with pytest.raises(ProviderError, match="expired") as e:
        provider.issue(grant, wrap_ttl=WRAP_TTL)
    assert e.value.retryable is False
    assert provider.list_managed(grant.grant_id) == []


def test_revoke_tells_removed_from_already_gone_in_one_call(root, provider, monkeypatch):
    """The expiry path's cost (issue 15): revoke-accessor answers a live token 204 and an unknown
    accessor 200 with a warning, so revoke needs no lookup first; the read-back is the second call."""
    calls: list[str] = []
    adapter = provider._vault.adapter  # this thread's client: the one revoke uses
    real = adapter.request

    def counted(method: str, url: str, *args: object, **kwargs: object) -> object:
        calls.append(f"{method} {url}")
        return real(method, url, *args, **kwargs)

    cred, _ = provider.issue(make_grant(), wrap_ttl=WRAP_TTL)
    monkeypatch.setattr(adapter, "request", counted)
    assert provider.revoke(cred) is True
    assert calls == ["post /v1/auth/token/revoke-accessor"]
    assert provider.verify_revoked(cred)[0] is True
    calls.clear()
    assert provider.revoke(cred) is False  # already gone: told by the same single call
    assert calls == ["post /v1/auth/token/revoke-accessor"]
