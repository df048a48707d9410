"""Break-glass reviews: others' break-glass grants pending review that this person reviews,
earliest deadline first."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Request
from fastapi.responses import Response

from jitaccess.console.core import Pages
from jitaccess.console.rules import may_review


class ReviewPages(Pages):
    ROUTES = (("GET", "/reviews", "queue"),)

    async def queue(self, request: Request) -> Response:
        c = self.c
        sess, me = await c.me(request)
        pending = await c.rows(
            request, sess, "/v1/grants", "grants", state="pending_review", break_glass="true", limit=200
        )
        entitlements = {e["id"]: e for e in await c.rows(request, sess, "/v1/catalog", "entitlements")}
        queue = []
        for row in pending:
            if row.get("requester") == me.id:
                continue
            g = await c.api(request, sess, "GET", f"/v1/grants/{row['grant_id']}")
            if g.ok and may_review(g.body, me, entitlements.get(g.body.get("entitlement", "")) or {}):
                queue.append(g.body)
        queue.sort(key=lambda x: x.get("review_deadline") or "")
        return c.render(request, "reviews.html", sess, me, queue=queue, now=datetime.now(UTC).isoformat())
