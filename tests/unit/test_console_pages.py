"""The console's page logic without a browser: the route class that answers a lapsed sign-in and a
missing CSRF token for every page, which forms a person sees (the grant's own checks), and how the request
and audit forms become API calls (the pages in a real browser: tests/e2e/test_console.py)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from jitaccess.console.core import ApiAnswer, ConsoleRoute, FormRefused, NeedSignIn
from jitaccess.console.pages.access import digest
from jitaccess.console.pages.audit import audit_params
from jitaccess.console.pages.request import field_errors, request_body
from jitaccess.console.rules import may_review, may_revoke, requestable, vote_status
from jitaccess.domain.principals import Principal
from tests.unit.test_grant_rules import ALICE, BOB, ERIN, MALLORY, new_grant


def app_raising(exc: Exception) -> FastAPI:
    async def page() -> None:
        raise exc

    r = APIRouter(route_class=ConsoleRoute)
    r.add_api_route("/page", page, methods=["GET", "POST"])
    app = FastAPI()
    app.include_router(r)
    return app


async def call(app: FastAPI, method: str, **kw) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return await c.request(method, "/page?x=1", **kw)


async def test_a_lapsed_sign_in_goes_to_the_sign_in_page_or_is_refused_for_a_form():
    app = app_raising(NeedSignIn())
    r = await call(app, "GET")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fpage%3Fx%3D1"
    r = await call(app, "GET", headers={"HX-Request": "true"})  # htmx: the whole page goes
    assert r.status_code == 204 and r.headers["HX-Redirect"] == "/login?next=%2Fpage%3Fx%3D1"
    r = await call(app, "POST")
    assert r.status_code == 403 and r.text == "sign in first"


async def test_a_form_without_the_csrf_token_is_refused():
    r = await call(app_raising(FormRefused("refused: no token")), "POST")
    assert r.status_code == 403 and r.text == "refused: no token"


ME = Principal(id="bob", kind="human", groups=("platform-leads",))


def test_the_forms_shown_on_a_grant_are_the_grants_own_rules():
    g = new_grant()  # alice's, awaiting one approval from security
    assert vote_status(g, BOB, []) == (True, None)
    assert vote_status(g, ALICE, []) == (False, None)  # never your own
    assert vote_status(g, MALLORY, []) == (False, None)
    assert [may_revoke(g, p) for p in (ALICE, BOB, ERIN, MALLORY)] == [True, True, True, False]
    assert not may_review(g, BOB)  # not a break-glass grant pending review


def test_requestable_entitlements_mark_break_glass_eligibility():
    ents = [
        {"id": "a", "you_may_request": True},
        {"id": "b", "break_glass": {"groups": ["platform-leads"]}},
        {"id": "c", "break_glass": {"groups": ["security"]}},
    ]
    assert [e["id"] for e in requestable(ME, ents)] == ["a", "b"]
    assert [e["break_glass_eligible"] for e in ents] == [False, True, False]


def test_the_request_form_and_the_apis_refusal_by_field():
    assert request_body(
        {"entitlement": "e", "reason": "r", "duration": " PT1H ", "ticket": " ", "break_glass": "on"}
    ) == {
        "entitlement": "e",
        "reason": "r",
        "break_glass": True,
        "duration": "PT1H",
    }
    problems = ApiAnswer(422, {"problems": ["duration: bad", "other: x", "plain"]})
    assert field_errors(problems) == {"duration": ["bad"], "_": ["x", "plain"]}
    coded = ApiAnswer(403, {"reason_codes": ["duration_exceeds_max", "odd"], "messages": ["too long", "m"]})
    assert field_errors(coded) == {"duration": ["too long"], "_": ["m"]}
    assert field_errors(ApiAnswer(500, "boom")) == {"_": ["boom"]}
    assert (
        ApiAnswer(409, {"error": "conflict", "message": "busy"}).refusal("revoke") == "revoke refused (conflict): busy"
    )


@pytest.mark.parametrize(
    "given, want",
    [
        ({"since": "2026-01-02"}, "2026-01-02T00:00:00+00:00"),
        ({"since": "2026-01-02T03:04"}, "2026-01-02T03:04:00+00:00"),
        ({"since": " 2026-01-02T03:04:05Z "}, "2026-01-02T03:04:05Z"),
    ],
)
def test_audit_search_times_are_utc(given, want):
    p = audit_params({**given, "break_glass": "maybe"})
    assert p["since"] == want and p["break_glass"] == "" and p["limit"] == 1000


def test_my_access_digest_moves_with_what_the_page_shows():
    rows = [{"grant_id": "g", "state": "active", "expires_at": "t1"}]
    assert digest(rows) == digest([dict(rows[0])]) and len(digest(rows)) == 16
    assert digest(rows) != digest([{**rows[0], "state": "revoking"}])
