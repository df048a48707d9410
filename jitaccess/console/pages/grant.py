"""A grant's page: its summary and evidence, the forms this person may use on it (decide, review,
revoke, extend), the live refresh, and the credential shown once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from jitaccess.api.errors import ApiError
from jitaccess.api.routes.common import expect_id
from jitaccess.console.core import Pages, back, safe_next
from jitaccess.console.pages.access import SECRETLESS
from jitaccess.console.rules import Shown, residual_window, use_cases, view_of
from jitaccess.domain.grant import Grant
from jitaccess.service.errors import NotFound

FormBody = Callable[[dict[str, str]], dict[str, Any]]
# each form on the page: the API route it posts to, and the API's body from the form
ACTIONS: dict[str, FormBody] = {
    "approve": lambda f: {"comment": f.get("comment", "")},
    "deny": lambda f: {"reason": f.get("reason", "")},
    "revoke": lambda f: {"reason": f.get("reason", "")},
    "extend": lambda f: {"duration": f.get("duration") or None, "reason": f.get("reason", "")},
    "review": lambda f: {"outcome": f.get("outcome", ""), "notes": f.get("notes", "")},
}
NO_EVIDENCE: dict[str, Any] = {"events": [], "verification": None}


def view_requester(view: dict[str, Any]) -> str | None:
    """The requester's ID: a mapping in a live grant's view, the ID itself in a ledger summary."""
    r = view.get("requester")
    return r.get("id") if isinstance(r, dict) else r


def live_key(view: dict[str, Any]) -> str:
    """What the live poll compares: the page reloads when the state or the event count moves."""
    return f"{view.get('state')}:{view.get('events')}"


class GrantPages(Pages):
    ROUTES = (
        ("GET", "/grants/{grant_id}", "page"),
        ("GET", "/grants/{grant_id}/live", "live"),
        ("POST", "/grants/{grant_id}/credential", "reveal"),
    )

    def install(self, r: APIRouter) -> None:
        super().install(r)
        for action, make_body in ACTIONS.items():
            r.add_api_route(f"/grants/{{grant_id}}/{action}", self.form(action, make_body), methods=["POST"])

    async def page(self, request: Request, grant_id: str) -> Response:
        c = self.c
        sess, me = await c.me(request)
        try:
            expect_id("grant", grant_id)
            g = await use_cases(request).reads.grant(me, grant_id)
        except ApiError as e:
            return c.error_page(request, sess, me, e.status, e.message)
        except NotFound as e:
            return c.error_page(request, sess, me, 404, e.message)
        view = view_of(g)
        ev = await c.api(request, sess, "GET", f"/v1/grants/{grant_id}/evidence")
        evidence = ev.body if ev.ok else NO_EVIDENCE
        shown = await Shown.on(request, me, g) if isinstance(g, Grant) else Shown()
        return c.render(
            request,
            "grant.html",
            sess,
            me,
            g=view,
            evidence=evidence,
            **asdict(shown),
            mine=view_requester(view) == me.id,
            residual=residual_window(evidence.get("events", [])),
            temporal=self.temporal_link(view),
            secretless=SECRETLESS,
            live_key=live_key(view),
        )

    def temporal_link(self, view: dict[str, Any]) -> str | None:
        """The grant's workflow in the Temporal UI (not for a grant read back from the ledger)."""
        ui = self.c.cs.temporal_ui_url
        if not ui or "source" in view:
            return None
        return f"{ui.rstrip('/')}/namespaces/{self.c.settings.temporal_namespace}/workflows/{view['grant_id']}"

    async def live(self, request: Request, grant_id: str, shown: str = "") -> Response:
        sess, me = await self.c.me(request)
        g = await self.c.api(request, sess, "GET", f"/v1/grants/{grant_id}")
        if not g.ok or live_key(g.body) != shown:
            return Response(status_code=204, headers={"HX-Refresh": "true"})
        return self.c.render(request, "grant_live.html", sess, me, g=g.body)

    def form(self, action: str, make_body: FormBody) -> Callable[[Request, str], Awaitable[Response]]:
        """The route for one of the grant's forms: post it to the API, flash the outcome, go back."""

        async def post(request: Request, grant_id: str) -> Response:
            sess, _, form = await self.c.posted(request)
            a = await self.c.api(request, sess, "POST", f"/v1/grants/{grant_id}/{action}", json_body=make_body(form))
            if a.ok:
                sess.flash.append(("ok", f"{action}: done"))
            else:
                sess.flash.append(("error", a.refusal(action)))
            return back(safe_next(form.get("next")) if form.get("next") else f"/grants/{grant_id}")

        post.__name__ = action
        return post

    async def reveal(self, request: Request, grant_id: str) -> Response:
        """The single-use wrapping token, shown once with copy-ready commands (never stored here)."""
        sess, me, _ = await self.c.posted(request)
        g = await self.c.api(request, sess, "GET", f"/v1/grants/{grant_id}")
        a = await self.c.api(request, sess, "GET", f"/v1/grants/{grant_id}/credential")
        if not a.ok:
            sess.flash.append(("error", a.refusal("credential")))
            return back(f"/grants/{grant_id}")
        view = g.body if g.ok else {"grant_id": grant_id}
        portal = self.c.cs.aws_access_portal_url
        return self.c.render(
            request, "credential.html", sess, me, cred=a.body, provider=view.get("provider"), g=view, portal=portal
        )
