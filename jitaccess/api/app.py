"""The HTTP API. Every call is authenticated; each route parses, calls a use case
(jitaccess.service, wired in jitaccess.api.wiring) and renders. Decisions go to the grant's
workflow as updates, whose validators answer with the rule that refused them."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from temporalio.client import Client

from jitaccess import console
from jitaccess.api import auth, codec_server, errors, warmup, wiring
from jitaccess.api.routes import decisions, delegations, evidence, grants, onboarding, ops, reconciliation
from jitaccess.bootstrap import api_parts
from jitaccess.config import Settings, load_catalogue, load_users
from jitaccess.ops import tracing

API_ROUTERS = (grants, decisions, delegations, onboarding, evidence, reconciliation)


def create_app(settings: Settings | None = None, client: Client | None = None) -> FastAPI:
    settings = settings or Settings()
    catalogue = load_catalogue(settings.catalogue_file)
    users = load_users(settings.users_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        parts = await api_parts(settings, client)
        app.state.client, app.state.ledger = parts.client, parts.ledger  # /readyz and /metrics look at them
        app.state.use_cases = wiring.use_cases(settings, catalogue, users, parts.client, parts.ledger)
        await warmup.warm_up(app, app.state.authenticator)  # bounded; the first request no longer pays
        yield
        parts.close()

    # FastAPIOffline: FastAPI with /docs (Swagger UI) and /redoc served from assets vendored in the
    # fastapi-offline package (FastAPI's self-hosting recipe), so the docs work with no CDN
    app = FastAPIOffline(
        title="jitaccess",
        version="0.1.0",
        description="Just-in-time access: request, approve, issue, expire, and prove revocation.",
        lifespan=lifespan,
    )
    app.state.settings, app.state.catalogue = settings, catalogue
    errors.install(app)
    # authentication: OIDC bearer JWTs (jitaccess.api.auth); `users` is only a directory
    auth.install(app)
    app.state.authenticator = auth.authenticator_for(settings, users)
    tracing.instrument_app(app)
    app.include_router(ops.router)  # /healthz, /readyz, /metrics (jitaccess.ops)
    codec_server.install(app, settings, app.state.authenticator)  # /codec/decode, /codec/encode for the Temporal UI
    # the web console at / (jitaccess.console): a client of these same routes, in-process
    app.include_router(console.router(settings))
    app.mount("/static", StaticFiles(directory=console.STATIC_DIR), name="console-static")
    for area in API_ROUTERS:
        app.include_router(area.router)
    return app
