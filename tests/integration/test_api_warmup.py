"""The API warms up when it starts (jitaccess.api.warmup, issue 15): it fetches its identity
providers' keys then, not on the first request, and an identity provider it cannot reach then
does not stop it starting. Real Temporal (the lifespan connects), a real OIDC issuer over HTTP."""

from __future__ import annotations

import httpx

from jitaccess.api import create_app
from tests.oidc_issuer import LocalIssuer


def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


async def _catalog(app, token: str) -> httpx.Response:
    async with _client(app) as c:
        return await c.get("/v1/catalog", headers={"Authorization": f"Bearer {token}"})


async def test_the_issuer_keys_are_fetched_at_startup_not_by_the_first_request(settings):
    issuer = LocalIssuer()
    try:
        app = create_app(settings.model_copy(update={"oidc_issuers": [issuer.entry()]}))
        assert issuer.requests == 0
        async with app.router.lifespan_context(app):
            assert issuer.requests == 2  # discovery and the JWKS, before any request
            r = await _catalog(app, issuer.sign())
            assert r.status_code == 200, r.text
            assert issuer.requests == 2  # the first request fetched nothing
    finally:
        issuer.stop()


async def test_an_issuer_down_at_startup_is_left_to_the_first_request(settings):
    issuer = LocalIssuer()
    issuer.down = True
    try:
        app = create_app(settings.model_copy(update={"oidc_issuers": [issuer.entry()]}))
        async with app.router.lifespan_context(app):  # starts all the same
            assert issuer.requests == 1  # discovery was tried and refused (503)
            issuer.down = False
            r = await _catalog(app, issuer.sign())
            assert r.status_code == 200, r.text  # not 503: the failed warm-up left no failure behind
            assert issuer.requests == 3
    finally:
        issuer.stop()
