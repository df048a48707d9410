"""Sign-in for the API: bearer JWTs from the OIDC issuers in `JITACCESS_OIDC_ISSUERS`.

A token is accepted when its `iss` and `aud` match a configured issuer entry
(jitaccess.config.oidc.OidcIssuer), its header's algorithm is on that entry's allow-list
(public-key algorithms only: never `none`, never HMAC), it verifies against a key from the
issuer's JWKS (found by OIDC discovery), and `exp`, `nbf` and `iat` hold within the configured
clock skew. The principal's ID and groups come from the configured claims; its kind (person or
workload) from the entry, never from the token. The token itself is never kept: the principal
carries an `AuthContext` with a hash of its `jti` (or of the token), which is how every decision
records who authenticated and how.

Keys: each issuer's JWKS is cached for `oidc_jwks_ttl`. A token whose `kid` is not in the cache
makes the validator fetch the JWKS again (at most once per `oidc_jwks_min_refresh`), so a key the
issuer rotated in is picked up at once. When the issuer cannot be reached, tokens signed with keys
already cached keep working until that cache entry expires; anything needing a fetch fails closed
with 503 `idp_unavailable`. The API fetches every issuer's keys once when it starts (`prefetch`,
jitaccess.api.warmup), so its first request does not wait for discovery; an issuer that cannot be
reached then is logged and left to the first request that needs it. Every refusal is 401 with `WWW-Authenticate: Bearer error="invalid_token"`
and a description naming the problem, never key material or the token's contents.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import jwt
import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from jitaccess.config.oidc import OidcIssuer
from jitaccess.domain.principals import ActorKind, AuthContext, Principal

bearer = HTTPBearer(auto_error=False, description="an ID token from a configured OIDC issuer")
MAX_TOKEN_LENGTH = 16 * 1024
REALM = "jitaccess"
log = structlog.get_logger("jitaccess.auth")


class AuthProblem(Exception):
    """The bearer token is refused (401). `problem` is a stable code, `message` says why in words."""

    def __init__(self, problem: str, message: str) -> None:
        super().__init__(message)
        self.problem, self.message = problem, message


class IdpUnavailable(Exception):
    """The issuer's discovery document or keys could not be fetched when they were needed (503)."""

    def __init__(self, issuer: str, message: str) -> None:
        super().__init__(message)
        self.issuer, self.message = issuer, message


@dataclass
class _KeySet:
    keys: dict[str | None, tuple[jwt.PyJWK, str | None]] = field(default_factory=dict)  # kid -> (key, its alg)
    fetched_at: float | None = None  # monotonic time of the last successful fetch
    attempted_at: float | None = None  # ... of the last attempt, successful or not
    missed_at: float | None = None  # ... of the last fetch made because a token named an unknown kid
    failure: IdpUnavailable | None = None  # why the last attempt failed (None: it did not)
    jwks_uri: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _ts(claims: Mapping[str, Any], name: str) -> datetime | None:
    v = claims.get(name)
    if isinstance(v, int | float) and not isinstance(v, bool):
        return datetime.fromtimestamp(v, UTC)
    return None


def _strings(v: Any) -> tuple[str, ...] | None:
    """A list of strings, or one string of space/comma separated values; None if neither."""
    if isinstance(v, str):
        return tuple(x for x in v.replace(",", " ").split() if x)
    if isinstance(v, list | tuple) and all(isinstance(x, str) for x in v):
        return tuple(v)
    return None


def _claim_path(claims: Mapping[str, Any], name: str) -> Any:
    """A claim by name, or by a dotted path into nested objects (Keycloak: `realm_access.roles`)."""
    if name in claims:
        return claims[name]
    cur: Any = claims
    for part in name.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


class TokenValidator:
    """Validates bearer JWTs against the configured issuers; `principal()` is what the API uses."""

    def __init__(
        self,
        issuers: list[OidcIssuer],
        *,
        clock_skew: float = 60,
        jwks_ttl: float = 600,
        min_refresh: float = 5,
        http_timeout: float = 5,
        transport: httpx.AsyncBaseTransport | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuers = list(issuers)
        self.clock_skew, self.jwks_ttl, self.min_refresh = clock_skew, jwks_ttl, min_refresh
        self.http_timeout, self.transport, self.monotonic = http_timeout, transport, monotonic
        self._sets: dict[str, _KeySet] = {}
        self.fetches = 0  # JWKS fetches made (tests and metrics)

    # -- keys ---------------------------------------------------------------------------
    def _set_for(self, entry: OidcIssuer) -> _KeySet:
        return self._sets.setdefault(entry.jwks_uri or entry.discovery, _KeySet())

    async def _get_json(self, client: httpx.AsyncClient, url: str, entry: OidcIssuer) -> dict[str, Any]:
        try:
            r = await client.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as e:
            raise IdpUnavailable(
                entry.issuer, f"identity provider {entry.label} is unreachable ({type(e).__name__})"
            ) from None
        if r.status_code != 200:
            raise IdpUnavailable(entry.issuer, f"identity provider {entry.label} answered {r.status_code} for {url}")
        try:
            body = r.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise IdpUnavailable(entry.issuer, f"identity provider {entry.label} sent no JSON object at {url}")
        return body

    async def _fetch(self, entry: OidcIssuer, ks: _KeySet) -> None:
        ks.attempted_at = self.monotonic()
        try:
            await self._fetch_keys(entry, ks)
        except IdpUnavailable as e:
            ks.failure = e
            raise
        ks.failure = None

    async def _fetch_keys(self, entry: OidcIssuer, ks: _KeySet) -> None:
        async with httpx.AsyncClient(timeout=self.http_timeout, transport=self.transport) as client:
            uri = entry.jwks_uri or ks.jwks_uri
            if uri is None:
                doc = await self._get_json(client, entry.discovery, entry)
                if doc.get("issuer") != entry.issuer:
                    raise IdpUnavailable(
                        entry.issuer,
                        f"the discovery document of {entry.label} names issuer {str(doc.get('issuer'))[:200]!r}, "
                        "not the configured one: check JITACCESS_OIDC_ISSUERS",
                    )
                if not isinstance(doc.get("jwks_uri"), str):
                    raise IdpUnavailable(entry.issuer, f"the discovery document of {entry.label} has no jwks_uri")
                uri = ks.jwks_uri = doc["jwks_uri"]
            data = await self._get_json(client, uri, entry)
        self.fetches += 1
        keys: dict[str | None, tuple[jwt.PyJWK, str | None]] = {}
        for raw in data.get("keys") or []:
            if not isinstance(raw, dict) or raw.get("use", "sig") != "sig" or raw.get("kty") == "oct":
                continue  # not a signing key, or a symmetric one (a public JWKS never holds one legitimately)
            try:
                k = jwt.PyJWK(raw)
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                continue  # a key type or curve this library cannot use: skipped, like any JWKS client
            keys[raw.get("kid")] = (k, raw.get("alg"))
        if not keys:
            raise IdpUnavailable(entry.issuer, f"the key set of {entry.label} has no usable signing key")
        ks.keys, ks.fetched_at = keys, self.monotonic()

    async def _key(self, entry: OidcIssuer, kid: str | None) -> tuple[jwt.PyJWK, str | None]:
        ks = self._set_for(entry)
        if ks.fetched_at is not None and self.monotonic() - ks.fetched_at < self.jwks_ttl and kid in ks.keys:
            return ks.keys[kid]  # the common case: no lock, so a slow fetch never holds up cached keys
        async with ks.lock:  # one fetch at a time per issuer; waiters see its result
            now = self.monotonic()
            fresh = ks.fetched_at is not None and now - ks.fetched_at < self.jwks_ttl
            if fresh and kid in ks.keys:
                return ks.keys[kid]
            if fresh:  # an unknown kid: maybe a key rotated in; ask again, but not for every made-up kid
                if ks.missed_at is None or now - ks.missed_at >= self.min_refresh:
                    ks.missed_at = now
                    await self._fetch(entry, ks)  # IdpUnavailable: fail closed
                elif ks.failure is not None:
                    raise ks.failure
            elif ks.failure is not None and ks.attempted_at is not None and now - ks.attempted_at < self.min_refresh:
                raise ks.failure  # it was down a moment ago: do not make every request wait on it
            else:
                await self._fetch(entry, ks)
            if kid in ks.keys:
                return ks.keys[kid]
        if kid is None:
            raise AuthProblem("unknown_kid", f"the token names no key (kid) and {entry.label} publishes several")
        raise AuthProblem("unknown_kid", f"the token is signed with a key {entry.label} does not publish")

    async def prefetch(self) -> None:
        """Every issuer's keys, fetched now (at API start) rather than by the first request. A failure
        is logged and not recorded: the first request that needs the keys tries again itself."""
        entries = {entry.jwks_uri or entry.discovery: entry for entry in self.issuers}  # one per key set
        await asyncio.gather(*(self._prefetch(entry) for entry in entries.values()))

    async def _prefetch(self, entry: OidcIssuer) -> None:
        ks = self._set_for(entry)
        async with ks.lock:
            if ks.fetched_at is not None:
                return
            try:
                await self._fetch_keys(entry, ks)
            except IdpUnavailable as e:
                log.warning("oidc_prefetch_failed", issuer=entry.label, message=e.message)

    # -- tokens -------------------------------------------------------------------------
    async def validate(self, token: str) -> tuple[OidcIssuer, dict[str, Any]]:
        """The issuer entry and the verified claims; AuthProblem (401) or IdpUnavailable (503)."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise AuthProblem("malformed_token", "the bearer token is empty or too long to be a JWT")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.DecodeError:
            raise AuthProblem(
                "malformed_token", "the bearer token is not a JWT (three base64url parts, JSON header and claims)"
            ) from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or not (kid is None or isinstance(kid, str)):
            raise AuthProblem("malformed_token", "the token header has no algorithm (alg) or a kid that is not text")
        iss = unverified.get("iss")
        entries = [e for e in self.issuers if e.issuer == iss]
        if not entries:
            raise AuthProblem("unknown_issuer", "the token's issuer (iss) is not one this API trusts")
        auds = _strings(unverified.get("aud")) or ()
        entry = next((e for e in entries if set(e.audience) & set(auds)), None)
        if entry is None:
            raise AuthProblem("wrong_audience", f"the token's audience (aud) is not this API's at {entries[0].label}")
        if alg not in entry.algorithms:
            raise AuthProblem(
                "alg_not_allowed",
                f"tokens signed with {alg[:20]!r} are not accepted; allowed: {', '.join(entry.algorithms)}",
            )
        key, key_alg = await self._key(entry, kid)
        if key_alg is not None and key_alg != alg:  # a key published for one algorithm is used for that one only
            raise AuthProblem("alg_not_allowed", f"the token's algorithm {alg} is not the one its key is for")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=list(entry.audience),
                issuer=entry.issuer,
                leeway=self.clock_skew,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthProblem("expired", "the token has expired (exp); sign in again") from None
        except jwt.ImmatureSignatureError:
            raise AuthProblem("not_yet_valid", "the token is not valid yet (nbf or iat is in the future)") from None
        except jwt.InvalidAudienceError:
            raise AuthProblem("wrong_audience", "the token's audience (aud) is not this API's") from None
        except jwt.InvalidIssuerError:
            raise AuthProblem("unknown_issuer", "the token's issuer (iss) is not one this API trusts") from None
        except jwt.MissingRequiredClaimError as e:
            raise AuthProblem("missing_claim", f"the token has no {e.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthProblem("bad_signature", "the token's signature does not verify") from None
        except (jwt.InvalidKeyError, jwt.InvalidAlgorithmError):
            raise AuthProblem("alg_not_allowed", f"the token's algorithm {alg} does not fit its key") from None
        except jwt.InvalidTokenError as e:
            raise AuthProblem("invalid_token", f"the token is invalid ({type(e).__name__})") from None
        for name, want in entry.required_claims.items():
            if claims.get(name) != want:
                raise AuthProblem("claim_mismatch", f"the token's {name!r} claim is not the one {entry.label} requires")
        return entry, claims

    async def principal(
        self,
        token: str,
        owner_of: Callable[[str], str | None] | None = None,
        groups_of: Callable[[str], tuple[str, ...]] | None = None,
    ) -> Principal:
        """The principal a valid token stands for, with its authentication context. `owner_of` and
        `groups_of` are the directory: a workload's owner when the token names none, and the groups
        of an issuer whose tokens carry none (`groups_claim: null`)."""
        entry, claims = await self.validate(token)
        subject = _claim_path(claims, entry.subject_claim)
        if not isinstance(subject, str) or not subject or len(subject) > 200 or not subject.isprintable():
            raise AuthProblem("missing_claim", f"the token has no usable {entry.subject_claim!r} claim (the user ID)")
        if entry.groups_claim is None:
            groups: tuple[str, ...] | None = groups_of(subject) if groups_of else ()
        else:
            raw_groups = _claim_path(claims, entry.groups_claim)
            groups = () if raw_groups is None else _strings(raw_groups)
        if groups is None:
            raise AuthProblem("bad_claim", f"the token's {entry.groups_claim!r} claim is not a list of group names")
        owner = _claim_path(claims, entry.owner_claim) if entry.owner_claim else None
        if not (isinstance(owner, str) and owner):
            owner = owner_of(subject) if owner_of and entry.kind == "service" else None
        jti = claims.get("jti")
        hashed, of = (jti, "jti") if isinstance(jti, str) and jti else (token, "token")
        auds = _strings(claims.get("aud")) or ()
        ctx = AuthContext(
            issuer=entry.issuer,
            subject=str(claims["sub"]),
            token_hash="sha256:" + hashlib.sha256(hashed.encode()).hexdigest(),
            token_hash_of=of,
            issued_at=_ts(claims, "iat") or datetime.fromtimestamp(0, UTC),
            expires_at=_ts(claims, "exp") or datetime.fromtimestamp(0, UTC),
            auth_time=_ts(claims, "auth_time"),
            amr=_strings(claims.get("amr")) or (),
            acr=claims["acr"] if isinstance(claims.get("acr"), str) else None,
            audience=next((a for a in auds if a in entry.audience), ""),
        )
        return Principal(
            id=subject,
            kind=ActorKind(entry.kind),
            groups=tuple(dict.fromkeys(groups)),
            owner=owner,
            auth_context=ctx,
        )


def _quoted(text: str) -> str:
    """A value for an RFC 7235 quoted-string (printable ASCII, no quotes or backslashes)."""
    return "".join(c for c in text if 32 <= ord(c) < 127 and c not in '"\\')[:300]


class Authenticator:
    """The FastAPI dependency: `Annotated[Principal, Depends(authenticator)]`."""

    def __init__(
        self,
        validator: TokenValidator,
        owner_of: Callable[[str], str | None] | None = None,
        groups_of: Callable[[str], tuple[str, ...]] | None = None,
    ) -> None:
        self.validator, self.owner_of, self.groups_of = validator, owner_of, groups_of

    async def __call__(
        self, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None
    ) -> Principal:
        if creds is None:
            raise AuthProblem("missing_token", "missing bearer token: send 'Authorization: Bearer <ID token>'")
        if not self.validator.issuers:
            raise AuthProblem("no_issuer", "this API trusts no identity provider yet (JITACCESS_OIDC_ISSUERS)")
        return await self.validator.principal(creds.credentials, self.owner_of, self.groups_of)


def install(app: FastAPI) -> None:
    """JSON answers for refused tokens (401 + WWW-Authenticate) and an unreachable issuer (503)."""

    @app.exception_handler(AuthProblem)
    async def _refused(_: Request, e: AuthProblem) -> JSONResponse:
        challenge = f'Bearer realm="{REALM}"'
        if e.problem != "missing_token":  # RFC 6750 3.1: no error code when no credentials were sent
            challenge += f', error="invalid_token", error_description="{_quoted(e.problem + ": " + e.message)}"'
        return JSONResponse(
            {"error": "unauthenticated", "problem": e.problem, "message": e.message},
            status_code=401,
            headers={"WWW-Authenticate": challenge},
        )

    @app.exception_handler(IdpUnavailable)
    async def _idp_down(_: Request, e: IdpUnavailable) -> JSONResponse:
        return JSONResponse(
            {
                "error": "idp_unavailable",
                "message": f"{e.message}; the token cannot be checked now, so nothing is allowed (fail closed). "
                "Retry shortly",
            },
            status_code=503,
            headers={"Retry-After": "30"},
        )


def authenticator_for(settings: Any, directory: Mapping[str, Any] | None = None) -> Authenticator:
    """The API's authenticator from Settings; `directory` (users.yaml) names a workload's owner when
    the token does not, and holds the groups for an issuer whose tokens carry none."""
    users = directory or {}

    def owner_of(uid: str) -> str | None:
        entry = users.get(uid)
        return getattr(entry, "owner", None) if entry is not None else None

    def groups_of(uid: str) -> tuple[str, ...]:
        entry = users.get(uid)
        return tuple(getattr(entry, "groups", ())) if entry is not None else ()

    validator = TokenValidator(
        settings.oidc_issuers,
        clock_skew=settings.oidc_clock_skew.total_seconds(),
        jwks_ttl=settings.oidc_jwks_ttl.total_seconds(),
        min_refresh=settings.oidc_jwks_min_refresh.total_seconds(),
    )
    return Authenticator(validator, owner_of, groups_of)
