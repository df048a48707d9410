"""Vault/OpenBao tokens carrying an entitlement's policies, handed over response-wrapped.

Revocation uses the wrapped token's accessor (revoke-accessor) and is confirmed
by lookup-accessor failing. The token's TTL and explicit max TTL equal the
grant's remaining time: a backstop that ends access even if the pipeline is dead.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import hvac
import requests
from hvac import exceptions as hv

from jitaccess.domain.credentials import IssuedCredential, ProviderGrant, WrappedHandover
from jitaccess.domain.provider_params import VaultTokenParams
from jitaccess.providers.base import (
    PerGrantCredentials,
    ProviderError,
    ends_late,
    grant_params,
    pace,
    read_shared,
    remaining_ttl,
)

MANAGED_BY = "jitaccess"


def _gone(e: Exception) -> bool:
    # lookup/revoke of an unknown accessor answers 400 "invalid accessor"; a token that expires
    # between our lookup and revoke-accessor answers 400 "token not found" (InvalidRequest)
    msg = str(e).lower()
    return (
        isinstance(e, hv.InvalidRequest)
        and ("invalid accessor" in msg or "token not found" in msg)
        or isinstance(e, hv.InvalidPath)
    )


def translate(e: Exception, action: str) -> ProviderError:
    """hvac/requests failure -> ProviderError; permission/config problems are not retryable."""
    if isinstance(e, (hv.Forbidden, hv.Unauthorized)):
        return ProviderError(f"vault refused to {action}: permission denied ({e.__class__.__name__})", retryable=False)
    if isinstance(e, hv.InvalidRequest):
        return ProviderError(f"vault rejected the request to {action}: {e}", retryable=False)
    if isinstance(e, requests.exceptions.RequestException):
        return ProviderError(f"vault unreachable while trying to {action}: {e.__class__.__name__}")
    return ProviderError(f"vault error while trying to {action}: {e.__class__.__name__}: {e}")


def lookup_token(vault: hvac.Client, accessor: str | None, what: str = "look up the token accessor") -> dict | None:
    """lookup-accessor; None when the token does not exist (any more)."""
    if not accessor:
        return None
    try:
        return vault.auth.token.lookup_accessor(accessor)["data"]
    except Exception as e:
        if _gone(e):
            return None
        raise translate(e, what) from e


def revoke_token(vault: hvac.Client, accessor: str | None, what: str = "revoke the token accessor") -> bool:
    """revoke-accessor: True when this call removed the token, False when it was already gone
    (removed by hand, ended by its TTL). One call, no lookup first: OpenBao (and Vault, by what
    its clients expect) answers a live token 204 and an unknown accessor 200 with the warning
    "No token found with this accessor", which tells the two apart for the evidence
    (`already_gone`). With the read-back, a revoke makes the floor's two calls."""
    if not accessor:
        return False
    try:
        resp = vault.auth.token.revoke_accessor(accessor)
    except Exception as e:
        if _gone(e):
            return False
        raise translate(e, what) from e
    warnings = resp.get("warnings") if isinstance(resp, dict) else None
    return not any("no token found" in str(w).lower() for w in warnings or [])


_Packed = tuple[tuple[tuple[str, str], ...], tuple[str, ...]]  # (metadata items, policies)


def _unpack(packed: _Packed) -> dict:
    meta, policies = packed
    return {"meta": dict(meta), "policies": list(policies)}


class TokenFacts:
    """What never changes about a Vault token once it exists, its metadata and policies, by
    accessor: a listing looks up only the accessors it has not seen before. Whether a token still
    lives always comes from a fresh accessor list, never from here. Kept per process (VaultClients),
    pruned to the accessors of the last listing, and held as tuples of strings, which the cyclic
    collector stops tracking once it has looked at them (twice, for the nested ones): as dicts and
    lists they were three more objects per held grant for every full collection to walk
    (bench/README.md, issue 15). Callers get fresh dicts, so none can change what is kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._facts: dict[str, _Packed] = {}

    def get(self, accessor: str) -> dict | None:
        with self._lock:
            packed = self._facts.get(accessor)
        return None if packed is None else _unpack(packed)

    def remember(self, accessor: str, lookup: dict) -> dict:
        packed = (tuple((lookup.get("meta") or {}).items()), tuple(lookup.get("policies") or ()))
        with self._lock:
            self._facts[accessor] = packed
        return _unpack(packed)

    def keep_only(self, accessors: set[str]) -> None:
        with self._lock:
            self._facts = {a: f for a, f in self._facts.items() if a in accessors}


def live_tokens(clients: VaultClients) -> list[tuple[str, dict]] | None:
    """Every live token as (accessor, its metadata and policies). Vault has no query by metadata,
    so this lists every accessor (sudo) and looks up each one not seen before (TokenFacts): one
    call per new token. None when listing is forbidden. Within a reconciliation scan
    (`shared_reads`) the Vault providers share one pass."""
    vault = clients.get()
    try:
        accessors = vault.adapter.list("/v1/auth/token/accessors")["data"]["keys"]
    except hv.Forbidden:
        return None
    except hv.InvalidPath:
        return []
    except Exception as e:
        raise translate(e, "list token accessors") from e
    found = []
    for acc in accessors:
        facts = clients.facts.get(acc)
        if facts is None:
            pace()  # a reconciliation scan's lookups are paced (providers.base.paced)
            data = lookup_token(vault, acc)  # None: expired or revoked between list and lookup
            if data is None:
                continue
            facts = clients.facts.remember(acc, data)
        found.append((acc, facts))
    clients.facts.keep_only(set(accessors))
    return found


def tagged_tokens(clients: VaultClients, **meta: str | None) -> list[tuple[str, dict]] | None:
    """Live tokens whose metadata matches every given key (None values are not compared), as
    (accessor, {"meta", "policies"}). One call per new token (`live_tokens`), so it runs on
    clean-up and reconciliation paths, never per grant on the hot path. None when listing is
    forbidden."""
    tokens = read_shared(("vault live tokens", clients), lambda: live_tokens(clients))
    if tokens is None:
        return None
    wanted = {k: v for k, v in meta.items() if v is not None}
    return [(acc, data) for acc, data in tokens if all(data["meta"].get(k) == v for k, v in wanted.items())]


def managed_token_credentials(
    clients: VaultClients, provider: str, managed_by: str, grant_id: str | None, details: Callable[[str, dict], dict]
) -> list[IssuedCredential]:
    """The live tokens a provider tagged (`managed_by`, and `grant_id` when given) as its
    credentials, each with `details(accessor, {"meta", "policies"})`; not retryable when listing
    is forbidden."""
    tokens = tagged_tokens(clients, managed_by=managed_by, grant_id=grant_id)
    if tokens is None:
        raise ProviderError(
            "vault refused to list token accessors (needs sudo on auth/token/accessors)", retryable=False
        )
    return [
        IssuedCredential(
            provider=provider, grant_id=data["meta"].get("grant_id", ""), reference=acc, details=details(acc, data)
        )
        for acc, data in tokens
    ]


def vault_session(addr: str) -> requests.Session:
    """A requests session that reads the environment once, not on every call. With requests'
    default (`trust_env`) each request scans os.environ for proxies and looks for a .netrc: ~15 % of
    the worker's CPU in an hvac call (py-spy, a reconciliation over 2,000 grants). Proxies for
    `addr` and the CA bundle (VAULT_CACERT, VAULT_CAPATH, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, in
    hvac's then requests' order) are taken as they are when the client is made; .netrc is not used
    (Vault authenticates by its token header)."""
    session = requests.Session()
    session.trust_env = False
    session.proxies = requests.utils.get_environ_proxies(addr)
    env = os.environ.get
    session.verify = (
        env("VAULT_CACERT") or env("VAULT_CAPATH") or env("REQUESTS_CA_BUNDLE") or env("CURL_CA_BUNDLE") or True
    )
    return session


class VaultClients:
    """One hvac client per thread (activities run in a thread pool)."""

    def __init__(self, addr: str, token: str, timeout: float = 10) -> None:
        self.addr, self._token, self._timeout = addr, token, timeout
        self._local = threading.local()
        self.facts = TokenFacts()  # shared by every Vault provider built on these clients

    def get(self) -> hvac.Client:
        c = getattr(self._local, "client", None)
        if c is None:
            c = self._local.client = self.client_for(self._token)
        return c

    def client_for(self, token: str) -> hvac.Client:
        """A client of its own for `token` (the caller closes it)."""
        return hvac.Client(url=self.addr, token=token, timeout=self._timeout, session=vault_session(self.addr))


class VaultTokenProvider(PerGrantCredentials):
    name = "vault_token"
    params_model = VaultTokenParams

    def __init__(self, clients: VaultClients) -> None:
        self._clients = clients

    @property
    def _vault(self) -> hvac.Client:
        return self._clients.get()

    def issue(
        self, grant: ProviderGrant, *, wrap_ttl: timedelta, first_attempt: bool = True
    ) -> tuple[IssuedCredential, WrappedHandover]:
        policies = sorted(grant_params(VaultTokenParams, grant).policies)
        if not first_attempt:
            # an earlier attempt may have created a token whose reply we never saw: remove it
            for stale in self.list_managed(grant.grant_id):
                self.revoke(stale)
        # the TTL is the grant's remaining time at this very call (never counted from a later start)
        now = datetime.now(UTC)
        ttl = remaining_ttl(grant, now)
        # renewable only by us (renew-accessor, for an approved extension): without the default
        # policy the holder cannot renew-self, and explicit_max_ttl caps the cumulative duration
        max_ttl = max(grant.max_ttl_at(now) or ttl, ttl)
        try:
            resp = self._vault.auth.token.create(
                policies=policies,
                no_default_policy=True,
                renewable=True,
                ttl=f"{ttl}s",
                explicit_max_ttl=f"{max_ttl}s",
                meta={"grant_id": grant.grant_id, "requester": grant.principal, "managed_by": MANAGED_BY},
                display_name=f"jit-{grant.principal}",
                wrap_ttl=f"{int(wrap_ttl.total_seconds())}s",
            )
        except Exception as e:
            raise translate(e, "create the token") from e
        wrap = resp["wrap_info"]
        if ends_late(grant, ttl, datetime.now(UTC)):
            # a slow call (OpenBao paused, say) may have started the TTL late: pull it in to the expiry
            now, ttl = self._pull_in(wrap["wrapped_accessor"], grant)
        cred = IssuedCredential(
            provider=self.name,
            grant_id=grant.grant_id,
            reference=wrap["wrapped_accessor"],
            details={"policies": policies, "ttl_seconds": ttl, "kind": "vault token accessor"},
            expires_at=now + timedelta(seconds=ttl),
        )
        handover = WrappedHandover(wrapping_token=wrap["token"], expires_at=now + timedelta(seconds=int(wrap["ttl"])))
        return cred, handover

    def _pull_in(self, accessor: str, grant: ProviderGrant) -> tuple[datetime, int]:
        """Renew the new token to the grant's remaining time (a renewal sets the TTL from now, up or
        down). Retryable ProviderError when that call is slow too: the retry sweeps this token."""
        now = datetime.now(UTC)
        ttl = remaining_ttl(grant, now)
        try:
            self._vault.auth.token.renew_accessor(accessor, increment=f"{ttl}s")
        except Exception as e:
            raise translate(e, "pull the new token's TTL in to the grant's expiry") from e
        if ends_late(grant, ttl, datetime.now(UTC)):
            raise ProviderError("vault answered too slowly to set the token's TTL to the grant's expiry; retrying")
        return now, ttl

    def extend(self, cred: IssuedCredential, ttl_seconds: int) -> IssuedCredential:
        try:
            self._vault.auth.token.renew_accessor(cred.reference, increment=f"{ttl_seconds}s")
        except Exception as e:
            raise translate(e, "renew the token accessor") from e
        data = self._lookup(cred.reference)
        if data is None:
            raise ProviderError("token vanished while extending it", retryable=False)
        got = int(data.get("ttl") or 0)
        if got < ttl_seconds - 5:
            raise ProviderError(
                f"vault granted {got}s, not {ttl_seconds}s (the token's explicit max TTL caps it)", retryable=False
            )
        return cred.model_copy(
            update={
                "expires_at": datetime.now(UTC) + timedelta(seconds=got),
                "details": {**cred.details, "ttl_seconds": got},
            }
        )

    def _lookup(self, accessor: str) -> dict | None:
        return lookup_token(self._vault, accessor)

    def verify_active(self, cred: IssuedCredential) -> tuple[bool, str]:
        data = self._lookup(cred.reference)
        if data is None:
            return False, "lookup-accessor: invalid accessor (token does not exist)"
        policies = sorted(p for p in data.get("policies") or [] if p != "default")
        meta = data.get("meta") or {}
        if meta.get("grant_id") != cred.grant_id:
            return False, f"token meta grant_id is {meta.get('grant_id')!r}, expected {cred.grant_id}"
        if policies != sorted(cred.details.get("policies", [])):
            return False, f"token policies {policies} differ from the entitlement's {cred.details.get('policies')}"
        return True, f"lookup-accessor: token live, policies={policies}, ttl={data.get('ttl')}s, grant_id matches"

    def revoke(self, cred: IssuedCredential) -> bool:
        return revoke_token(self._vault, cred.reference)

    def verify_revoked(self, cred: IssuedCredential) -> tuple[bool, str]:
        data = self._lookup(cred.reference)
        if data is None:
            return True, "lookup-accessor: invalid accessor (token no longer exists)"
        return False, f"lookup-accessor: token still live (ttl={data.get('ttl')}s)"

    def list_managed(self, grant_id: str | None = None) -> list[IssuedCredential]:
        def details(accessor: str, data: dict) -> dict:
            policies = sorted(p for p in data.get("policies") or [] if p != "default")
            return {"policies": policies, "requester": data["meta"].get("requester"), "kind": "vault token accessor"}

        return managed_token_credentials(self._clients, self.name, MANAGED_BY, grant_id, details)


class VaultWrapper:
    """Hands a secret over response-wrapped (sys/wrapping/wrap): single use, short TTL.
    Providers whose credential is not a Vault token (STS keys, DB passwords, secret-IDs) use it."""

    def __init__(self, clients: VaultClients) -> None:
        self._clients = clients

    def wrap(self, payload: dict, ttl: timedelta) -> WrappedHandover:
        now = datetime.now(UTC)
        try:
            resp = self._clients.get().sys.wrap(payload=payload, ttl=f"{int(ttl.total_seconds())}s")
        except Exception as e:
            raise translate(e, "response-wrap the credential") from e
        info = resp["wrap_info"]
        return WrappedHandover(wrapping_token=info["token"], expires_at=now + timedelta(seconds=int(info["ttl"])))
