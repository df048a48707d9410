"""The API served by a real uvicorn on a free port, with a real worker, Temporal and OpenBao."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest
import uvicorn

from jitaccess.api import create_app
from jitaccess.config import load_users
from jitaccess.devstack import free_port
from tests.conftest import running_worker


class Api:
    def __init__(self, base: str, tokens: dict[str, str]) -> None:
        self.base, self.tokens = base, tokens

    def as_(self, user: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.AsyncClient(base_url=self.base, headers=headers, timeout=30)

    async def call(self, user: str | None, method: str, path: str, **kw) -> httpx.Response:
        async with self.as_(user) as c:
            return await c.request(method, path, **kw)

    def _in_ledger(self, grant_id: str, events: int) -> bool:
        """Every event the workflow has emitted so far is stored (the evidence is written by an
        activity scheduled when the workflow task commits, so it trails the live state briefly)."""
        ledger = getattr(self, "ledger", None)
        return ledger is None or len(ledger.events(grant_id)) >= events

    async def wait_state(self, user: str, grant_id: str, *states: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            r = await self.call(user, "GET", f"/v1/grants/{grant_id}")
            assert r.status_code == 200, r.text
            if r.json()["state"] in states and self._in_ledger(grant_id, r.json()["events"]):
                return r.json()
            if time.monotonic() > deadline:
                raise AssertionError(f"{grant_id} stayed {r.json()['state']}, wanted {states}")
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def serve_api(settings):
    async with running_worker(settings) as (client, ledger):
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings, client), host="127.0.0.1", port=port, log_level="warning")
        )
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        users = load_users(settings.users_file)
        try:
            yield Api(f"http://127.0.0.1:{port}", {n: u.token.get_secret_value() for n, u in users.items()}), ledger
        finally:
            server.should_exit = True
            await task


@pytest.fixture
async def api(settings):
    async with serve_api(settings) as (api, ledger):
        api.ledger = ledger
        yield api
