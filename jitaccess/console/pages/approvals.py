"""The approvals inbox: others' grants (and extensions) whose open round this person may vote on."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from jitaccess.console.core import Pages
from jitaccess.console.rules import delegations_to, pending_round, vote_status

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
        delegations = await delegations_to(c, request, sess) if rows else []
        inbox = []
        for row in rows:
            g = await c.api(request, sess, "GET", f"/v1/grants/{row['grant_id']}")
            if not g.ok:
                continue
            ok, step_up, _ = vote_status(g.body, me, delegations)
            if ok:
                inbox.append({"g": g.body, "step_up": step_up, "round": pending_round(g.body)})
        return c.render(request, "approvals.html", sess, me, inbox=inbox)
