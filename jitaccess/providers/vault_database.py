"""Dynamic database credentials from the OpenBao/Vault database secrets engine (PostgreSQL).

The entitlement names a Vault database role (`params: {role: platform-readonly}`); a grant
gets its own database user, created by Vault with the role's creation statements and
dropped by its revocation statements.

How a grant's objects are found again (list_managed)
    Vault offers no way to find a lease by who asked for it, so the credentials are requested
    with a **per-grant owner token**, a child token whose secret is used once inside issue() and
    then dropped (it is never handed out): `display_name` = the grant ID, meta `{grant_id,
    requester, role, managed_by}`, a policy that can only read `<mount>/creds/<role>`, TTL = the
    grant's remaining time (explicit max TTL = the entitlement's max duration; renewable only
    when that is longer, for extend()). A lease belongs to the token that obtained it: revoking
    the token, or its expiry, revokes the lease and so drops the database user. list_managed
    (grant_id) therefore lists these owner tokens (reference = the token accessor, details.kind
    = OWNER_KIND, not the lease ID that issue() returns), and revoking one takes its lease and
    database user with it. The dev connection's `username_template` puts the role and the
    token's display name into the user name (`jit-<role>-<grant id>-<random>`), so `pg_roles`
    names the grant too. `managed_by` is `jitaccess:vault_database`, not `jitaccess`, so the
    vault_token provider never mistakes these tokens for its own.

TTL (what OpenBao honours, checked against OpenBao 2.7)
    A creds read always gets the role's `default_ttl`; there is no per-request TTL. The lease is
    then renewed with `increment` = the grant's remaining time: OpenBao sets the lease TTL to
    exactly that from now (shorter or longer than default_ttl), capped by the role's `max_ttl`
    counted from issue (with a warning). A cap shorter than the grant is a configuration error:
    the issue fails (not retryable) and the lease is revoked. The postgres plugin's renew
    statement moves `VALID UNTIL` along. The owner token ends at the same moment, so even if
    the lease were renewed past the grant, token expiry revokes it: two backstops, both at the
    grant's expiry. The user is created with the role's short `default_ttl` first, so a crash
    between creation and renewal leaves at most that much behind. extend() renews the owner
    token (renew-accessor) and then the lease to the new remaining time.

Secrets
    `{username, password}` are handed over only response-wrapped (VaultWrapper, sys/wrapping/wrap).
    The IssuedCredential carries the lease ID (reference), the role, the Vault connection name,
    the user name and the owner token's accessor: nothing that grants access.

Read-back
    verify_active: `sys/leases/lookup` shows the lease live, AND the user exists in `pg_roles`
    (can log in, VALID UNTIL in the future) when a verification DSN is configured; without one
    the description says the check was on the lease alone. verify_revoked: the lease lookup
    answers "invalid lease", the owner token is gone, and (with the DSN) the user is gone from
    `pg_roles`. Token revocation revokes leases asynchronously, so the read-back polls briefly.

Permissions the worker's Vault token needs: read `<mount>/roles/*`, write
`sys/policies/acl/jitaccess-dbcreds-*`, create child tokens (`auth/token/create`), read/renew/
revoke `sys/leases/*`, list `auth/token/accessors` (sudo) and `auth/token/lookup-accessor`,
`auth/token/revoke-accessor`, `auth/token/renew-accessor`. The owner tokens are children of the worker's token: like the
vault_token provider's tokens, they (and so the database users) end if the worker's token is
revoked or expires, which fails closed.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import hvac
from hvac import exceptions as hv

from jitaccess.domain.credentials import IssuedCredential, ProviderGrant, WrappedHandover
from jitaccess.domain.provider_params import VaultDatabaseParams
from jitaccess.providers.base import PerGrantCredentials, ProviderError, ends_late, grant_params, remaining_ttl
from jitaccess.providers.vault_token import (
    VaultClients,
    VaultWrapper,
    lookup_token,
    managed_token_credentials,
    revoke_token,
    translate,
)

MANAGED_BY = "jitaccess:vault_database"
LEASE_KIND = "database lease"
OWNER_KIND = "vault token owning the grant's database lease(s)"
# OpenBao caps a renewal at max_ttl counted from issue; a few seconds of slack for the calls in between
TTL_SLACK_SECONDS = 5


def _token_gone(e: Exception) -> bool:
    return isinstance(e, hv.InvalidRequest) and "invalid accessor" in str(e).lower() or isinstance(e, hv.InvalidPath)


def _lease_gone(e: Exception) -> bool:
    return isinstance(e, hv.InvalidRequest) and "invalid lease" in str(e).lower() or isinstance(e, hv.InvalidPath)


def plain_dsn(dsn: str) -> str:
    """Accept SQLAlchemy-style URLs too (postgresql+psycopg://) and hand psycopg a libpq URL."""
    return re.sub(r"^postgres(?:ql)?\+\w+://", "postgresql://", dsn)


class PgRoles:
    """Reads `pg_roles` through a verification DSN (any user that can read the catalogue)."""

    def __init__(self, dsn: str, timeout: int = 5) -> None:
        try:
            import psycopg
        except ImportError as e:  # pragma: no cover - the postgres extra is not installed
            raise RuntimeError("a PostgreSQL verification DSN needs psycopg: pip install 'jitaccess[postgres]'") from e
        self._psycopg = psycopg
        self._dsn, self._timeout = plain_dsn(dsn), timeout

    def _query(self, sql: str, args: tuple) -> list[tuple]:
        try:
            with self._psycopg.connect(self._dsn, connect_timeout=self._timeout, autocommit=True) as conn:
                return conn.execute(sql, args).fetchall()
        except self._psycopg.Error as e:
            raise ProviderError(
                f"PostgreSQL (verification DSN) unreachable or failing: {e.__class__.__name__}: {e}"
            ) from e

    def role(self, name: str) -> tuple[bool, datetime | None] | None:
        """(can_login, valid_until) for the role, or None when pg_roles has no such role."""
        rows = self._query("SELECT rolcanlogin, rolvaliduntil FROM pg_roles WHERE rolname = %s", (name,))
        return (rows[0][0], rows[0][1]) if rows else None

    def roles_containing(self, fragment: str) -> list[str]:
        pattern = "%" + fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return [r[0] for r in self._query("SELECT rolname FROM pg_roles WHERE rolname LIKE %s ORDER BY 1", (pattern,))]


class VaultDatabaseCredentialsProvider(PerGrantCredentials):
    name = "vault_database"
    params_model = VaultDatabaseParams

    def __init__(
        self,
        clients: VaultClients,
        *,
        mount: str = "database",
        verify_dsn: str | None = None,
        settle_timeout: float = 15.0,
    ) -> None:
        self._clients = clients
        self._wrapper = VaultWrapper(clients)
        self.mount = mount.strip("/")
        self._pg = PgRoles(verify_dsn) if verify_dsn else None
        self._settle = settle_timeout

    @property
    def _vault(self) -> hvac.Client:
        return self._clients.get()

    # ---- helpers -------------------------------------------------------------------------

    def _policy_name(self, role: str) -> str:
        return f"jitaccess-dbcreds-{self.mount.replace('/', '_')}-{role}"

    def _lookup_lease(self, lease_id: str) -> dict | None:
        try:
            return self._vault.sys.read_lease(lease_id)["data"]
        except Exception as e:
            if _lease_gone(e):
                return None
            raise translate(e, "look up the database lease") from e

    def _lookup_token(self, accessor: str | None) -> dict | None:
        return lookup_token(self._vault, accessor, "look up the lease owner token")

    def _revoke_token(self, accessor: str | None) -> bool:
        return revoke_token(self._vault, accessor, "revoke the lease owner token")

    def _discard(self, accessor: str, lease_id: str | None) -> None:
        """Best effort after a failed issue: the token's revocation takes its lease with it."""
        try:
            if lease_id:
                self._vault.sys.revoke_lease(lease_id)
            self._revoke_token(accessor)
        except Exception:
            pass  # clean_up_grant finds the token by grant ID and confirms it gone

    # ---- the port ------------------------------------------------------------------------

    def _read_role(self, role: str) -> dict:
        try:
            return dict(self._vault.secrets.database.read_role(role, mount_point=self.mount)["data"])
        except hv.InvalidPath as e:
            raise ProviderError(
                f"no Vault database role {role!r} at {self.mount}/roles/{role} (or no database engine at {self.mount}/)",
                retryable=False,
            ) from e
        except Exception as e:
            raise translate(e, f"read the database role {role!r}") from e

    def _create_owner(self, grant: ProviderGrant, role: str) -> dict:
        """The grant's owner token (see the module's docstring): its `auth` answer."""
        policy = self._policy_name(role)
        # TTLs are the grant's remaining time at each call (ProviderGrant.ttl_at), never more; an
        # approved extension may move the backstop up to the entitlement's max (see extend)
        ttl = remaining_ttl(grant, datetime.now(UTC))
        max_ttl = max(grant.max_ttl_at(datetime.now(UTC)) or ttl, ttl)
        try:
            self._vault.sys.create_or_update_acl_policy(
                name=policy, policy=f'path "{self.mount}/creds/{role}" {{ capabilities = ["read"] }}\n'
            )
            return dict(
                self._vault.auth.token.create(
                    policies=[policy],
                    no_default_policy=True,
                    renewable=max_ttl > ttl,  # never handed out: only extend() renews it
                    ttl=f"{ttl}s",
                    explicit_max_ttl=f"{max_ttl}s",
                    display_name=grant.grant_id,
                    meta={
                        "grant_id": grant.grant_id,
                        "requester": grant.principal,
                        "role": role,
                        "managed_by": MANAGED_BY,
                    },
                )["auth"]
            )
        except Exception as e:
            raise translate(e, "create the lease owner token") from e

    def _generate_as(self, owner: dict, role: str) -> dict:
        """Database credentials read with the owner token, so their lease belongs to it."""
        as_owner = self._clients.client_for(owner["client_token"])
        try:
            return dict(as_owner.secrets.database.generate_credentials(role, mount_point=self.mount))
        except Exception as e:
            raise translate(e, f"generate database credentials for role {role!r}") from e
        finally:
            as_owner.adapter.close()

    def issue(
        self, grant: ProviderGrant, *, wrap_ttl: timedelta, first_attempt: bool = True
    ) -> tuple[IssuedCredential, WrappedHandover]:
        role = grant_params(VaultDatabaseParams, grant).role
        if not first_attempt:
            # an earlier attempt may have created a user whose reply we never saw: remove it
            for stale in self.list_managed(grant.grant_id):
                self.revoke(stale)
        role_cfg = self._read_role(role)
        owner = self._create_owner(grant, role)
        accessor, lease_id = owner["accessor"], None
        with self.discard_on_failure(lambda: self._discard(accessor, lease_id)):
            creds = self._generate_as(owner, role)
            lease_id = creds["lease_id"]
            now, lease_ttl = self._lease_to_expiry(lease_id, grant, role, role_cfg)
            if ends_late(grant, lease_ttl, datetime.now(UTC)):  # a slow renewal: set it again
                now, lease_ttl = self._lease_to_expiry(lease_id, grant, role, role_cfg)
                if ends_late(grant, lease_ttl, datetime.now(UTC)):
                    raise ProviderError("vault answered too slowly to end the lease at the grant's expiry; retrying")
            data = creds["data"]
            handover = self._wrapper.wrap({"username": data["username"], "password": data["password"]}, wrap_ttl)
        details = {"kind": LEASE_KIND, "mount": self.mount, "role": role, "db": role_cfg.get("db_name")}
        details |= {"username": data["username"], "token_accessor": accessor, "lease_ttl_seconds": lease_ttl}
        expires_at = now + timedelta(seconds=lease_ttl)
        return IssuedCredential(
            provider=self.name, grant_id=grant.grant_id, reference=lease_id, details=details, expires_at=expires_at
        ), handover

    def _lease_to_expiry(self, lease_id: str, grant: ProviderGrant, role: str, role_cfg: dict) -> tuple[datetime, int]:
        """Renew the lease to the grant's remaining time as of this call: (when, lease TTL)."""
        now = datetime.now(UTC)
        ttl = remaining_ttl(grant, now)
        try:
            lease_ttl = int(self._vault.sys.renew_lease(lease_id, increment=ttl)["lease_duration"])
        except Exception as e:
            raise translate(e, "set the database lease's TTL to the grant's expiry") from e
        if lease_ttl < ttl - TTL_SLACK_SECONDS:
            raise ProviderError(
                f"database role {role!r} caps the lease at {lease_ttl}s (max_ttl {role_cfg.get('max_ttl')}s), "
                f"shorter than the grant's {ttl}s: raise the role's max_ttl or lower the "
                "entitlement's max_duration",
                retryable=False,
            )
        return now, lease_ttl

    def extend(self, cred: IssuedCredential, ttl_seconds: int) -> IssuedCredential:
        """An approved extension: renew the owner token (up to its explicit max TTL, the
        entitlement's max) and then the lease (up to the role's max_ttl) to `ttl_seconds` from now."""
        if cred.details.get("kind") != LEASE_KIND:
            raise ProviderError(f"{cred.reference} is not a database lease; it cannot be extended", retryable=False)
        accessor = cred.details.get("token_accessor")
        token = self._lookup_token(accessor)
        if token is None:
            raise ProviderError("the lease's owner token no longer exists: the access has ended", retryable=False)
        if not token.get("renewable"):
            raise ProviderError(
                "this grant was issued without room to extend (the entitlement's max duration was its duration)",
                retryable=False,
            )
        try:
            self._vault.auth.token.renew_accessor(accessor, increment=f"{ttl_seconds}s")
        except Exception as e:
            if _token_gone(e):
                raise ProviderError(
                    "the lease's owner token no longer exists: the access has ended", retryable=False
                ) from e
            raise translate(e, "renew the lease owner token") from e
        token = self._lookup_token(accessor)
        got = int((token or {}).get("ttl") or 0)
        if got < ttl_seconds - TTL_SLACK_SECONDS:
            raise ProviderError(
                f"the owner token can live {got}s more, not {ttl_seconds}s (capped by the entitlement's max duration)",
                retryable=False,
            )
        now = datetime.now(UTC)
        try:
            lease_ttl = int(self._vault.sys.renew_lease(cred.reference, increment=ttl_seconds)["lease_duration"])
        except Exception as e:
            if _lease_gone(e):
                raise ProviderError(
                    f"lease {cred.reference} no longer exists: the access has ended", retryable=False
                ) from e
            raise translate(e, "renew the database lease") from e
        if lease_ttl < ttl_seconds - TTL_SLACK_SECONDS:
            raise ProviderError(
                f"database role {cred.details.get('role')!r} caps the lease at {lease_ttl}s more, not {ttl_seconds}s "
                "(the role's max_ttl counts from issue)",
                retryable=False,
            )
        return cred.model_copy(
            update={
                "expires_at": now + timedelta(seconds=lease_ttl),
                "details": {**cred.details, "lease_ttl_seconds": lease_ttl},
            }
        )

    def verify_active(self, cred: IssuedCredential) -> tuple[bool, str]:
        if cred.details.get("kind") != LEASE_KIND:
            return False, f"{cred.reference} is not a database lease reference (kind {cred.details.get('kind')!r})"
        role = cred.details.get("role")
        prefix = f"{cred.details.get('mount', self.mount)}/creds/{role}/"
        if not cred.reference.startswith(prefix):
            return False, f"lease {cred.reference} is not a lease of role {role!r} ({prefix}…)"
        lease = self._lookup_lease(cred.reference)
        if lease is None:
            return False, f"sys/leases/lookup: invalid lease {cred.reference} (lease does not exist)"
        ttl = int(lease.get("ttl") or 0)
        if ttl <= 0:
            return False, f"sys/leases/lookup: lease {cred.reference} has expired (being revoked)"
        seen = f"sys/leases/lookup: lease live, ttl={ttl}s, expires {lease.get('expire_time')}"
        username = cred.details.get("username")
        if self._pg is None:
            return True, f"{seen}; no PostgreSQL verification DSN configured: confirmed on the Vault lease only"
        row = self._pg.role(str(username))
        if row is None:
            return False, f"{seen}; but pg_roles has no role {username!r}"
        can_login, valid_until = row
        if not can_login:
            return False, f"{seen}; but pg_roles role {username!r} cannot log in"
        if valid_until is not None and valid_until <= datetime.now(UTC):
            return False, f"{seen}; but pg_roles role {username!r} expired at {valid_until.isoformat()}"
        until = valid_until.isoformat() if valid_until else "no expiry"
        return True, f"{seen}; pg_roles: role {username!r} exists, can log in, valid until {until}"

    def revoke(self, cred: IssuedCredential) -> bool:
        """Revoke the lease (Vault runs the role's revocation statements: the user is dropped)
        and the owner token. False when the lease (or, for a listed owner token, the token) was
        already gone: removed by hand, or ended by its TTL."""
        if cred.details.get("kind") == OWNER_KIND:
            return self._revoke_token(cred.reference)
        present = self._lookup_lease(cred.reference) is not None
        if present:
            try:
                self._vault.sys.revoke_lease(cred.reference)  # synchronous: the revocation statements ran
            except Exception as e:
                if not _lease_gone(e):
                    err = translate(e, "revoke the database lease")
                    if isinstance(e, hv.InvalidRequest):  # e.g. the database refused DROP ROLE: retry
                        err.retryable = True
                    raise err from e
        self._revoke_token(cred.details.get("token_accessor"))
        return present

    def verify_revoked(self, cred: IssuedCredential) -> tuple[bool, str]:
        deadline = time.monotonic() + self._settle
        while True:
            gone, seen = self._revoked_once(cred)
            if gone or time.monotonic() >= deadline:
                return gone, seen
            time.sleep(0.25)

    def _revoked_once(self, cred: IssuedCredential) -> tuple[bool, str]:
        if cred.details.get("kind") == OWNER_KIND:
            token = self._lookup_token(cred.reference)
            if token is not None:
                return False, f"lookup-accessor: owner token {cred.reference} still live (ttl={token.get('ttl')}s)"
            seen = "lookup-accessor: owner token gone, so are the leases it obtained"
            if self._pg is None:
                return True, f"{seen}; no PostgreSQL verification DSN configured: confirmed on Vault alone"
            left = self._pg.roles_containing(cred.grant_id)
            if left:
                return False, f"{seen}; but pg_roles still has {left}"
            return True, f"{seen}; pg_roles: no role whose name contains {cred.grant_id}"
        lease = self._lookup_lease(cred.reference)
        if lease is not None:
            return False, f"sys/leases/lookup: lease {cred.reference} still exists (ttl={lease.get('ttl')}s)"
        seen = f"sys/leases/lookup: invalid lease {cred.reference} (lease no longer exists)"
        token = self._lookup_token(cred.details.get("token_accessor"))
        if token is not None:
            return False, f"{seen}; but its owner token is still live (ttl={token.get('ttl')}s)"
        username = cred.details.get("username")
        if self._pg is None:
            return True, f"{seen}; no PostgreSQL verification DSN configured: confirmed on the Vault lease only"
        if self._pg.role(str(username)) is not None:
            return False, f"{seen}; but pg_roles still has role {username!r}"
        return True, f"{seen}; pg_roles: role {username!r} is gone"

    def list_managed(self, grant_id: str | None = None) -> list[IssuedCredential]:
        """The per-grant owner tokens (each holds its grant's lease): found by meta, since
        Vault cannot list leases by requester."""

        def details(accessor: str, data: dict) -> dict:
            meta = data["meta"]
            owner = {"requester": meta.get("requester"), "token_accessor": accessor}
            return {"kind": OWNER_KIND, "mount": self.mount, "role": meta.get("role"), **owner}

        return managed_token_credentials(self._clients, self.name, MANAGED_BY, grant_id, details)


__all__ = ["LEASE_KIND", "MANAGED_BY", "OWNER_KIND", "PgRoles", "VaultDatabaseCredentialsProvider", "plain_dsn"]
