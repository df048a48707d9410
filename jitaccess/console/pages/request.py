"""The request form: the catalogue entries this person may request, and the API's refusal reasons
shown beside the field they concern."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from jitaccess.console.core import ApiAnswer, Pages, back
from jitaccess.console.rules import requestable
from jitaccess.console.session import Session
from jitaccess.domain.principals import Principal

FIELDS = ("entitlement", "duration", "reason", "ticket", "incident")
# where the API's reason codes belong on the request form
REASON_FIELD = {
    "not_in_catalogue": "entitlement",
    "requester_not_eligible": "entitlement",
    "duration_exceeds_max": "duration",
    "duration_not_positive": "duration",
    "duration_below_min": "duration",
    "reason_required": "reason",
    "incident_required": "incident",
    "break_glass_not_allowed": "break_glass",
    "not_break_glass_eligible": "break_glass",
}


def request_body(form: dict[str, str]) -> dict[str, Any]:
    """The API's request body from the form (optional fields only when filled in)."""
    body: dict[str, Any] = {
        "entitlement": form.get("entitlement", ""),
        "reason": form.get("reason", ""),
        "break_glass": form.get("break_glass") in ("on", "true", "1"),
    }
    for key in ("duration", "ticket", "incident"):
        if form.get(key, "").strip():
            body[key] = form[key].strip()
    return body


def field_errors(a: ApiAnswer) -> dict[str, list[str]]:
    """The API's refusal as messages by form field ("_" for the form as a whole)."""
    errors: dict[str, list[str]] = {}
    b = a.body if isinstance(a.body, dict) else {}
    codes, messages = b.get("reason_codes") or [], b.get("messages") or []
    if b.get("problems"):
        for p in b["problems"]:
            field, _, msg = str(p).partition(": ")
            errors.setdefault(field if field in FIELDS else "_", []).append(msg or p)
    elif codes and len(messages) == len(codes):
        for code, msg in zip(codes, messages):
            errors.setdefault(REASON_FIELD.get(code, "_"), []).append(msg)
    else:
        errors["_"] = [a.message]
    return errors


class RequestPages(Pages):
    ROUTES = (
        ("GET", "/request", "form"),
        ("POST", "/request", "submit"),
    )

    async def entitlements(self, request: Request, sess: Session, me: Principal) -> list[dict[str, Any]]:
        return requestable(me, await self.c.rows(request, sess, "/v1/catalog", "entitlements"))

    async def form(self, request: Request, entitlement: str = "") -> Response:
        sess, me = await self.c.me(request)
        ents = await self.entitlements(request, sess, me)
        return self.c.render(
            request, "request.html", sess, me, entitlements=ents, form={"entitlement": entitlement}, errors={}
        )

    async def submit(self, request: Request) -> Response:
        sess, me, form = await self.c.posted(request)
        body = request_body(form)
        a = await self.c.api(request, sess, "POST", "/v1/grants", json_body=body)
        if a.ok:
            gid = a.body["grant_id"]
            sess.flash.append(("ok", f"requested {body['entitlement']}: {gid}"))
            return back(f"/grants/{gid}")
        denied = a.body.get("grant_id") if a.status == 403 and isinstance(a.body, dict) else None
        ents = await self.entitlements(request, sess, me)
        return self.c.render(
            request,
            "request.html",
            sess,
            me,
            a.status,
            entitlements=ents,
            form=form,
            errors=field_errors(a),
            denied=denied,
        )
