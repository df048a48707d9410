"""What every API command of the CLI shares: the global options, the consoles, and the API client.

Where it finds the API: --api / JITACCESS_API, else .jitaccess/dev.json written by `jitaccess dev up`.
Its token: --as USER signs a dev user in at the dev stack's identity provider; else JITACCESS_TOKEN;
else the sign-in cached by `jitaccess auth login` (jitaccess.cli_auth), refreshed when needed.

The command modules use these through the module (`client.call(...)`, `client.console`), so a
test can replace one of them in one place."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console

from jitaccess.textsafe import markup_safe

console = Console()
err = Console(stderr=True)

DEV_DIR = Path(os.environ.get("JITACCESS_DEV_DIR", ".jitaccess"))


class Ctx:
    """The global options (`--as`, `--api`, `--json`), set by the CLI's callback."""

    user: str | None = None
    api: str | None = None
    json: bool = False


ctx = Ctx()


def dev() -> dict[str, Any]:
    """dev.json of the dev stack started in this directory, or {}."""
    path = DEV_DIR / "dev.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {markup_safe(message)}")
    return typer.Exit(code)


def shown(v: Any) -> Any:
    """An API answer made safe to print: its strings (reasons, notes, IDs: other users' text) with
    Rich markup and control characters escaped, so they show as written and cannot forge output."""
    if isinstance(v, str):
        return markup_safe(v)
    if isinstance(v, dict):
        return {k: shown(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shown(x) for x in v]
    return v


def print_json_if_asked(data: Any) -> bool:
    """With --json: print the answer as JSON and say so (the caller then prints nothing else)."""
    if ctx.json:
        console.print_json(data=data)
    return ctx.json


def duration_value(text: str) -> int | str:
    """A duration as the API takes it: seconds when all digits, else the ISO 8601 text."""
    return int(text) if text.isdigit() else text


def _client() -> httpx.Client:
    d = dev()
    base = ctx.api or d.get("api_url")
    if not base:
        raise fail("no API: pass --api URL, set JITACCESS_API, or run `jitaccess dev up` in this directory")
    from jitaccess.cli_auth import SignInError, current_token, dev_token

    try:
        if ctx.user:
            token = dev_token(d, ctx.user)
        else:
            token = os.environ.get("JITACCESS_TOKEN") or current_token(d)
    except SignInError as e:
        raise fail(str(e)) from None
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _send(method: str, path: str, **kw: Any) -> httpx.Response:
    with _client() as c:
        try:
            return c.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise fail(f"cannot reach the API at {c.base_url}: {e.__class__.__name__}") from None


def call(method: str, path: str, **kw: Any) -> dict[str, Any]:
    """One API call; its JSON answer, or exit 2 (a 4xx) / 1 (a 5xx) with the API's error."""
    r = _send(method, path, **kw)
    if r.status_code == 401 and ctx.user:
        # a dev sign-in cached from an earlier run of the stack (its OpenBao, and so its signing
        # keys, are new at every start): sign in afresh once and retry
        from jitaccess.cli_auth import SignInError, dev_sign_in

        try:
            dev_sign_in(dev(), ctx.user)
        except SignInError as e:
            raise fail(str(e)) from None
        r = _send(method, path, **kw)
    try:
        body = r.json()
    except ValueError:
        body = {"message": r.text}
    if r.status_code >= 400:
        raise fail(
            f"{r.status_code} {body.get('error', '')}: {body.get('message', r.text)}", 2 if r.status_code < 500 else 1
        )
    return body
