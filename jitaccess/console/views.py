"""The web console: server-rendered pages (Jinja2, htmx for live state) served by the API process.

It is a client of the JSON API in the same process: every decision, list and form goes through the
API's own route, called in-process (ASGI) with the signed-in person's ID token, so authentication,
read scope, the domain's rules, the signed commands to the worker and the error messages are
exactly the API's. Pages that show which forms a person may use (a grant, the approvals inbox, the
reviews queue) read the grant through the use case the API's route calls and show it with the
API's own view, so the grant aggregate's own checks decide what is shown (jitaccess.console.rules).
Every form is a POST with a per-session CSRF token.

The pages are in jitaccess.console.pages, one module each; what they share (session, sign-in,
CSRF, the in-process API call, rendering) is jitaccess.console.core.
"""

from __future__ import annotations

from fastapi import APIRouter

from jitaccess.config import Settings
from jitaccess.console.core import HERE, Console, ConsoleRoute
from jitaccess.console.pages.access import AccessPages
from jitaccess.console.pages.approvals import ApprovalPages
from jitaccess.console.pages.audit import AuditPages
from jitaccess.console.pages.grant import GrantPages
from jitaccess.console.pages.request import RequestPages
from jitaccess.console.pages.reviews import ReviewPages
from jitaccess.console.pages.signin import SignInPages
from jitaccess.console.settings import ConsoleSettings

STATIC_DIR = HERE / "static"
PAGES = (SignInPages, RequestPages, AccessPages, GrantPages, ApprovalPages, ReviewPages, AuditPages)


def router(settings: Settings, console_settings: ConsoleSettings | None = None) -> APIRouter:
    c = Console(settings, console_settings or ConsoleSettings())
    r = APIRouter(include_in_schema=False, route_class=ConsoleRoute)
    for pages in PAGES:
        pages(c).install(r)
    return r
