"""The audit search (auditors and admins): grants by requester, entitlement, state, time and
break-glass, and the matching evidence as a JSON Lines download."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from jitaccess.console.core import Pages
from jitaccess.console.session import Session
from jitaccess.domain.events import canonical_json

AUDIT_KEYS = ("requester", "entitlement", "state", "since", "until", "break_glass")
AUDITORS_ONLY = "the audit search is for auditors and admins"


def audit_params(q: dict[str, str]) -> dict[str, Any]:
    """The API's grant-list query from the search form."""
    p: dict[str, Any] = {k: q.get(k, "").strip() for k in AUDIT_KEYS}
    if p["break_glass"] not in ("true", "false"):
        p["break_glass"] = ""
    for k in ("since", "until"):  # a date alone is midnight UTC
        if p[k] and len(p[k]) == 10:
            p[k] += "T00:00:00+00:00"
        elif p[k] and len(p[k]) == 16:  # datetime-local: minutes, no zone: UTC
            p[k] += ":00+00:00"
    p["limit"] = 1000
    return p


class AuditPages(Pages):
    ROUTES = (
        ("GET", "/audit", "search"),
        ("GET", "/audit/evidence.jsonl", "download"),
    )

    async def search(self, request: Request) -> Response:
        c = self.c
        sess, me = await c.me(request)
        if not c.is_auditor(me):
            return c.error_page(request, sess, me, 403, AUDITORS_ONLY)
        q = dict(request.query_params)
        rows, error = [], None
        searched = "go" in q or any(q.get(k) for k in AUDIT_KEYS)
        if searched:
            a = await c.api(request, sess, "GET", "/v1/grants", params=audit_params(q))
            if a.ok:
                rows = a.body.get("grants", [])
            else:
                error = a.message
        return c.render(
            request,
            "audit.html",
            sess,
            me,
            q=q,
            rows=rows,
            error=error,
            searched=searched,
            download="/audit/evidence.jsonl?" + urlencode({k: q[k] for k in AUDIT_KEYS if q.get(k)}),
        )

    async def download(self, request: Request) -> Response:
        c = self.c
        sess, me = await c.me(request)
        if not c.is_auditor(me):
            return PlainTextResponse(AUDITORS_ONLY, status_code=403)
        a = await c.api(request, sess, "GET", "/v1/grants", params=audit_params(dict(request.query_params)))
        if not a.ok:
            return PlainTextResponse(a.message, status_code=a.status)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return StreamingResponse(
            self.evidence_lines(request, sess, [row["grant_id"] for row in a.body.get("grants", [])]),
            media_type="application/x-ndjson",
            headers={
                "Content-Disposition": f'attachment; filename="jitaccess-evidence-{stamp}.jsonl"',
                "Cache-Control": "no-store",
            },
        )

    async def evidence_lines(self, request: Request, sess: Session, grant_ids: list[str]) -> AsyncIterator[bytes]:
        """Each event exactly as stored (as `jitaccess export --format jsonl`): hashes re-verifiable."""
        for gid in grant_ids:
            for e in await self.c.rows(request, sess, f"/v1/grants/{gid}/events", "events"):
                yield (canonical_json(e) + "\n").encode()
