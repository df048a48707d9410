"""OpenBao as the development identity provider: one seeding used by `jitaccess dev up` and by the
test fixtures, and the sign-in a dev user (or workload) does against it.

The API validates these tokens exactly as it validates Okta's or Entra ID's (jitaccess.api.auth):
OpenBao signs OIDC ID tokens, publishes discovery and JWKS, and is configured in
`JITACCESS_OIDC_ISSUERS` like any other issuer. What is seeded:

- a signing key `jitaccess` (RS256, rotated daily; `identity/oidc/key/jitaccess/rotate` rotates now);
- an entity per user of users.yaml, and an identity group per group name with its members;
- people: userpass logins (mount `userpass`, generated passwords) whose tokens may mint an ID token
  from the token role `jitaccess-cli` (issuer `<addr>/v1/identity/oidc`, audience `jitaccess-cli`,
  `amr: [pwd]`) — what `jitaccess --as USER` and `jitaccess auth login --as USER` use;
- step-up: the same people on mount `userpass-mfa`, behind OpenBao login MFA (TOTP), whose short
  tokens (2 minutes) may mint only from `jitaccess-cli-mfa` (`amr: [pwd, otp, mfa]`, `acr: mfa`);
- workloads (`kind: service`): an AppRole per service on mount `approle-signin`, whose tokens may
  mint only from `jitaccess-workload` (audience `jitaccess-workload`; the issuer entry for that
  audience says `kind: service`, and carries the `owner` claim from the entity's metadata);
- the web console: an OIDC provider `jitaccess` (issuer `<addr>/v1/identity/oidc/provider/jitaccess`)
  with a public client (authorization code + PKCE, loopback redirect) and a `groups` scope —
  what `jitaccess auth login` uses against any issuer.

ACL policies keep the token roles apart: a person's login can never mint a workload's token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import struct
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import httpx
from pydantic import BaseModel

from jitaccess.config.oidc import OidcIssuer

KEY = "jitaccess"
CLI_ROLE, STEP_UP_ROLE, WORKLOAD_ROLE = "jitaccess-cli", "jitaccess-cli-mfa", "jitaccess-workload"
CLI_AUDIENCE, WORKLOAD_AUDIENCE = "jitaccess-cli", "jitaccess-workload"
PROVIDER, CONSOLE_CLIENT, SCOPE = "jitaccess", "jitaccess-console", "groups"
USERPASS, USERPASS_MFA, APPROLE = "userpass", "userpass-mfa", "approle-signin"
TOTP_METHOD, ENFORCEMENT = "jitaccess-totp", "jitaccess-step-up"
STEP_UP_AMR = ("pwd", "otp", "mfa")

_CLAIMS = '"username": {{identity.entity.name}}, "groups": {{identity.entity.groups.names}}'
TEMPLATES = {
    CLI_ROLE: "{" + _CLAIMS + ', "amr": ["pwd"]}',
    STEP_UP_ROLE: "{" + _CLAIMS + ', "amr": ["pwd", "otp", "mfa"], "acr": "mfa"}',
    WORKLOAD_ROLE: "{" + _CLAIMS + ', "owner": {{identity.entity.metadata.owner}}}',
}
TTLS = {CLI_ROLE: "1h", STEP_UP_ROLE: "15m", WORKLOAD_ROLE: "1h"}


class DevIdentityError(RuntimeError):
    pass


class DevUser(BaseModel):
    kind: Literal["human", "service"] = "human"
    groups: list[str] = []
    owner: str | None = None
    password: str | None = None  # people: userpass (both mounts)
    totp_secret: str | None = None  # people: the TOTP secret behind step-up (base32)
    role_id: str | None = None  # workloads: AppRole
    secret_id: str | None = None


class DevIdentity(BaseModel):
    """What the dev stack's identity provider is and how each dev user signs in (dev.json)."""

    vault_addr: str
    console_client_id: str
    users: dict[str, DevUser] = {}

    @property
    def token_issuer(self) -> str:
        return f"{self.vault_addr}/v1/identity/oidc"

    @property
    def provider_issuer(self) -> str:
        return f"{self.vault_addr}/v1/identity/oidc/provider/{PROVIDER}"

    @property
    def issuers(self) -> list[OidcIssuer]:
        """The API's `JITACCESS_OIDC_ISSUERS` for this provider."""
        common: dict[str, Any] = {"subject_claim": "username", "groups_claim": "groups"}
        return [
            OidcIssuer(
                name="openbao-console", issuer=self.provider_issuer, audience=(self.console_client_id,), **common
            ),
            OidcIssuer(name="openbao-cli", issuer=self.token_issuer, audience=(CLI_AUDIENCE,), **common),
            OidcIssuer(
                name="openbao-workloads",
                issuer=self.token_issuer,
                audience=(WORKLOAD_AUDIENCE,),
                kind="service",
                owner_claim="owner",
                **common,
            ),
        ]

    def id_token(self, user: str, *, step_up: bool = False, timeout: float = 10) -> str:
        """Sign in as `user` (password, with TOTP for step-up; AppRole for a workload) and mint an ID token."""
        u = self.users.get(user)
        if u is None:
            raise DevIdentityError(f"unknown dev user {user!r}; known: {', '.join(self.users)}")
        with httpx.Client(base_url=self.vault_addr, timeout=timeout) as c:
            if u.kind == "service":
                if step_up:
                    raise DevIdentityError(f"{user} is a workload: step-up is for people")
                token = _login(c, f"auth/{APPROLE}/login", {"role_id": u.role_id, "secret_id": u.secret_id})
                role = WORKLOAD_ROLE
            elif step_up:
                token = _mfa_login(c, user, u)
                role = STEP_UP_ROLE
            else:
                token = _login(c, f"auth/{USERPASS}/login/{user}", {"password": u.password})
                role = CLI_ROLE
            try:
                return str(_call(c, "GET", f"identity/oidc/token/{role}", token)["data"]["token"])
            finally:
                _call(c, "POST", "auth/token/revoke-self", token, ok=(200, 204, 403))


# -- talking to OpenBao ----------------------------------------------------------------------
def _call(
    c: httpx.Client, method: str, path: str, token: str, body: Any = None, ok: tuple[int, ...] = (200, 204)
) -> dict[str, Any]:
    r = c.request(method, f"/v1/{path}", json=body, headers={"X-Vault-Token": token})
    if r.status_code not in ok:
        try:
            errors = "; ".join(r.json().get("errors") or [])
        except ValueError:
            errors = r.text[:300]
        raise DevIdentityError(f"OpenBao {method} {path}: {r.status_code} {errors}")
    return r.json() if r.content else {}


def _login(c: httpx.Client, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
    r = c.post(f"/v1/{path}", json=body, headers=headers or {})
    if r.status_code != 200:
        try:
            errors = "; ".join(r.json().get("errors") or [])
        except ValueError:
            errors = r.text[:300]
        raise DevIdentityError(f"sign-in at OpenBao {path.split('/login')[0]} refused: {r.status_code} {errors}")
    token = (r.json().get("auth") or {}).get("client_token")
    if not token:
        raise DevIdentityError(f"sign-in at OpenBao {path} returned no token (is MFA required?)")
    return str(token)


def totp(secret: str, at: float | None = None, period: int = 30, digits: int = 6) -> str:
    """RFC 6238 TOTP (SHA-1), what an authenticator app shows for `secret` (base32)."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    counter = struct.pack(">Q", int(time.time() if at is None else at) // period)
    digest = hmac.new(key, counter, hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = (struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 10**digits
    return f"{code:0{digits}d}"


def _mfa_login(c: httpx.Client, user: str, u: DevUser) -> str:
    """Password, then the TOTP code (OpenBao login MFA, two-phase: so a wrong password and a
    refused code are told apart). A code is good once: a second step-up in the same 30 s waits."""
    if not u.totp_secret:
        raise DevIdentityError(f"{user} has no TOTP secret in this dev stack")
    for attempt in range(3):
        r = c.post(f"/v1/auth/{USERPASS_MFA}/login/{user}", json={"password": u.password})
        need = (r.json().get("auth") or {}).get("mfa_requirement") if r.status_code == 200 else None
        if not need:
            raise DevIdentityError(f"step-up sign-in for {user} refused at the password: {r.status_code}")
        methods = [m["id"] for c_ in need["mfa_constraints"].values() for m in c_["any"] if m["type"] == "totp"]
        payload = {"mfa_request_id": need["mfa_request_id"], "mfa_payload": {methods[0]: [totp(u.totp_secret)]}}
        v = c.post("/v1/sys/mfa/validate", json=payload)
        if v.status_code == 200 and (v.json().get("auth") or {}).get("client_token"):
            return str(v.json()["auth"]["client_token"])
        if attempt < 2:
            time.sleep(31 - time.time() % 30)  # this period's code was used already: the next one
    raise DevIdentityError(f"step-up sign-in for {user}: OpenBao refused the TOTP code")


# -- seeding -----------------------------------------------------------------------------------
class _Bao:
    def __init__(self, addr: str, root_token: str) -> None:
        self.c = httpx.Client(base_url=addr, timeout=30)
        self.token = root_token

    def __call__(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 204)) -> dict[str, Any]:
        return _call(self.c, method, path, self.token, body, ok)

    def close(self) -> None:
        self.c.close()


def _mounts(bao: _Bao) -> dict[str, str]:
    """Enable the auth mounts the sign-in needs; their accessors by path."""
    have = bao("GET", "sys/auth")["data"]
    for path, kind in ((USERPASS, "userpass"), (USERPASS_MFA, "userpass"), (APPROLE, "approle")):
        if f"{path}/" not in have:
            bao("POST", f"sys/auth/{path}", {"type": kind, "description": "jitaccess dev sign-in"})
    have = bao("GET", "sys/auth")["data"]
    return {p: have[f"{p}/"]["accessor"] for p in (USERPASS, USERPASS_MFA, APPROLE)}


def _entity(bao: _Bao, name: str, metadata: dict[str, str]) -> str:
    bao("POST", f"identity/entity/name/{name}", {"metadata": metadata})
    return str(bao("GET", f"identity/entity/name/{name}")["data"]["id"])


def _alias(bao: _Bao, entity_id: str, alias: str, accessor: str) -> None:
    found = bao("POST", "identity/lookup/entity", {"alias_name": alias, "alias_mount_accessor": accessor})
    if found.get("data", {}).get("id") == entity_id:
        return
    bao("POST", "identity/entity-alias", {"name": alias, "canonical_id": entity_id, "mount_accessor": accessor})


def _totp_method(bao: _Bao) -> str:
    listed = bao("LIST", "identity/mfa/method/totp", ok=(200, 204, 404)).get("data") or {}
    for mid, info in (listed.get("key_info") or {}).items():
        if info.get("method_name") == TOTP_METHOD:
            return str(mid)
    made = bao(
        "POST",
        "identity/mfa/method/totp",
        {"method_name": TOTP_METHOD, "issuer": "jitaccess-dev", "period": 30, "digits": 6, "algorithm": "SHA1"},
    )
    return str(made["data"]["method_id"])


def _totp_secret(bao: _Bao, method_id: str, entity_id: str) -> str:
    bao(
        "POST",
        "identity/mfa/method/totp/admin-destroy",
        {"method_id": method_id, "entity_id": entity_id},
        ok=(200, 204, 400),
    )
    url = bao("POST", "identity/mfa/method/totp/admin-generate", {"method_id": method_id, "entity_id": entity_id})
    query = httpx.URL(url["data"]["url"]).params
    return str(query["secret"])


def _oidc_roles(bao: _Bao) -> None:
    """The signing key, one OIDC role per kind of sign-in, and the policies that may mint its tokens."""
    bao(
        "POST",
        f"identity/oidc/key/{KEY}",
        {"algorithm": "RS256", "rotation_period": "24h", "verification_ttl": "24h", "allowed_client_ids": ["*"]},
    )
    for role, template in TEMPLATES.items():
        audience = WORKLOAD_AUDIENCE if role == WORKLOAD_ROLE else CLI_AUDIENCE
        bao(
            "POST",
            f"identity/oidc/role/{role}",
            {"key": KEY, "client_id": audience, "ttl": TTLS[role], "template": template},
        )
    for policy, role in (
        ("jitaccess-signin", CLI_ROLE),
        ("jitaccess-signin-mfa", STEP_UP_ROLE),
        ("jitaccess-workload-signin", WORKLOAD_ROLE),
    ):
        rules = f'path "identity/oidc/token/{role}" {{\n  capabilities = ["read"]\n}}\n'
        bao("PUT", f"sys/policies/acl/{policy}", {"policy": rules})


def _mfa(bao: _Bao, acc: dict[str, str]) -> str:
    """TOTP enforced on the step-up userpass mount; the TOTP method's ID."""
    method_id = _totp_method(bao)
    bao(
        "POST",
        f"identity/mfa/login-enforcement/{ENFORCEMENT}",
        {"mfa_method_ids": [method_id], "auth_method_accessors": [acc[USERPASS_MFA]]},
    )
    return method_id


def _service(bao: _Bao, acc: dict[str, str], name: str, eid: str, groups: list[str], owner: str | None) -> DevUser:
    """A workload: an AppRole whose logins may mint workload ID tokens for its entity."""
    bao(
        "POST",
        f"auth/{APPROLE}/role/{name}",
        {"token_policies": ["jitaccess-workload-signin"], "token_ttl": "10m", "token_max_ttl": "10m"},
    )
    role_id = bao("GET", f"auth/{APPROLE}/role/{name}/role-id")["data"]["role_id"]
    secret_id = bao("POST", f"auth/{APPROLE}/role/{name}/secret-id", {})["data"]["secret_id"]
    _alias(bao, eid, role_id, acc[APPROLE])
    return DevUser(kind="service", groups=groups, owner=owner, role_id=role_id, secret_id=secret_id)


def _person(
    bao: _Bao,
    acc: dict[str, str],
    method_id: str,
    name: str,
    eid: str,
    password: str,
    groups: list[str],
    owner: str | None,
) -> DevUser:
    """A person: a password on both userpass mounts (plain and step-up) and a fresh TOTP secret."""
    bao(
        "POST",
        f"auth/{USERPASS}/users/{name}",
        {"password": password, "token_policies": ["jitaccess-signin"], "token_ttl": "10m"},
    )
    # step-up tokens live 2 minutes: the ID token minted with one is at most that far from the MFA
    bao(
        "POST",
        f"auth/{USERPASS_MFA}/users/{name}",
        {"password": password, "token_policies": ["jitaccess-signin-mfa"], "token_ttl": "2m", "token_max_ttl": "2m"},
    )
    _alias(bao, eid, name, acc[USERPASS])
    _alias(bao, eid, name, acc[USERPASS_MFA])
    return DevUser(groups=groups, password=password, totp_secret=_totp_secret(bao, method_id, eid), owner=owner)


def _console_client(bao: _Bao, people: list[str]) -> str:
    """The web console: authorization code + PKCE against the OIDC provider (people only); its client ID."""
    bao("POST", f"identity/oidc/assignment/{CONSOLE_CLIENT}-users", {"entity_ids": people})
    bao(
        "POST",
        f"identity/oidc/scope/{SCOPE}",
        {"template": "{" + _CLAIMS + "}", "description": "username and groups for jitaccess"},
    )
    bao(
        "POST",
        f"identity/oidc/client/{CONSOLE_CLIENT}",
        {
            "key": KEY,
            "assignments": [f"{CONSOLE_CLIENT}-users"],
            "client_type": "public",
            # loopback redirects: OpenBao ignores the port (RFC 8252), so any local port works;
            # /callback is the CLI's (`auth login`), /auth/callback the web console's (the API's)
            "redirect_uris": [
                "http://127.0.0.1/callback",
                "http://localhost/callback",
                "http://127.0.0.1/auth/callback",
                "http://localhost/auth/callback",
            ],
            "id_token_ttl": "1h",
            "access_token_ttl": "1h",
        },
    )
    client_id = str(bao("GET", f"identity/oidc/client/{CONSOLE_CLIENT}")["data"]["client_id"])
    bao("POST", f"identity/oidc/provider/{PROVIDER}", {"allowed_client_ids": [client_id], "scopes_supported": [SCOPE]})
    return client_id


def seed_dev_identity(
    vault_addr: str, root_token: str, users: Mapping[str, Any], passwords: Mapping[str, str] | None = None
) -> DevIdentity:
    """Make the OpenBao at `vault_addr` the identity provider for `users` (name -> entry with
    groups, kind, owner: users.yaml as jitaccess.config.load_users reads it). Idempotent."""
    bao = _Bao(vault_addr, root_token)
    try:
        acc = _mounts(bao)
        _oidc_roles(bao)
        method_id = _mfa(bao, acc)
        dev: dict[str, DevUser] = {}
        members: dict[str, list[str]] = {}
        people: list[str] = []
        for name, entry in users.items():
            owner = getattr(entry, "owner", None)
            groups = list(getattr(entry, "groups", ()))
            eid = _entity(bao, name, {"owner": owner} if owner else {})
            for g in groups:
                members.setdefault(g, []).append(eid)
            if str(getattr(entry, "kind", "human")) == "service":
                dev[name] = _service(bao, acc, name, eid, groups, owner)
                continue
            password = (passwords or {}).get(name) or secrets.token_urlsafe(12)
            dev[name] = _person(bao, acc, method_id, name, eid, password, groups, owner)
            people.append(eid)
        for group, ids in members.items():
            bao("POST", f"identity/group/name/{group}", {"type": "internal", "member_entity_ids": ids})
        client_id = _console_client(bao, people)
        return DevIdentity(vault_addr=vault_addr, console_client_id=client_id, users=dev)
    finally:
        bao.close()


def rotate_key(vault_addr: str, root_token: str) -> None:
    """Rotate the signing key now (the old one stays published for its verification TTL)."""
    bao = _Bao(vault_addr, root_token)
    try:
        bao("POST", f"identity/oidc/key/{KEY}/rotate", {})
    finally:
        bao.close()


class DevTokens(Mapping[str, str]):
    """user -> a valid ID token for that dev user, signed in on first use and again shortly before
    it expires (thread-safe). Tokens are shared by every instance for the same provider, so tests
    and tools that sign in often do not flood it; step-up tokens are kept apart."""

    _shared: dict[tuple[str, str, bool], tuple[str, float]] = {}
    _lock = threading.Lock()

    def __init__(self, idp: DevIdentity, margin: float = 120) -> None:
        self.idp, self.margin = idp, margin
        self.step_up_users: set[str] = set()  # these users' tokens come from the step-up sign-in

    def token(self, user: str, *, step_up: bool | None = None) -> str:
        mfa = user in self.step_up_users if step_up is None else step_up
        key = (self.idp.vault_addr, user, mfa)
        with self._lock:
            cached = self._shared.get(key)
        if cached and cached[1] - time.time() > self.margin:
            return cached[0]
        tok = self.idp.id_token(user, step_up=mfa)
        exp = float(_claims(tok).get("exp", 0))
        with self._lock:
            self._shared[key] = (tok, exp)
        return tok

    def __getitem__(self, user: str) -> str:
        if user not in self.idp.users:
            raise KeyError(user)
        return self.token(user)

    def __iter__(self) -> Iterator[str]:
        return iter(self.idp.users)

    def __len__(self) -> int:
        return len(self.idp.users)


def _claims(token: str) -> dict[str, Any]:
    """A token's claims, unverified: only to know when to sign in again (the API verifies)."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
