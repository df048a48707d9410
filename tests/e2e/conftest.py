"""The API served by a real uvicorn on a free port, with a real worker, Temporal and OpenBao.
Every user signs in to the session OpenBao as identity provider (jitaccess.dev.identity): each
call carries a real ID token, signed in on first use and again before it expires."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn

from jitaccess.api import create_app
from jitaccess.dev.identity import DevTokens
from jitaccess.dev.servers import free_port
from tests.conftest import IDPS, running_worker
from tests.support import eventually


class _SignedIn(httpx.Auth):
    """The user's current ID token on every request (signed in again when it nears expiry)."""

    def __init__(self, tokens: DevTokens, user: str) -> None:
        self.tokens, self.user = tokens, user

    def auth_flow(self, request):
        request.headers["Authorization"] = f"Bearer {self.tokens[self.user]}"
        yield request

    async def async_auth_flow(self, request):
        token = await asyncio.to_thread(self.tokens.__getitem__, self.user)
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


class Api:
    def __init__(self, base: str, tokens: DevTokens) -> None:
        self.base, self.tokens = base, tokens  # tokens: user -> a valid ID token (a Mapping)

    def as_(self, user: str | None) -> httpx.AsyncClient:
        auth = _SignedIn(self.tokens, user) if user else None
        return httpx.AsyncClient(base_url=self.base, auth=auth, timeout=30)

    def step_up(self, user: str, on: bool = True) -> None:
        """From now on `user` signs in with step-up (password + TOTP: amr [pwd, otp, mfa], acr mfa)."""
        (self.tokens.step_up_users.add if on else self.tokens.step_up_users.discard)(user)

    async def call(self, user: str | None, method: str, path: str, **kw) -> httpx.Response:
        async with self.as_(user) as c:
            return await c.request(method, path, **kw)

    def _in_ledger(self, grant_id: str, events: int) -> bool:
        """Every event the workflow has emitted so far is stored (the evidence is written by an
        activity scheduled when the workflow task commits, so it trails the live state briefly)."""
        ledger = getattr(self, "ledger", None)
        return ledger is None or len(ledger.events(grant_id)) >= events

    async def wait_state(self, user: str, grant_id: str, *states: str, timeout: float = 30) -> dict:
        async def reached() -> dict:
            r = await self.call(user, "GET", f"/v1/grants/{grant_id}")
            if r.status_code != 200:
                pytest.fail(f"GET {grant_id}: {r.status_code} {r.text}")
            g = r.json()
            assert g["state"] in states, f"{grant_id} stayed {g['state']}, wanted {states}"
            assert self._in_ledger(grant_id, g["events"]), f"{grant_id}: its events are not all stored yet"
            return g

        return await eventually(reached, timeout, f"{grant_id} in {states}")


@contextlib.asynccontextmanager
async def uvicorn_api(settings, client) -> AsyncIterator[str]:
    """The API app (create_app) served by uvicorn in this event loop on a free port; yields its URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, client), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, 30, "the API serving", interval=0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def serve_api(settings):
    idp = IDPS[settings.vault_addr]  # the identity provider seeded in that OpenBao (tests/conftest.py)
    if not settings.oidc_issuers:
        settings = settings.model_copy(update={"oidc_issuers": idp.issuers})
    async with running_worker(settings) as (client, ledger), uvicorn_api(settings, client) as base:
        yield Api(base, DevTokens(idp)), ledger


@pytest.fixture
async def api(settings):
    async with serve_api(settings) as (api, ledger):
        api.ledger = ledger
        yield api
