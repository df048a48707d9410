"""VaultDatabaseCredentialsProvider against a real OpenBao dev server and a real PostgreSQL
(the session fixtures `openbao` and `vault_postgres`: a throwaway database, the database
secrets engine seeded by seed_dev_database). Skipped when PostgreSQL is not reachable. What every
provider does alike is tests/integration/test_provider_contract.py; this file keeps what is
particular to this one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import hvac
import pytest
from hvac import exceptions as hv

from jitaccess.dev.seed import seed_dev_database
from jitaccess.dev.servers import free_port
from jitaccess.domain.credentials import ProviderGrant
from jitaccess.providers.base import ProviderError
from jitaccess.providers.vault_database import (
    LEASE_KIND,
    MANAGED_BY,
    OWNER_KIND,
    VaultDatabaseCredentialsProvider,
)
from jitaccess.providers.vault_token import VaultClients, VaultTokenProvider
from tests.support import eventually_sync

psycopg = pytest.importorskip("psycopg", reason="psycopg is needed for the Vault database provider tests")

WRAP_TTL = timedelta(minutes=2)
ROLE = "platform-readonly"
QUERY = "SELECT id, name FROM jitaccess_demo.accounts ORDER BY id"


@pytest.fixture
def root(openbao) -> hvac.Client:
    return hvac.Client(url=openbao.address, token=openbao.extra["root_token"])


@pytest.fixture
def pg(vault_postgres):
    with psycopg.connect(vault_postgres["dsn"], autocommit=True) as conn:
        yield conn


@pytest.fixture
def provider(openbao, vault_postgres) -> VaultDatabaseCredentialsProvider:
    return VaultDatabaseCredentialsProvider(
        VaultClients(openbao.address, openbao.extra["root_token"], timeout=5),
        mount=vault_postgres["mount"],
        verify_dsn=vault_postgres["dsn"],
    )


@pytest.fixture
def lease_only(openbao, vault_postgres) -> VaultDatabaseCredentialsProvider:
    return VaultDatabaseCredentialsProvider(
        VaultClients(openbao.address, openbao.extra["root_token"], timeout=5), mount=vault_postgres["mount"]
    )


def make_grant(
    ttl: int = 600, role: object = ROLE, principal: str = "alice", max_ttl: int | None = None
) -> ProviderGrant:
    return ProviderGrant(
        grant_id=f"grant-{uuid.uuid4().hex[:26]}",
        provider="vault_database",
        params={} if role is None else {"role": role},
        principal=principal,
        ttl_seconds=ttl,
        max_ttl_seconds=max_ttl,
    )


def unwrap(openbao, wrapping_token: str) -> dict:
    """Unwrap as the requester would: a client holding only the wrapping token."""
    return hvac.Client(url=openbao.address, token=wrapping_token).sys.unwrap()["data"]


def connect_as(vault_postgres, creds: dict):
    return psycopg.connect(
        vault_postgres["dsn"], user=creds["username"], password=creds["password"], autocommit=True, connect_timeout=3
    )


def pg_role(pg, name: str):
    return pg.execute("SELECT rolcanlogin, rolvaliduntil FROM pg_roles WHERE rolname = %s", (name,)).fetchone()


def roles_for(pg, grant_id: str) -> list[str]:
    return [
        r[0] for r in pg.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"%{grant_id}%",)).fetchall()
    ]


def test_a_wrapped_read_only_database_user_dropped_on_revoke(openbao, root, pg, vault_postgres, provider):
    grant = make_grant(ttl=600)
    before = datetime.now(UTC)
    cred, handover = provider.issue(grant, wrap_ttl=WRAP_TTL)

    # a non-secret reference: the lease ID; details name role, user, connection and owner token
    assert cred.provider == "vault_database" and cred.grant_id == grant.grant_id
    assert cred.reference.startswith(f"database/creds/{ROLE}/")
    assert cred.details["kind"] == LEASE_KIND and cred.details["role"] == ROLE
    assert cred.details["db"] == "jitaccess-postgres" and cred.details["lease_ttl_seconds"] >= 595
    username = cred.details["username"]
    # the user name names the role and the grant (username_template with the owner token's display name)
    assert username.startswith("jit-platform-readon") and grant.grant_id in username
    assert before + timedelta(seconds=594) <= cred.expires_at <= datetime.now(UTC) + timedelta(seconds=601)
    assert handover.wrapping_token not in repr(handover)

    # hand-over: {username, password}, unwraps exactly once; the password is nowhere in the credential
    creds = unwrap(openbao, handover.wrapping_token)
    assert set(creds) == {"username", "password"} and creds["username"] == username
    assert creds["password"] not in cred.model_dump_json()
    with pytest.raises(hv.VaultError):
        unwrap(openbao, handover.wrapping_token)

    # the credentials really work, read-only, on the seeded table
    user = connect_as(vault_postgres, creds)
    assert user.execute(QUERY).fetchall() == [(1, "acme"), (2, "globex")]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        user.execute("INSERT INTO jitaccess_demo.accounts VALUES (3, 'initech')")

    # TTL: the lease and VALID UNTIL follow the grant (600 s), not the role's default_ttl (300 s)
    lease = root.sys.read_lease(cred.reference)["data"]
    assert 590 <= lease["ttl"] <= 600
    can_login, valid_until = pg_role(pg, username)
    assert can_login and abs((valid_until - before).total_seconds() - 600) < 30
    # the owner token: narrow policy, not renewable, TTL = explicit max = grant, tagged with the grant
    owner = root.auth.token.lookup_accessor(cred.details["token_accessor"])["data"]
    assert owner["policies"] == [f"jitaccess-dbcreds-database-{ROLE}"]
    assert owner["explicit_max_ttl"] == 600 and owner["renewable"] is False  # no room to extend: not renewable
    assert owner["meta"] == {"grant_id": grant.grant_id, "requester": "alice", "role": ROLE, "managed_by": MANAGED_BY}
    assert owner["display_name"] == f"token-{grant.grant_id}"

    ok, seen = provider.verify_active(cred)
    assert ok and "lease live" in seen and f"pg_roles: role {username!r} exists" in seen
    # listed by its owner token (Vault cannot list leases by grant)
    managed = provider.list_managed(grant.grant_id)
    assert [(m.reference, m.details["kind"], m.details["role"]) for m in managed] == [
        (cred.details["token_accessor"], OWNER_KIND, ROLE)
    ]

    # revoke, confirmed by read-back in Vault and in PostgreSQL
    assert provider.revoke(cred) is True
    gone, seen = provider.verify_revoked(cred)
    assert gone and "invalid lease" in seen and f"role {username!r} is gone" in seen
    with pytest.raises(hv.InvalidRequest, match="invalid lease"):
        root.sys.read_lease(cred.reference)
    assert pg_role(pg, username) is None
    with pytest.raises(psycopg.OperationalError):  # the open session was terminated
        user.execute(QUERY)
    with pytest.raises(psycopg.OperationalError):  # and the user cannot log in again
        connect_as(vault_postgres, creds)
    assert "does not exist" in provider.verify_active(cred)[1]


def test_lease_ttl_follows_the_grant(root, pg, provider):
    """OpenBao sets a renewed lease's TTL to the increment, shorter or longer than default_ttl."""
    short, _ = provider.issue(make_grant(ttl=40), wrap_ttl=timedelta(seconds=30))
    long, _ = provider.issue(make_grant(ttl=7200), wrap_ttl=WRAP_TTL)
    try:
        assert 0 < root.sys.read_lease(short.reference)["data"]["ttl"] <= 40
        assert 7190 <= root.sys.read_lease(long.reference)["data"]["ttl"] <= 7200
        assert root.auth.token.lookup_accessor(short.details["token_accessor"])["data"]["explicit_max_ttl"] == 40
        _, until = pg_role(pg, long.details["username"])
        assert abs((until - datetime.now(UTC)).total_seconds() - 7200) < 30
    finally:
        assert provider.revoke(short) and provider.revoke(long)


def test_extend_moves_lease_token_and_valid_until(root, pg, provider):
    cred, _ = provider.issue(make_grant(ttl=60, max_ttl=3600), wrap_ttl=timedelta(seconds=30))
    try:
        owner = root.auth.token.lookup_accessor(cred.details["token_accessor"])["data"]
        assert owner["ttl"] <= 60 and owner["explicit_max_ttl"] == 3600 and owner["renewable"] is True
        longer = provider.extend(cred, 1800)
        assert longer.reference == cred.reference and 1795 <= longer.details["lease_ttl_seconds"] <= 1800
        assert longer.expires_at > cred.expires_at + timedelta(seconds=1700)
        assert 1790 <= root.sys.read_lease(cred.reference)["data"]["ttl"] <= 1800
        assert 1790 <= root.auth.token.lookup_accessor(cred.details["token_accessor"])["data"]["ttl"] <= 1800
        _, until = pg_role(pg, cred.details["username"])
        assert abs((until - datetime.now(UTC)).total_seconds() - 1800) < 30
        assert provider.verify_active(longer)[0] is True
        # past the entitlement's max (the owner token's explicit max TTL): refused, not retried
        with pytest.raises(ProviderError, match="capped") as ei:
            provider.extend(longer, 7200)
        assert ei.value.retryable is False
    finally:
        assert provider.revoke(cred) is True
    with pytest.raises(ProviderError, match="no longer exists: the access has ended") as ei:
        provider.extend(cred, 600)
    assert ei.value.retryable is False


def test_extend_without_room_is_refused(provider):
    cred, _ = provider.issue(make_grant(ttl=60), wrap_ttl=timedelta(seconds=30))
    try:
        with pytest.raises(ProviderError, match="without room to extend") as ei:
            provider.extend(cred, 600)
        assert ei.value.retryable is False
    finally:
        provider.revoke(cred)


def test_backstop_ends_access_without_the_pipeline(vault_postgres, openbao, root, pg, provider):
    """Nobody calls revoke: the lease (and the owner token) end at the grant's TTL, and Vault
    drops the database user by itself."""
    cred, handover = provider.issue(make_grant(ttl=3), wrap_ttl=timedelta(seconds=30))
    creds = unwrap(openbao, handover.wrapping_token)
    connect_as(vault_postgres, creds).close()
    eventually_sync(lambda: pg_role(pg, cred.details["username"]) is None, 30, "Vault dropped the user", interval=0.5)
    gone, seen = provider.verify_revoked(cred)
    assert gone, seen
    assert provider.revoke(cred) is False
    assert provider.list_managed(cred.grant_id) == []


def test_grant_longer_than_role_max_ttl_is_refused_and_nothing_left(pg, provider):
    grant = make_grant(ttl=9 * 3600)  # the dev role's max_ttl is 8 h
    with pytest.raises(ProviderError, match="max_ttl") as ei:
        provider.issue(grant, wrap_ttl=WRAP_TTL)
    assert ei.value.retryable is False
    assert provider.list_managed(grant.grant_id) == []
    eventually_sync(lambda: roles_for(pg, grant.grant_id) == [], 10, "no user left", interval=0.25)


def test_user_dropped_by_a_dba_is_seen(root, pg, provider, lease_only):
    cred, _ = provider.issue(make_grant(), wrap_ttl=WRAP_TTL)
    username = cred.details["username"]
    pg.execute(f'DROP OWNED BY "{username}"')
    pg.execute(f'DROP ROLE "{username}"')
    ok, seen = provider.verify_active(cred)
    assert not ok and "pg_roles has no role" in seen
    ok, seen = lease_only.verify_active(cred)  # the lease alone cannot tell
    assert ok and "lease only" in seen
    # the revocation statements tolerate the missing role, so the lease still revokes cleanly
    assert provider.revoke(cred) is True
    assert provider.verify_revoked(cred)[0] is True


def test_without_verification_dsn_it_says_lease_only(pg, lease_only):
    cred, _ = lease_only.issue(make_grant(), wrap_ttl=WRAP_TTL)
    ok, seen = lease_only.verify_active(cred)
    assert ok and "no PostgreSQL verification DSN" in seen and "lease only" in seen
    assert lease_only.revoke(cred) is True
    gone, seen = lease_only.verify_revoked(cred)
    assert gone and "lease only" in seen
    assert pg_role(pg, cred.details["username"]) is None  # (Vault did drop it; the provider just could not look)


def test_clean_up_by_grant_id(pg, provider):
    """What clean_up_grant does after a failed issue: list by grant ID, revoke, confirm."""
    grant = make_grant()
    cred, _ = provider.issue(grant, wrap_ttl=WRAP_TTL)
    leftovers = provider.list_managed(grant.grant_id)
    assert len(leftovers) == 1
    assert [provider.revoke(x) for x in leftovers] == [True]
    for x in leftovers:
        gone, seen = provider.verify_revoked(x)
        assert gone and f"no role whose name contains {grant.grant_id}" in seen, seen
    assert roles_for(pg, grant.grant_id) == []
    assert provider.verify_revoked(cred)[0] is True  # the lease went with its owner token
    assert provider.revoke(leftovers[0]) is False


def test_list_managed_ignores_other_grants_and_unmanaged_tokens(openbao, root, provider):
    g1, g2 = make_grant(), make_grant()
    c1, _ = provider.issue(g1, wrap_ttl=WRAP_TTL)
    c2, _ = provider.issue(g2, wrap_ttl=WRAP_TTL)
    foreign = root.auth.token.create(policies=["default"], ttl="60s", meta={"grant_id": g1.grant_id})["auth"]
    try:
        assert [m.reference for m in provider.list_managed(g1.grant_id)] == [c1.details["token_accessor"]]
        assert [m.reference for m in provider.list_managed(g2.grant_id)] == [c2.details["token_accessor"]]
        assert foreign["accessor"] not in {m.reference for m in provider.list_managed()}
        # and the vault_token provider does not take the owner tokens for its own
        tokens = VaultTokenProvider(VaultClients(openbao.address, openbao.extra["root_token"]))
        assert tokens.list_managed(g1.grant_id) == []
    finally:
        provider.revoke(c1)
        provider.revoke(c2)
        root.auth.token.revoke_accessor(foreign["accessor"])


def test_unknown_role_not_retryable(provider):
    grant = make_grant(role="no-such-role")
    with pytest.raises(ProviderError, match="no Vault database role 'no-such-role'") as ei:
        provider.issue(grant, wrap_ttl=WRAP_TTL)
    assert ei.value.retryable is False
    assert provider.list_managed(grant.grant_id) == []


def test_unreachable_verification_database_is_retryable(openbao, vault_postgres, provider):
    cred, _ = provider.issue(make_grant(), wrap_ttl=WRAP_TTL)
    try:
        blind = VaultDatabaseCredentialsProvider(
            VaultClients(openbao.address, openbao.extra["root_token"], timeout=5),
            verify_dsn=f"postgresql://postgres@127.0.0.1:{free_port()}/x",
        )
        with pytest.raises(ProviderError, match="PostgreSQL") as ei:
            blind.verify_active(cred)
        assert ei.value.retryable is True
    finally:
        assert provider.revoke(cred) is True


def test_seed_reports_unreachable_postgres():
    result = seed_dev_database("http://127.0.0.1:1", "unused", f"postgresql://postgres@127.0.0.1:{free_port()}/test")
    assert not result
    assert "PostgreSQL is not reachable" in result.message and "not configured" in result.message


def test_seed_is_idempotent(openbao, vault_postgres, provider):
    again = seed_dev_database(openbao.address, openbao.extra["root_token"], vault_postgres["dsn"])
    assert again, again.message
    assert "platform-readonly" in again.message
    cred, _ = provider.issue(make_grant(), wrap_ttl=WRAP_TTL)
    assert provider.revoke(cred) is True


def test_lease_and_owner_token_end_at_the_grant_expiry(root, provider):
    fixed = datetime.now(UTC) - timedelta(seconds=5)
    grant = make_grant(ttl=120, max_ttl=600).model_copy(
        update={"issued_at": fixed, "expires_at": fixed + timedelta(seconds=120)}
    )
    cred, _ = provider.issue(grant, wrap_ttl=WRAP_TTL)
    lease = root.sys.read_lease(cred.reference)["data"]
    owner = root.auth.token.lookup_accessor(cred.details["token_accessor"])["data"]
    assert datetime.fromisoformat(lease["expire_time"]) <= grant.expires_at
    assert datetime.fromisoformat(owner["expire_time"]) <= grant.expires_at
    assert cred.expires_at <= grant.expires_at and cred.details["lease_ttl_seconds"] <= 115
    provider.revoke(cred)
