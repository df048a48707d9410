"""Issue 8: the OpenAPI document lists every error each operation can return, with the error model,
and /docs works offline (Swagger UI's assets come from the app, not a CDN). No servers needed:
the document and the docs page are built without the app's lifespan."""

from __future__ import annotations

import re

import httpx
import pytest

from jitaccess.api import create_app
from jitaccess.config import Settings


@pytest.fixture(scope="module")
def app():
    return create_app(Settings(users_file=None))


def _client(app) -> httpx.AsyncClient:  # in-process, without the lifespan (no servers)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://jitaccess.test")


def _ops(spec):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            yield path, method, op


def test_every_error_response_is_documented_with_the_error_model(app):
    spec = app.openapi()
    assert "ErrorBody" in spec["components"]["schemas"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # our 422 is not FastAPI's default shape
    for path, method, op in _ops(spec):
        errors = {s: r for s, r in op["responses"].items() if s[0] in "45"}
        if path != "/healthz":
            assert "401" in errors, (method, path)
        for status, r in errors.items():
            schema = r["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
            assert r["description"], (method, path, status)


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("post", "/v1/grants", {"401", "403", "409", "422"}),
        ("get", "/v1/grants/{grant_id}", {"401", "404"}),
        ("post", "/v1/grants/{grant_id}/approve", {"401", "403", "404", "409", "422"}),
        ("post", "/v1/grants/{grant_id}/extend", {"401", "403", "404", "409", "422"}),
        ("get", "/v1/grants/{grant_id}/credential", {"401", "403", "404", "409", "410"}),
        ("post", "/v1/delegations", {"401", "403", "422"}),
        ("get", "/v1/onboardings/{oid}", {"401", "404"}),
        ("post", "/v1/onboardings/{oid}/offboard", {"401", "403", "404", "409", "422"}),
        ("post", "/v1/reconciliation/runs", {"401", "403"}),
    ],
)
def test_operations_list_their_errors(app, method, path, statuses):
    responses = app.openapi()["paths"][path][method]["responses"]
    assert statuses <= set(responses), sorted(responses)


async def test_the_error_model_matches_what_the_api_returns(app):
    schema = app.openapi()["components"]["schemas"]["ErrorBody"]
    assert set(schema["required"]) == {"error", "message"} and schema.get("additionalProperties", True)
    async with _client(app) as client:
        r = await client.get("/v1/catalog")
    assert r.status_code == 401 and set(r.json()) >= {"error", "message"}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_their_assets_from_the_app(app, page):
    async with _client(app) as client:
        r = await client.get(page)
        assets = await _assets_of(client, r.text)
    assert r.status_code == 200 and assets


async def _assets_of(client: httpx.AsyncClient, html: str) -> list[str]:
    """Every asset the page loads, each fetched from the app itself."""
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "docs page loads from another host"
    assert "cdn" not in html.lower() and "fonts.googleapis" not in html
    assets = re.findall(r"""(?:src|href)=["'](/[^"']+)["']""", html) + re.findall(r"""url: ?['"](/[^'"]+)['"]""", html)
    assert any(a.endswith(".js") for a in assets), html
    for asset in assets:
        got = await client.get(asset)
        assert got.status_code == 200 and len(got.content) > 100, asset
    return assets
