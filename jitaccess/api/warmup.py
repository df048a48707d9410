"""What the API does once at start so that its first request costs what later ones do (issue 15,
bench/README.md "First request"): measured, a fresh process's first `POST /v1/grants` waited for
OIDC discovery and the JWKS, for the import of anyio's asyncio backend (on httpx's first request)
and for FastAPI building each route's dependency state (done on a route's first match).

The warm-up is bounded (`WARM_UP_TIMEOUT`) and never fails startup: an identity provider that cannot
be reached is logged, and what was not warmed is done lazily by the first request, as before."""

from __future__ import annotations

import asyncio

import httpx
import structlog
from fastapi import FastAPI

from jitaccess.api.auth import Authenticator

WARM_UP_TIMEOUT = 5.0  # seconds; the JWKS fetch alone may take http_timeout (5 s) per call
UNROUTED_PATH = "/_warm-up"  # matches no route, so matching it walks (and builds) every route

log = structlog.get_logger("jitaccess.api")


async def warm_up(app: FastAPI, authenticator: Authenticator, timeout: float = WARM_UP_TIMEOUT) -> None:
    """Build the routes and fetch the issuers' keys, for at most `timeout` seconds."""
    try:
        await asyncio.wait_for(_warm(app, authenticator), timeout)
    except TimeoutError:
        log.warning("api_warm_up_timed_out", timeout_s=timeout, then="the first request does the rest")


async def _warm(app: FastAPI, authenticator: Authenticator) -> None:
    await _build_routes(app)
    await authenticator.validator.prefetch()


async def _build_routes(app: FastAPI) -> None:
    """One in-process request that no route matches: FastAPI builds a route's dependency state and
    Starlette its middleware stack when a request first reaches them (public behaviour, no internals)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://warm-up") as client:
        await client.get(UNROUTED_PATH)
