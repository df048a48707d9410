"""AppRole secret-IDs for non-human identities (a service logs in with role-ID + secret-ID).

Entitlement params: `{role_name: payments-api, policies: [jit-payments-read]}`. Each
entitlement has its own per-service AppRole: issue() writes the role with the entitlement's
`token_policies` and bounded token lifetimes (token_ttl / token_max_ttl from settings), then
creates a secret-ID with TTL = the grant's remaining time (OpenBao honours a per-secret-ID
`ttl`; it is refused when the role has a shorter `secret_id_ttl`) and metadata
`{grant_id, requester, managed_by}`. `{role_id, secret_id}` go to the requester only
response-wrapped (VaultWrapper); the reference is the secret-ID accessor.

Read-back: verify_active looks the accessor up (metadata grant_id matches, not expired, the
role still carries the entitlement's policies); revoke destroys the secret-ID by accessor;
verify_revoked confirms the accessor lookup fails ("failed to find accessor entry").

Residual window: destroying a secret-ID does not revoke tokens a service already obtained by
logging in with it; those live until their own TTL (token_ttl, renewable up to token_max_ttl
from login). OpenBao copies the secret-ID's metadata onto those tokens (meta grant_id, role_name),
so with `revoke_login_tokens` (the default) revoke() also finds them among the token accessors
and revokes them, and verify_revoked confirms none is left: no residual window. (The role is
written with token_type=service for this: batch tokens have no accessor and cannot be revoked.)
A secret-ID cannot be renewed, so extend() is refused: an extension needs a new grant. When the worker's
token may not list token accessors (sudo on auth/token/accessors), or the sweep is turned off,
the residual window stays, and verify_revoked's description says so and how long it can be.

`managed_by` is `jitaccess:vault_approle`, not `jitaccess`: the login tokens inherit it and the
vault_token provider must not mistake them for its own tokens.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import hvac
from hvac import exceptions as hv

from jitaccess.domain.credentials import IssuedCredential, ProviderGrant, WrappedHandover
from jitaccess.domain.provider_params import VaultAppRoleParams
from jitaccess.providers.base import PerGrantCredentials, ProviderError, ends_late, grant_params, remaining_ttl
from jitaccess.providers.vault_token import VaultClients, VaultWrapper, tagged_tokens, translate

MANAGED_BY = "jitaccess:vault_approle"
KIND = "approle secret-id accessor"


def _secret_id_gone(e: Exception) -> bool:
    # unknown accessor: 404 on lookup, 500 "failed to find accessor entry" on destroy;
    # a deleted role: 500 "role ... does not exist" (its secret-IDs went with it)
    text = str(e).lower()
    return isinstance(e, hv.InvalidPath) or (
        isinstance(e, (hv.InternalServerError, hv.InvalidRequest))
        and ("failed to find accessor entry" in text or "does not exist" in text)
    )


def _parse_time(value: str | None) -> datetime | None:
    if not value or value.startswith("0001-01-01"):
        return None
    # OpenBao prints nanoseconds; Python reads at most microseconds
    value = re.sub(r"(\.\d{6})\d+", r"\1", value.replace("Z", "+00:00"))
    return datetime.fromisoformat(value)


class VaultAppRoleSecretIdProvider(PerGrantCredentials):
    name = "vault_approle"
    params_model = VaultAppRoleParams

    def __init__(
        self,
        clients: VaultClients,
        *,
        mount: str = "approle",
        token_ttl: timedelta = timedelta(minutes=15),
        token_max_ttl: timedelta = timedelta(hours=1),
        revoke_login_tokens: bool = True,
    ) -> None:
        if token_max_ttl < token_ttl:
            raise ValueError("token_max_ttl must be at least token_ttl")
        self._clients = clients
        self._wrapper = VaultWrapper(clients)
        self.mount = mount.strip("/")
        self.token_ttl = int(token_ttl.total_seconds())
        self.token_max_ttl = int(token_max_ttl.total_seconds())
        self.revoke_login_tokens = revoke_login_tokens

    @property
    def _vault(self) -> hvac.Client:
        return self._clients.get()

    def _path(self, role: str, rest: str = "") -> str:
        return f"/v1/auth/{self.mount}/role/{role}{rest}"

    # ---- helpers -------------------------------------------------------------------------

    def _lookup(self, role: str, accessor: str) -> dict | None:
        try:
            resp = self._vault.adapter.post(
                self._path(role, "/secret-id-accessor/lookup"), json={"secret_id_accessor": accessor}
            )
        except Exception as e:
            if _secret_id_gone(e):
                return None
            raise translate(e, "look up the secret-ID accessor") from e
        return (resp or {}).get("data") if isinstance(resp, dict) else None

    def _role_policies(self, role: str) -> list[str] | None:
        try:
            data = self._vault.auth.approle.read_role(role, mount_point=self.mount)["data"]
        except Exception as e:
            if isinstance(e, hv.InvalidPath):
                return None
            raise translate(e, f"read the AppRole {role!r}") from e
        return sorted(data.get("token_policies") or [])

    def _login_tokens(self, cred: IssuedCredential) -> list[str] | None:
        """Accessors of live tokens minted by logging in with this grant's secret-ID
        (they carry its metadata); None when the token accessors may not be listed."""
        tokens = tagged_tokens(
            self._clients, managed_by=MANAGED_BY, grant_id=cred.grant_id, role_name=cred.details.get("role_name")
        )
        return None if tokens is None else [acc for acc, _ in tokens]

    def _residual(self) -> str:
        return (
            f"residual window: tokens a service already obtained by logging in with this secret-ID are not "
            f"revoked and live until their own TTL ({self.token_ttl}s, renewable up to {self.token_max_ttl}s from login)"
        )

    # ---- the port ------------------------------------------------------------------------

    def _credential(
        self, grant_id: str, accessor: str, role: str, policies: list[str], expires_at: datetime | None, **more: object
    ) -> IssuedCredential:
        details = {"kind": KIND, "mount": self.mount, "role_name": role, "policies": policies, **more}
        return IssuedCredential(
            provider=self.name, grant_id=grant_id, reference=accessor, details=details, expires_at=expires_at
        )

    def _write_role(self, role: str, policies: list[str]) -> str:
        """Create or update the entitlement's AppRole; its role-ID."""
        try:
            self._vault.auth.approle.create_or_update_approle(
                role,
                token_policies=policies,
                token_ttl=f"{self.token_ttl}s",
                token_max_ttl=f"{self.token_max_ttl}s",
                token_type="service",  # batch tokens have no accessor: they could be neither found nor revoked
                mount_point=self.mount,
            )
            return str(self._vault.auth.approle.read_role_id(role, mount_point=self.mount)["data"]["role_id"])
        except hv.InvalidPath as e:
            raise ProviderError(f"no AppRole auth method mounted at auth/{self.mount}/", retryable=False) from e
        except Exception as e:
            raise translate(e, f"write the AppRole {role!r}") from e

    def _create_secret_id(self, grant: ProviderGrant, role: str, ttl: int) -> dict:
        meta = {"grant_id": grant.grant_id, "requester": grant.principal, "managed_by": MANAGED_BY}
        try:
            return dict(
                self._vault.adapter.post(
                    self._path(role, "/secret-id"), json={"metadata": json.dumps(meta), "ttl": f"{ttl}s"}
                )["data"]
            )
        except Exception as e:
            raise translate(e, f"create a secret-ID for the AppRole {role!r}") from e

    def issue(
        self, grant: ProviderGrant, *, wrap_ttl: timedelta, first_attempt: bool = True
    ) -> tuple[IssuedCredential, WrappedHandover]:
        params = grant_params(VaultAppRoleParams, grant)
        role, policies = params.role_name, sorted(params.policies)
        if not first_attempt:
            # an earlier attempt may have created a secret-ID whose reply we never saw: remove it
            for stale in self._scan([role], grant.grant_id):
                self.revoke(stale)
        role_id = self._write_role(role, policies)
        now = datetime.now(UTC)
        wanted = remaining_ttl(grant, now)  # the grant's remaining time at this call, rounded down
        resp = self._create_secret_id(grant, role, wanted)
        accessor = resp["secret_id_accessor"]
        with self.discard_on_failure(lambda: self._destroy(role, accessor)):  # else clean_up_grant finds it by metadata
            ttl = int(resp.get("secret_id_ttl") or 0)
            if ttl != wanted:
                raise ProviderError(
                    f"OpenBao gave the secret-ID a TTL of {ttl}s instead of the grant's {wanted}s",
                    retryable=False,
                )
            if ends_late(grant, ttl, datetime.now(UTC)):
                # a slow call may have started the TTL late, and a secret-ID's TTL cannot be moved:
                # destroy it and let the activity retry with a fresh one
                raise ProviderError("vault answered too slowly to end the secret-ID at the grant's expiry; retrying")
            handover = self._wrapper.wrap({"role_id": role_id, "secret_id": resp["secret_id"]}, wrap_ttl)
        lifetimes = {"secret_id_ttl": ttl, "token_ttl": self.token_ttl, "token_max_ttl": self.token_max_ttl}
        expires_at = now + timedelta(seconds=ttl)
        return self._credential(grant.grant_id, accessor, role, policies, expires_at, **lifetimes), handover

    def verify_active(self, cred: IssuedCredential) -> tuple[bool, str]:
        role = str(cred.details.get("role_name"))  # a path segment: formatted into the URL either way
        data = self._lookup(role, cred.reference)
        if data is None:
            return False, f"secret-id-accessor/lookup on {role}: no such secret-ID (accessor {cred.reference})"
        meta = data.get("metadata") or {}
        if meta.get("grant_id") != cred.grant_id:
            return False, f"secret-ID metadata grant_id is {meta.get('grant_id')!r}, expected {cred.grant_id}"
        expires = _parse_time(data.get("expiration_time"))
        if expires is not None and expires <= datetime.now(UTC):
            return False, f"secret-ID expired at {expires.isoformat()}"
        policies = self._role_policies(role)
        if policies is None:
            return False, f"AppRole {role!r} no longer exists"
        if policies != sorted(cred.details.get("policies") or []):
            return (
                False,
                f"AppRole {role!r} carries policies {policies}, not the entitlement's {cred.details.get('policies')}",
            )
        until = expires.isoformat() if expires else "no expiry"
        return (
            True,
            f"secret-id-accessor/lookup on {role}: secret-ID live until {until}, grant_id matches, role policies={policies}",
        )

    def _destroy(self, role: str, accessor: str) -> None:
        try:
            self._vault.adapter.post(
                self._path(role, "/secret-id-accessor/destroy"), json={"secret_id_accessor": accessor}
            )
        except Exception as e:
            if _secret_id_gone(e):
                return
            raise translate(e, "destroy the secret-ID") from e

    def revoke(self, cred: IssuedCredential) -> bool:
        """Destroy the secret-ID by accessor and (with revoke_login_tokens) revoke the tokens
        already minted with it. False when there was nothing left to remove."""
        role = str(cred.details.get("role_name"))  # a path segment: formatted into the URL either way
        present = self._lookup(role, cred.reference) is not None
        if present:
            self._destroy(role, cred.reference)
        swept = 0
        if self.revoke_login_tokens:
            for acc in self._login_tokens(cred) or []:
                try:
                    self._vault.auth.token.revoke_accessor(acc)
                    swept += 1
                except Exception as e:
                    if not isinstance(e, (hv.InvalidRequest, hv.InvalidPath)):
                        raise translate(e, "revoke a token minted with the secret-ID") from e
        return present or swept > 0

    def verify_revoked(self, cred: IssuedCredential) -> tuple[bool, str]:
        role = str(cred.details.get("role_name"))  # a path segment: formatted into the URL either way
        data = self._lookup(role, cred.reference)
        if data is not None:
            return False, f"secret-id-accessor/lookup on {role}: secret-ID {cred.reference} still exists"
        seen = f"secret-id-accessor/lookup on {role}: failed to find accessor entry (secret-ID no longer exists)"
        if not self.revoke_login_tokens:
            return True, f"{seen}; {self._residual()}"
        tokens = self._login_tokens(cred)
        if tokens is None:
            return True, f"{seen}; token accessors may not be listed, so {self._residual()}"
        if tokens:
            return False, f"{seen}; but {len(tokens)} token(s) minted with it are still live"
        return True, f"{seen}; no live token minted with it (login tokens swept): no residual window"

    def _scan(self, roles: list[str], grant_id: str | None) -> list[IssuedCredential]:
        found = []
        for role in roles:
            try:
                accessors = self._vault.adapter.list(self._path(role, "/secret-id"))["data"]["keys"]
            except Exception as e:
                if isinstance(e, hv.InvalidPath):
                    continue
                raise translate(e, f"list the secret-IDs of AppRole {role!r}") from e
            policies = None
            for acc in accessors:
                data = self._lookup(role, acc)
                if data is None:
                    continue
                meta = data.get("metadata") or {}
                if meta.get("managed_by") != MANAGED_BY or (grant_id and meta.get("grant_id") != grant_id):
                    continue
                if policies is None:
                    policies = self._role_policies(role) or []
                expires = _parse_time(data.get("expiration_time"))
                grant = meta.get("grant_id", "")
                found.append(self._credential(grant, acc, role, policies, expires, requester=meta.get("requester")))
        return found

    def list_managed(self, grant_id: str | None = None) -> list[IssuedCredential]:
        """Secret-IDs tagged by us, across the mount's AppRoles (their metadata names the grant)."""
        try:
            roles = self._vault.adapter.list(f"/v1/auth/{self.mount}/role")["data"]["keys"]
        except Exception as e:
            if isinstance(e, hv.InvalidPath):
                return []
            raise translate(e, "list the AppRoles") from e
        return self._scan(roles, grant_id)
