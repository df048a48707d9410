"""Signing the CLI in: `jitaccess auth login | print-token | status | logout`, and the token every
other command sends.

- `auth login` runs the OIDC authorization code flow with PKCE against any issuer: it listens on a
  loopback port (http://127.0.0.1:<port>/callback), opens the browser at the issuer's authorize
  endpoint, exchanges the code (with the PKCE verifier) for tokens, and validates the ID token
  (signature from the issuer's JWKS, issuer, audience, nonce) before keeping it.
  Issuer and client ID: --issuer/--client-id, JITACCESS_OIDC_ISSUER/JITACCESS_OIDC_CLIENT_ID, else
  the dev stack's console client from .jitaccess/dev.json.
- In the dev stack, `--as USER` signs in without a browser: the dev user's password at OpenBao
  (with `--step-up`, password + TOTP) and an ID token from OpenBao's token role.
- Tokens are cached in the user's config directory (`$JITACCESS_CONFIG_DIR`, else
  `$XDG_CONFIG_HOME/jitaccess`, else ~/.config/jitaccess), file `tokens.json`, mode 0600. A token
  near expiry is refreshed (refresh token) or, for a dev user, signed in again; otherwise the
  command says to run `jitaccess auth login`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets
import sys
import time
import webbrowser
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import typer

from jitaccess import cli_client as client

REFRESH_MARGIN = 60  # seconds: a token this close to expiry is renewed before use


class SignInError(Exception):
    """Signing in failed or is needed; the message says what to do."""


# -- the token cache ----------------------------------------------------------------------------
def config_dir() -> Path:
    if env := os.environ.get("JITACCESS_CONFIG_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "jitaccess"


def _cache_file() -> Path:
    return config_dir() / "tokens.json"


def load_cache() -> dict[str, Any]:
    try:
        data = json.loads(_cache_file().read_text())
    except (FileNotFoundError, ValueError):
        return {"entries": {}}
    return data if isinstance(data, dict) and isinstance(data.get("entries"), dict) else {"entries": {}}


def save_cache(data: dict[str, Any]) -> None:
    """Written whole, 0600 from the first byte, in a 0700 directory; replaced atomically."""
    d = config_dir()
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    d.chmod(0o700)
    tmp = d / f".tokens.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, _cache_file())


def _claims(token: str) -> dict[str, Any]:
    """Unverified claims: for expiry and display only (the API verifies every token)."""
    try:
        payload = token.split(".")[1]
        return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
    except (IndexError, ValueError):
        return {}


def _entry(kind: str, token: str, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "id_token": token, "expires_at": _claims(token).get("exp", 0), **extra}


def _fresh(entry: dict[str, Any] | None) -> bool:
    return entry is not None and float(entry.get("expires_at", 0)) - time.time() > REFRESH_MARGIN


# -- the dev stack (OpenBao as identity provider) ----------------------------------------------
def _dev_identity(dev: dict[str, Any]) -> Any:
    from jitaccess.dev.identity import DevIdentity

    if not dev.get("identity"):
        raise SignInError("no dev stack identity provider in .jitaccess/dev.json: run `jitaccess dev up` here")
    return DevIdentity.model_validate({**dev["identity"], "users": dev.get("users", {})})


def _dev_key(dev: dict[str, Any], user: str) -> str:
    return f"dev:{dev['identity']['vault_addr']}:{user}"


def dev_sign_in(dev: dict[str, Any], user: str, step_up: bool = False) -> dict[str, Any]:
    from jitaccess.dev.identity import DevIdentityError

    idp = _dev_identity(dev)
    if user not in idp.users:
        raise SignInError(f"unknown dev user {user!r}; known: {', '.join(idp.users)}")
    try:
        token = idp.id_token(user, step_up=step_up)
    except (DevIdentityError, httpx.HTTPError) as e:
        raise SignInError(f"signing in as {user} at the dev stack's OpenBao failed: {e}") from None
    entry = _entry("dev", token, user=user, step_up=step_up)
    cache = load_cache()
    cache["entries"][_dev_key(dev, user)] = entry
    save_cache(cache)
    return entry


def dev_token(dev: dict[str, Any], user: str) -> str:
    """The dev user's cached token (a step-up sign-in stays in use until it expires), or a new one."""
    if not dev.get("identity"):
        raise SignInError("no dev stack identity provider in .jitaccess/dev.json: run `jitaccess dev up` here")
    entry = load_cache()["entries"].get(_dev_key(dev, user))
    if entry is not None and _fresh(entry):
        return str(entry["id_token"])
    return str(dev_sign_in(dev, user)["id_token"])


# -- any OIDC issuer: authorization code + PKCE ------------------------------------------------
def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _discover(issuer: str) -> dict[str, Any]:
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        doc = httpx.get(url, timeout=10).raise_for_status().json()
    except (httpx.HTTPError, ValueError) as e:
        raise SignInError(f"cannot read {url}: {e.__class__.__name__}") from None
    if doc.get("issuer") != issuer:
        raise SignInError(f"{url} names issuer {doc.get('issuer')!r}, not {issuer!r}")
    return dict(doc)


def _validate_id_token(issuer: str, client_id: str, token: str, nonce: str | None) -> dict[str, Any]:
    from jitaccess.api.auth import AuthProblem, IdpUnavailable, TokenValidator
    from jitaccess.config.oidc import OidcIssuer

    v = TokenValidator([OidcIssuer(issuer=issuer, audience=(client_id,))])
    try:
        _, claims = asyncio.run(v.validate(token))
    except (AuthProblem, IdpUnavailable) as e:
        raise SignInError(f"the identity provider's ID token does not validate: {e}") from None
    if nonce is not None and claims.get("nonce") != nonce:
        raise SignInError("the ID token's nonce is not the one this sign-in sent (replayed or mixed-up response)")
    return claims


class _Loopback(HTTPServer):
    result: dict[str, str] | None = None  # the redirect's query, once it came


class _Callback(BaseHTTPRequestHandler):
    server: _Loopback

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path != "/callback":
            self.send_error(404)
            return
        got = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.server.result = got
        said = (
            "Sign-in failed; see the terminal." if "error" in got else "Signed in to jitaccess. You can close this tab."
        )
        page = f"<html><body><p>{said}</p></body></html>".encode()
        self.send_response(200)
        for header, value in (("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(page)))):
            self.send_header(header, value)
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args: Any) -> None:
        pass


def _authorize_url(
    doc: dict[str, Any], client_id: str, redirect: str, scopes: str, pkce: tuple[str, str, str], extra: dict[str, str]
) -> str:
    verifier, state, nonce = pkce
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect,
        "scope": scopes,
        "state": state,
        "nonce": nonce,
        "code_challenge": _b64(hashlib.sha256(verifier.encode()).digest()),
        "code_challenge_method": "S256",
        **extra,
    }
    return str(doc["authorization_endpoint"]) + "?" + urlencode(params)


def _await_redirect(server: _Loopback, timeout: float) -> dict[str, str]:
    """The redirect's query, once the browser comes back to the loopback server."""
    deadline = time.monotonic() + timeout
    try:
        while server.result is None:
            if time.monotonic() > deadline:
                raise SignInError(f"no answer from the browser within {int(timeout)} s")
            server.handle_request()
    finally:
        server.server_close()
    return server.result or {}


def _post_token(endpoint: str, form: dict[str, str], auth: tuple[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """A token endpoint's status and JSON answer; SignInError when it does not answer with JSON."""
    try:
        r = httpx.post(endpoint, data=form, auth=auth, timeout=30)
        return r.status_code, r.json()
    except (httpx.HTTPError, ValueError) as e:
        raise SignInError(f"the token endpoint did not answer: {e.__class__.__name__}") from None


def pkce_login(
    issuer: str,
    client_id: str,
    *,
    scopes: str = "openid",
    port: int = 0,
    open_browser: bool = True,
    extra: dict[str, str] | None = None,
    client_secret: str | None = None,
    timeout: float = 300,
    show: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Authorization code + PKCE with a loopback redirect; the validated tokens as a cache entry."""
    doc = _discover(issuer)
    verifier, state, nonce = secrets.token_urlsafe(64), secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    server = _Loopback(("127.0.0.1", port), _Callback)
    server.timeout = 0.5
    redirect = f"http://127.0.0.1:{server.server_address[1]}/callback"
    url = _authorize_url(doc, client_id, redirect, scopes, (verifier, state, nonce), extra or {})
    (show or (lambda u: print(f"sign in at: {u}", file=sys.stderr, flush=True)))(url)
    if open_browser:
        webbrowser.open(url)
    got = _await_redirect(server, timeout)
    if got.get("state") != state:
        raise SignInError("the redirect's state is not this sign-in's (a forged or stale redirect): nothing kept")
    if "error" in got:
        raise SignInError(f"the identity provider refused: {got['error']} {got.get('error_description', '')}".strip())
    form = {"grant_type": "authorization_code", "code": got.get("code", ""), "redirect_uri": redirect}
    form |= {"client_id": client_id, "code_verifier": verifier}
    status, body = _post_token(doc["token_endpoint"], form, (client_id, client_secret) if client_secret else None)
    if status != 200 or "id_token" not in body:
        raise SignInError(
            f"the token endpoint refused the code: {body.get('error')} {body.get('error_description', '')}"
        )
    _validate_id_token(issuer, client_id, body["id_token"], nonce)
    return _entry(
        "oidc",
        body["id_token"],
        issuer=issuer,
        client_id=client_id,
        token_endpoint=doc["token_endpoint"],
        refresh_token=body.get("refresh_token"),
    )


def _refresh(entry: dict[str, Any]) -> dict[str, Any] | None:
    if not entry.get("refresh_token") or not entry.get("token_endpoint"):
        return None
    form = {"grant_type": "refresh_token", "refresh_token": entry["refresh_token"], "client_id": entry["client_id"]}
    try:
        status, body = _post_token(entry["token_endpoint"], form)
    except SignInError:
        return None
    if status != 200 or "id_token" not in body:
        return None
    _validate_id_token(entry["issuer"], entry["client_id"], body["id_token"], None)
    return {
        **entry,
        "id_token": body["id_token"],
        "expires_at": _claims(body["id_token"]).get("exp", 0),
        "refresh_token": body.get("refresh_token", entry["refresh_token"]),
    }


def current_token(dev: dict[str, Any] | None = None) -> str:
    """The signed-in token (from `jitaccess auth login`), refreshed if it is about to expire."""
    cache = load_cache()
    key = cache.get("current")
    entry = cache["entries"].get(key) if key else None
    if entry is None:
        raise SignInError("not signed in: run `jitaccess auth login` (or pass --as USER in the dev stack)")
    if _fresh(entry):
        return str(entry["id_token"])
    if entry.get("kind") == "dev" and dev and dev.get("identity"):
        return str(dev_sign_in(dev, entry["user"])["id_token"])
    renewed = _refresh(entry)
    if renewed is None:
        raise SignInError("your sign-in has expired: run `jitaccess auth login` again")
    cache["entries"][key] = renewed
    save_cache(cache)
    return str(renewed["id_token"])


# -- the commands ------------------------------------------------------------------------------
auth_app = typer.Typer(help="Sign in (OIDC) and manage the cached token.", no_args_is_help=True)


def _say(message: str) -> None:  # messages to stderr: stdout is for what a script reads
    typer.echo(message, err=True)


def _fail(e: Exception) -> typer.Exit:
    _say(f"error: {e}")
    return typer.Exit(1)


def _selected_key(dev: dict[str, Any], cache: dict[str, Any]) -> str | None:
    """The cache entry a command is about: the --as USER one in the dev stack, else the current sign-in."""
    user = client.ctx.user
    return _dev_key(dev, user) if user and dev.get("identity") else cache.get("current")


def _until(entry: dict[str, Any]) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(float(entry.get("expires_at", 0))))


def _browser_login(
    dev: dict[str, Any], issuer: str | None, client_id: str | None, scopes: str | None, step_up: bool, acr: str | None
) -> tuple[str, str, str, dict[str, str]]:
    """Issuer, client ID, scopes and extra authorize parameters: as given, else the dev stack's console client."""
    ident = dev.get("identity") or {}
    if not issuer and ident:
        issuer = f"{ident['vault_addr']}/v1/identity/oidc/provider/jitaccess"
        client_id = client_id or ident.get("console_client_id")
        scopes = scopes or "openid groups"
    if not issuer or not client_id:
        raise SignInError("which issuer? pass --issuer and --client-id (or run `jitaccess dev up` here)")
    extra = {"max_age": "0", "prompt": "login"} if step_up else {}
    if acr:
        extra["acr_values"] = acr
    return issuer, client_id, scopes or "openid", extra


@auth_app.command("login")
def login(
    issuer: str | None = typer.Option(None, envvar="JITACCESS_OIDC_ISSUER", help="the OIDC issuer URL"),
    client_id: str | None = typer.Option(None, envvar="JITACCESS_OIDC_CLIENT_ID", help="this CLI's client ID"),
    client_secret: str | None = typer.Option(None, envvar="JITACCESS_OIDC_CLIENT_SECRET", hidden=True),
    scopes: str | None = typer.Option(None, envvar="JITACCESS_OIDC_SCOPES", help="default: openid (+groups in dev)"),
    port: int = typer.Option(0, help="loopback port for the redirect (0: any free one)"),
    browser: bool = typer.Option(True, help="open the browser (--no-browser: only print the URL)"),
    step_up: bool = typer.Option(False, "--step-up", help="a fresh, strong sign-in (MFA) for approvals"),
    acr: str | None = typer.Option(None, "--acr", help="acr_values to ask the issuer for (with --step-up)"),
) -> None:
    """Sign in: authorization code + PKCE in the browser, or `--as USER` in the dev stack."""
    d, user = client.dev(), client.ctx.user
    try:
        if user:
            entry, key = dev_sign_in(d, user, step_up=step_up), _dev_key(d, user)
        else:
            issuer, client_id, scopes, extra = _browser_login(d, issuer, client_id, scopes, step_up, acr)
            entry = pkce_login(
                issuer,
                client_id,
                scopes=scopes,
                port=port,
                open_browser=browser,
                extra=extra,
                client_secret=client_secret,
            )
            key = f"oidc:{issuer}:{client_id}"
    except SignInError as e:
        raise _fail(e) from None
    cache = load_cache()
    cache["entries"][key] = entry
    cache["current"] = key
    save_cache(cache)
    c = _claims(entry["id_token"])
    who = c.get("preferred_username") or c.get("username") or c.get("email") or c.get("sub")
    amr = f", amr {','.join(c['amr'])}" if isinstance(c.get("amr"), list) else ""
    _say(f"signed in as {who} (groups: {', '.join(c.get('groups') or []) or 'none'}{amr}) until {_until(entry)}")


@auth_app.command("print-token")
def print_token() -> None:
    """Print a valid ID token (refreshed or signed in again if needed), e.g. for curl."""
    d, user = client.dev(), client.ctx.user
    try:
        token = dev_token(d, user) if user else current_token(d)
    except SignInError as e:
        raise _fail(e) from None
    typer.echo(token)


@auth_app.command("status")
def status() -> None:
    """Who you are signed in as, and until when."""
    cache = load_cache()
    key = _selected_key(client.dev(), cache)
    entry = cache["entries"].get(key) if key else None
    if not entry:
        raise _fail(SignInError("not signed in"))
    c = _claims(entry["id_token"])
    state = "valid" if _fresh(entry) else "expired (renewed on next use)"
    typer.echo(
        f"{c.get('username') or c.get('preferred_username') or c.get('sub')} at {c.get('iss')} "
        f"(aud {c.get('aud')}); groups: {', '.join(c.get('groups') or [])}; amr: {c.get('amr')}; "
        f"{state} until {_until(entry)}"
    )


@auth_app.command("logout")
def logout(all_: bool = typer.Option(False, "--all", help="forget every cached sign-in")) -> None:
    """Forget the cached token (this sign-in, the --as USER one, or --all)."""
    cache = load_cache()
    if all_:
        cache = {"entries": {}}
    else:
        key = _selected_key(client.dev(), cache)
        cache["entries"].pop(key, None)
        if cache.get("current") == key:
            cache.pop("current", None)
    save_cache(cache)
    _say("signed out")
