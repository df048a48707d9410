"""My access: the signed-in person's grants, refreshed by htmx when any of them changes."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from jitaccess.console.core import Pages
from jitaccess.console.session import Session
from jitaccess.domain.principals import Principal

SECRETLESS = {"aws_identity_center", "aws_iam_group"}  # identity-based: nothing to hand over


def digest(rows: list[dict[str, Any]]) -> str:
    """What the page shows, in 16 hex digits: the live poll reloads the page when it changes."""
    raw = "|".join(f"{x['grant_id']}:{x['state']}:{x.get('expires_at')}" for x in rows)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


class AccessPages(Pages):
    ROUTES = (
        ("GET", "/access", "page"),
        ("GET", "/access/live", "live"),
    )

    async def my_rows(self, request: Request, sess: Session, me: Principal) -> list[dict[str, Any]]:
        return await self.c.rows(request, sess, "/v1/grants", "grants", requester=me.id, limit=200)

    async def page(self, request: Request) -> Response:
        sess, me = await self.c.me(request)
        rows = await self.my_rows(request, sess, me)
        return self.c.render(request, "access.html", sess, me, rows=rows, digest=digest(rows), secretless=SECRETLESS)

    async def live(self, request: Request, shown: str = "") -> Response:
        sess, me = await self.c.me(request)
        rows = await self.my_rows(request, sess, me)
        if digest(rows) != shown:
            return Response(status_code=204, headers={"HX-Refresh": "true"})
        return self.c.render(request, "access_live.html", sess, me, rows=rows)
