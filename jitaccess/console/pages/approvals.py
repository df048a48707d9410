"""The approvals inbox: others' grants (and extensions) whose open round this person may vote on."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from jitaccess.api.views import grant_view
from jitaccess.console.core import Pages
from jitaccess.console.rules import live_grant, use_cases, vote_status

VOTABLE_STATES = ("awaiting_approval", "active")  # a request's round, an extension's round


class ApprovalPages(Pages):
    ROUTES = (("GET", "/approvals", "inbox"),)

    async def inbox(self, request: Request) -> Response:
        c = self.c
        sess, me = await c.me(request)
        rows: list[dict[str, Any]] = []
        for state in VOTABLE_STATES:
            listed = await c.rows(request, sess, "/v1/grants", "grants", state=state, limit=200)
            rows += [x for x in listed if x.get("requester") != me.id]
        delegations = await use_cases(request).authority.lent_to(me) if rows else []
        inbox = []
        for row in rows:
            g = await live_grant(request, me, row["grant_id"])
            rnd = g.pending_round() if g else None
            if g is None or rnd is None:
                continue
            ok, step_up = vote_status(g, me, delegations)
            if ok:
                inbox.append({"g": grant_view(g), "step_up": step_up, "round": rnd.model_dump(mode="json")})
        return c.render(request, "approvals.html", sess, me, inbox=inbox)
