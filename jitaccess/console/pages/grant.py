"""A grant's page: its summary and evidence, the forms this person may use on it (decide, review,
revoke, extend), the live refresh, and the credential shown once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from jitaccess.console.core import Pages, back, safe_next
from jitaccess.console.pages.access import SECRETLESS
from jitaccess.console.rules import (
    delegations_to,
    may_review,
    may_revoke,
    pending_round,
    requester_id,
    residual_window,
    vote_status,
)
from jitaccess.console.session import Session
from jitaccess.domain.principals import Principal

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
        g = await c.api(request, sess, "GET", f"/v1/grants/{grant_id}")
        if not g.ok:
            return c.error_page(request, sess, me, g.status, g.message)
        view = g.body
        ev = await c.api(request, sess, "GET", f"/v1/grants/{grant_id}/evidence")
        evidence = ev.body if ev.ok else NO_EVIDENCE
        return c.render(
            request,
            "grant.html",
            sess,
            me,
            g=view,
            evidence=evidence,
            **await self.may(request, sess, me, view),
            mine=requester_id(view) == me.id,
            residual=residual_window(evidence.get("events", [])),
            temporal=self.temporal_link(view),
            secretless=SECRETLESS,
            live_key=live_key(view),
        )

    async def may(self, request: Request, sess: Session, me: Principal, view: dict[str, Any]) -> dict[str, Any]:
        """Which of the page's forms this person may use (the API decides again when they do)."""
        may_decide, step_up = False, None
        if pending_round(view) is not None and requester_id(view) != me.id:
            may_decide, step_up, _ = vote_status(view, me, await delegations_to(self.c, request, sess))
        entitlements = await self.c.rows(request, sess, "/v1/catalog", "entitlements")
        entitlement = next((e for e in entitlements if e["id"] == view.get("entitlement", "")), {})
        return {
            "may_decide": may_decide,
            "step_up": step_up,
            "may_review": may_review(view, me, entitlement),
            "may_revoke": may_revoke(view, me, tuple(self.c.settings.admin_groups)),
        }

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
