"""Break-glass reviews: others' break-glass grants pending review that this person reviews,
earliest deadline first."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Request
from fastapi.responses import Response

from jitaccess.api.views import grant_view
from jitaccess.console.core import Pages
from jitaccess.console.rules import live_grant, may_review


class ReviewPages(Pages):
    ROUTES = (("GET", "/reviews", "queue"),)

    async def queue(self, request: Request) -> Response:
        c = self.c
        sess, me = await c.me(request)
        pending = await c.rows(
            request, sess, "/v1/grants", "grants", state="pending_review", break_glass="true", limit=200
        )
        queue = []
        for row in pending:
            if row.get("requester") == me.id:
                continue
            g = await live_grant(request, me, row["grant_id"])
            if g is not None and may_review(g, me):
                queue.append(grant_view(g))
        queue.sort(key=lambda x: x.get("review_deadline") or "")
        return c.render(request, "reviews.html", sess, me, queue=queue, now=datetime.now(UTC).isoformat())
