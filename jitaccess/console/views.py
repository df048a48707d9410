"""The web console: server-rendered pages (Jinja2, htmx for live state) served by the API process.

It is a client of the JSON API in the same process: every read and every decision is the API's
own route, called in-process (ASGI) with the signed-in person's ID token, so authentication,
read scope, the domain's rules, the signed commands to the worker and the error messages are
exactly the API's. Beside that the console only decides what to *show* (e.g. which grants go in
an approvals inbox), using the domain's own rules (jitaccess.domain.grant.authorise_vote,
jitaccess.domain.access). Every form is a POST with a per-session CSRF token.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import TypeAdapter, ValidationError

from jitaccess.api.auth import AuthProblem, IdpUnavailable
from jitaccess.config import Settings, load_users
from jitaccess.console.oidc import OidcClient, SignInFailed
from jitaccess.console.session import COOKIE, Session, SessionStore
from jitaccess.console.settings import ConsoleSettings
from jitaccess.domain.access import may_verify_all, viewer_for
from jitaccess.domain.delegation import current_delegations
from jitaccess.domain.events import canonical_json
from jitaccess.domain.grant import ApprovalRound, Delegation, Refusal, authorise_vote
from jitaccess.domain.principals import Principal

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
MAX_FORM = 64 * 1024
_TD = TypeAdapter(timedelta)
ACTIVE_LIKE = {"approved", "issuing", "active", "revoking", "revocation_failing"}
ENDED = {"denied", "approval_expired", "cancelled", "issue_failed", "revoked", "reviewed", "expired"}
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
SECRETLESS = {"aws_identity_center", "aws_iam_group"}  # identity-based: nothing to hand over


# -- small formatting helpers (also Jinja filters) -------------------------------------------------
def parse_duration(v: Any) -> timedelta | None:
    if v is None or v == "":
        return None
    if isinstance(v, int | float):
        return timedelta(seconds=v)
    try:
        return _TD.validate_python(v)
    except ValidationError:
        return None


def human_duration(v: Any) -> str:
    td = v if isinstance(v, timedelta) else parse_duration(v)
    if td is None:
        return "" if v in (None, "") else str(v)
    secs = int(td.total_seconds())
    if secs <= 0:
        return "0s"
    parts = []
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if secs >= n:
            parts.append(f"{secs // n}{unit}")
            secs %= n
    return " ".join(parts[:2])


def parse_time(v: Any) -> datetime | None:
    if not v:
        return None
    try:
        t = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def time_left(expires_at: Any, now: datetime | None = None) -> str:
    t = parse_time(expires_at)
    if t is None:
        return ""
    left = t - (now or datetime.now(UTC))
    return "expired" if left.total_seconds() <= 0 else human_duration(timedelta(seconds=int(left.total_seconds())))


def short_time(v: Any) -> str:
    t = parse_time(v)
    return t.strftime("%Y-%m-%d %H:%M:%S UTC") if t else ("" if v is None else str(v))


def approvers_of(e: dict[str, Any]) -> str:
    """Who approves an entitlement, in words (from the catalogue entry as the API shows it)."""
    a = e.get("approval") or {}
    if a.get("auto_approve"):
        return "auto-approved"
    parts = []
    stages = a.get("stages") or []
    if not stages and a.get("approver_groups"):
        stages = [{"approver_groups": a["approver_groups"], "min_approvals": a.get("min_approvals", 1)}]
    order = " then " if a.get("stage_order", "sequential") == "sequential" else " and "
    parts.append(
        order.join(f"{s.get('min_approvals', 1)} of {', '.join(s.get('approver_groups', []))}" for s in stages)
    )
    for r in a.get("auto_rules") or []:
        cond = f" up to {human_duration(r['max_duration'])}" if r.get("max_duration") else ""
        who = f" for {', '.join(r['requester_groups'])}" if r.get("requester_groups") else ""
        parts.append(f"auto-approved{who}{cond} ({r['name']})")
    if e.get("approver_auth"):
        parts.append("approvers need a step-up sign-in")
    return "; ".join(p for p in parts if p) or "approval"


@dataclass
class ApiAnswer:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        if isinstance(self.body, dict):
            return str(self.body.get("message") or self.body.get("error") or self.status)
        return str(self.body)[:300]

    @property
    def error(self) -> str:
        return str(self.body.get("error", "")) if isinstance(self.body, dict) else ""


class NeedSignIn(Exception):
    pass


class Console:
    def __init__(self, settings: Settings, cs: ConsoleSettings) -> None:
        self.settings, self.cs = settings, cs
        self.store = SessionStore(cs.session_ttl.total_seconds(), cs.idle_timeout.total_seconds(), cs.max_sessions)
        self.users = load_users(settings.users_file)
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(("html",)), auto_reload=False
        )
        self.env.filters.update(
            duration=human_duration, left=time_left, when=short_time, approvers=approvers_of, tojson_pretty=_pretty
        )
        self._oidc: OidcClient | None = None

    # -- sign-in -----------------------------------------------------------------------------
    def oidc(self) -> OidcClient:
        if self._oidc is None:
            issuer, client_id = self.cs.issuer, self.cs.client_id
            if not (issuer and client_id):
                human = next((e for e in self.settings.oidc_issuers if e.kind == "human"), None)
                if human is None:
                    raise SignInFailed("no identity provider is configured (JITACCESS_CONSOLE_ISSUER / _CLIENT_ID)")
                issuer, client_id = issuer or human.issuer, client_id or human.audience[0]
            secret = self.cs.client_secret.get_secret_value() if self.cs.client_secret else None
            self._oidc = OidcClient(issuer, client_id, self.cs.scopes, secret)
        return self._oidc

    def base_url(self, request: Request) -> str:
        return (self.cs.public_url or self.settings.public_url or str(request.base_url)).rstrip("/")

    def secure_cookie(self, request: Request) -> bool:
        if self.cs.cookie_secure is not None:
            return self.cs.cookie_secure
        host = urlsplit(self.base_url(request)).hostname or ""
        return host not in ("localhost", "127.0.0.1", "::1")

    def set_cookie(self, request: Request, response: Response, sess: Session) -> None:
        response.set_cookie(
            COOKIE,
            sess.sid,
            httponly=True,
            samesite="lax",
            secure=self.secure_cookie(request),
            path="/",
            max_age=int(self.cs.session_ttl.total_seconds()),
        )

    def session(self, request: Request) -> Session | None:
        return self.store.get(request.cookies.get(COOKIE))

    async def me(self, request: Request) -> tuple[Session, Principal]:
        """The signed-in person, authenticated by the API's own authenticator from the session's
        ID token (so exactly as the JSON API would); NeedSignIn if there is none or it lapsed."""
        sess = self.session(request)
        if sess is None or not sess.id_token:
            raise NeedSignIn
        creds = HTTPAuthorizationCredentials(scheme="Bearer", credentials=sess.id_token)
        try:
            me = await request.app.state.authenticator(creds)
        except AuthProblem:
            self.store.drop(sess.sid)
            raise NeedSignIn from None
        return sess, me

    # -- the JSON API, in-process -----------------------------------------------------------------
    async def api(
        self,
        request: Request,
        sess: Session,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
    ) -> ApiAnswer:
        transport = httpx.ASGITransport(app=request.app)
        headers = {"Authorization": f"Bearer {sess.id_token}", "User-Agent": "jitaccess-console"}
        async with httpx.AsyncClient(transport=transport, base_url="http://console.internal", timeout=60) as c:
            kw: dict[str, Any] = {"headers": headers}
            if params:
                kw["params"] = {k: v for k, v in params.items() if v not in (None, "")}
            if json_body is not None:
                kw["json"] = json_body
            r = await c.request(method, path, **kw)
        try:
            body = r.json()
        except ValueError:
            body = r.text
        if r.status_code == 401:
            self.store.drop(sess.sid)
            raise NeedSignIn
        return ApiAnswer(r.status_code, body)

    # -- rendering ----------------------------------------------------------------------------------
    def render(
        self,
        request: Request,
        name: str,
        sess: Session | None = None,
        me: Principal | None = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
        **ctx: Any,
    ) -> HTMLResponse:
        flash = sess.flash if sess else []
        if sess:
            sess.flash = []
        page = self.env.get_template(name).render(
            request=request,
            me=me,
            csrf=sess.csrf if sess else "",
            flash=flash,
            auditor=self.is_auditor(me) if me else False,
            path=request.url.path,
            poll=self.cs.poll_seconds,
            **ctx,
        )
        resp = HTMLResponse(page, status_code=status, headers=headers)
        resp.headers.setdefault("Cache-Control", "no-store")
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "same-origin"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
        )
        return resp

    def is_auditor(self, me: Principal | None) -> bool:
        if me is None:
            return False
        v = viewer_for(me, admin_groups=self.settings.admin_groups, auditor_groups=self.settings.auditor_groups)
        return may_verify_all(v)

    # -- domain rules for what to show ---------------------------------------------------------------
    async def delegations_to(self, request: Request, sess: Session, me: Principal) -> list[Delegation]:
        r = await self.api(request, sess, "GET", "/v1/delegations")
        made = [Delegation.model_validate(d) for d in (r.body.get("to_me", []) if r.ok else [])]
        if self.users:  # each delegator with their current groups, as the API does before a vote
            users = self.users
            made = current_delegations(made, lambda uid: users[uid].principal(uid) if uid in users else None)
        return made

    def vote_status(
        self, view: dict[str, Any], me: Principal, delegations: list[Delegation]
    ) -> tuple[bool, str | None, str | None]:
        """(may decide now, step-up message if approving needs a fresh sign-in, why not) for the
        grant's pending round: the domain's own vote rule (the workflow's validator runs it again)."""
        rnd_raw = pending_round(view)
        if rnd_raw is None:
            return False, None, "nothing to decide"
        rnd = ApprovalRound.model_validate(rnd_raw)
        requester = Principal.model_validate(view["requester"])
        subject = f"grant {view['grant_id']} ({view['entitlement']})"
        now = datetime.now(UTC)
        try:
            authorise_vote(rnd, requester, subject, me, now, delegations, "deny")
        except Refusal as e:
            return False, None, e.message
        try:
            authorise_vote(rnd, requester, subject, me, now, delegations, "approve")
        except Refusal as e:
            if e.rule == "step_up_required":
                return True, e.message, None
            return False, None, e.message
        return True, None, None


def _pretty(v: Any) -> str:
    return json.dumps(v, indent=2, sort_keys=True, default=str)


def pending_round(view: dict[str, Any]) -> dict[str, Any] | None:
    """The round open for votes, as `Grant.pending_round` defines it, from the API's view."""
    if view.get("state") == "awaiting_approval":
        return view.get("approval")
    ext = view.get("extension") or {}
    if view.get("state") == "active" and ext.get("status") == "pending":
        return ext.get("round")
    return None


def safe_next(v: str | None) -> str:
    """Only a local path: never an open redirect."""
    if not v or not v.startswith("/") or v.startswith("//") or "\\" in v or len(v) > 500:
        return "/"
    return v


async def read_form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM:
        return {}
    ctype = request.headers.get("content-type", "")
    if "application/x-www-form-urlencoded" not in ctype:
        return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def router(settings: Settings, console_settings: ConsoleSettings | None = None) -> APIRouter:
    cs = console_settings or ConsoleSettings()
    c = Console(settings, cs)
    r = APIRouter(include_in_schema=False)

    def to_login(request: Request) -> Response:
        nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.headers.get("HX-Request"):
            return Response(status_code=204, headers={"HX-Redirect": "/login?" + urlencode({"next": nxt})})
        return RedirectResponse("/login?" + urlencode({"next": safe_next(nxt)}), status_code=303)

    async def posted(request: Request) -> tuple[Session, Principal, dict[str, str]] | Response:
        """A form POST: signed in, and carrying this session's CSRF token (form field or header)."""
        try:
            sess, me = await c.me(request)
        except NeedSignIn:
            return PlainTextResponse("sign in first", status_code=403)
        form = await read_form(request)
        token = form.get("csrf_token") or request.headers.get("X-CSRF-Token")
        if not sess.csrf_ok(token):
            return PlainTextResponse(
                "refused: this form lacks a valid CSRF token (reload the page and try again)", status_code=403
            )
        return sess, me, form

    def back(to: str) -> RedirectResponse:
        return RedirectResponse(to, status_code=303)

    # -- sign-in / sign-out ---------------------------------------------------------------------------
    @r.get("/login")
    async def login(request: Request, next: str = "/", step_up: bool = False) -> Response:
        sess = c.session(request) or c.store.new()
        try:
            url, pending = await c.oidc().start(
                c.base_url(request) + "/auth/callback", step_up=step_up, acr=c.cs.step_up_acr
            )
        except SignInFailed as e:
            return c.render(request, "signin_failed.html", status=503, message=str(e))
        pending["next"] = safe_next(next)
        sess.login = pending
        resp = RedirectResponse(url, status_code=303)
        c.set_cookie(request, resp, sess)
        return resp

    @r.get("/auth/callback")
    async def callback(request: Request) -> Response:
        sess = c.session(request)
        query = dict(request.query_params)
        if sess is None or not sess.login:
            return c.render(
                request, "signin_failed.html", status=400, message="no sign-in in progress in this browser; start again"
            )
        pending, sess.login = sess.login, None
        try:
            token = await c.oidc().finish(pending, query, request.app.state.authenticator.validator)
            me = await request.app.state.authenticator(HTTPAuthorizationCredentials(scheme="Bearer", credentials=token))
        except SignInFailed as e:
            return c.render(request, "signin_failed.html", status=400, message=str(e))
        except (AuthProblem, IdpUnavailable) as e:
            return c.render(request, "signin_failed.html", status=400, message=e.message)
        new = c.store.rotate(sess)
        new.id_token, new.user = token, me.id
        new.token_exp = me.auth_context.expires_at.timestamp() if me.auth_context else 0
        resp = back(pending.get("next") or "/")
        c.set_cookie(request, resp, new)
        return resp

    @r.post("/logout")
    async def logout(request: Request) -> Response:
        got = await posted(request)
        if isinstance(got, Response):
            return got
        sess, _, _ = got
        c.store.drop(sess.sid)
        resp = c.render(request, "signed_out.html")
        resp.delete_cookie(COOKIE, path="/")
        return resp

    # -- pages ------------------------------------------------------------------------------------------
    @r.get("/")
    async def home(request: Request) -> Response:
        try:
            sess, me = await c.me(request)
        except NeedSignIn:
            return c.render(request, "welcome.html")
        return back("/access")

    async def catalogue(request: Request, sess: Session) -> list[dict[str, Any]]:
        a = await c.api(request, sess, "GET", "/v1/catalog")
        return list(a.body.get("entitlements", [])) if a.ok else []

    def requestable(me: Principal, entitlements: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for e in entitlements:
            bg = e.get("break_glass") or {}
            e["break_glass_eligible"] = bool(bg) and me.in_any(tuple(bg.get("groups", ())))
            if e.get("you_may_request") or e["break_glass_eligible"]:
                out.append(e)
        return out

    @r.get("/request")
    async def request_page(request: Request, entitlement: str = "") -> Response:
        try:
            sess, me = await c.me(request)
        except NeedSignIn:
            return to_login(request)
        ents = requestable(me, await catalogue(request, sess))
        return c.render(
            request, "request.html", sess, me, entitlements=ents, form={"entitlement": entitlement}, errors={}
        )

    @r.post("/request")
    async def submit_request(request: Request) -> Response:
        got = await posted(request)
        if isinstance(got, Response):
            return got
        sess, me, form = got
        body: dict[str, Any] = {
            "entitlement": form.get("entitlement", ""),
            "reason": form.get("reason", ""),
            "break_glass": form.get("break_glass") in ("on", "true", "1"),
        }
        for key in ("duration", "ticket", "incident"):
            if form.get(key, "").strip():
                body[key] = form[key].strip()
        a = await c.api(request, sess, "POST", "/v1/grants", json_body=body)
        if a.ok:
            gid = a.body["grant_id"]
            sess.flash.append(("ok", f"requested {body['entitlement']}: {gid}"))
            return back(f"/grants/{gid}")
        errors: dict[str, list[str]] = {}
        b = a.body if isinstance(a.body, dict) else {}
        codes, messages = b.get("reason_codes") or [], b.get("messages") or []
        if b.get("problems"):
            for p in b["problems"]:
                field, _, msg = str(p).partition(": ")
                errors.setdefault(
                    field if field in ("entitlement", "duration", "reason", "ticket", "incident") else "_", []
                ).append(msg or p)
        elif codes and len(messages) == len(codes):
            for code, msg in zip(codes, messages):
                errors.setdefault(REASON_FIELD.get(code, "_"), []).append(msg)
        else:
            errors["_"] = [a.message]
        denied = b.get("grant_id") if a.status == 403 else None
        ents = requestable(me, await catalogue(request, sess))
        return c.render(
            request,
            "request.html",
            sess,
            me,
            status=a.status,
            entitlements=ents,
            form=form,
            errors=errors,
            denied=denied,
        )

    # -- my access ----------------------------------------------------------------------------------------
    async def my_rows(request: Request, sess: Session, me: Principal) -> list[dict[str, Any]]:
        a = await c.api(request, sess, "GET", "/v1/grants", params={"requester": me.id, "limit": 200})
        return list(a.body.get("grants", [])) if a.ok else []

    def digest(rows: list[dict[str, Any]]) -> str:
        raw = "|".join(f"{x['grant_id']}:{x['state']}:{x.get('expires_at')}" for x in rows)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    @r.get("/access")
    async def access(request: Request) -> Response:
        try:
            sess, me = await c.me(request)
        except NeedSignIn:
            return to_login(request)
        rows = await my_rows(request, sess, me)
        return c.render(
            request,
            "access.html",
            sess,
            me,
            rows=rows,
            digest=digest(rows),
            secretless=SECRETLESS,
            active_like=ACTIVE_LIKE,
        )

    @r.get("/access/live")
    async def access_live(request: Request, shown: str = "") -> Response:
        try:
            sess, me = await c.me(request)
        except NeedSignIn:
            return to_login(request)
        rows = await my_rows(request, sess, me)
        if digest(rows) != shown:
            return Response(status_code=204, headers={"HX-Refresh": "true"})
        return c.render(request, "access_live.html", sess, me, rows=rows)

    # -- a grant --------------------------------------------------------------------------------------------
    @r.get("/grants/{grant_id}")
    async def grant_page(request: Request, grant_id: str) -> Response:
        try:
            sess, me = await c.me(request)
        except NeedSignIn:
            return to_login(request)
        g = await c.api(request, sess, "GET", f"/v1/grants/{grant_id}")
        if not g.ok:
            return c.render(request, "not_found.html", sess, me, status=g.status, message=g.message)
        view = g.body
        ev = await c.api(request, sess, "GET", f"/v1/grants/{grant_id}/evidence")
        evidence = ev.body if ev.ok else {"events": [], "verification": None}
        may_decide, step_up, _ = (False, None, None)
        if pending_round(view) is not None and view.get("requester", {}).get("id") != me.id:
            may_decide, step_up, _ = c.vote_status(view, me, await c.delegations_to(request, sess, me))
        ents = {e["id"]: e for e in await catalogue(request, sess)}
        ent = ents.get(view.get("entitlement", ""), {})
        bg = ent.get("break_glass") or {}
        reviewer_groups = tuple(bg.get("reviewer_groups", ())) + (
            tuple(bg.get("escalation_groups", ())) if view.get("review_escalated") else ()
        )
        requester_id = (view.get("requester") or {}).get("id")
        may_review = view.get("state") == "pending_review" and requester_id != me.id and me.in_any(reviewer_groups)
        decision = view.get("decision") or {}
        may_revoke = view.get("state") in ("awaiting_approval", "approved", "issuing", "active") and (
            requester_id == me.id
            or me.in_any(tuple(decision.get("approver_groups", ())))
            or me.in_any(tuple(c.settings.admin_groups))
        )
        residual = residual_window(evidence.get("events", []))
        temporal = None
        if c.cs.temporal_ui_url and "source" not in view:
            temporal = (
                f"{c.cs.temporal_ui_url.rstrip('/')}/namespaces/{c.settings.temporal_namespace}/workflows/{grant_id}"
            )
        return c.render(
            request,
            "grant.html",
            sess,
            me,
            g=view,
            evidence=evidence,
            may_decide=may_decide,
            step_up=step_up,
            may_review=may_review,
            may_revoke=may_revoke,
            mine=requester_id == me.id,
            residual=residual,
            temporal=temporal,
            secretless=SECRETLESS,
            live_key=f"{view.get('state')}:{view.get('events')}",
        )

    @r.get("/grants/{grant_id}/live")
    async def grant_live(request: Request, grant_id: str, shown: str = "") -> Response:
        try:
            sess, me = await c.me(request)
        except NeedSignIn:
            return to_login(request)
        g = await c.api(request, sess, "GET", f"/v1/grants/{grant_id}")
        if not g.ok or f"{g.body.get('state')}:{g.body.get('events')}" != shown:
            return Response(status_code=204, headers={"HX-Refresh": "true"})
        return c.render(request, "grant_live.html", sess, me, g=g.body)

    async def act(request: Request, grant_id: str, action: str, make_body) -> Response:
        got = await posted(request)
        if isinstance(got, Response):
            return got
        sess, me, form = got
        body = make_body(form)
        a = await c.api(request, sess, "POST", f"/v1/grants/{grant_id}/{action}", json_body=body)
        if a.ok:
            sess.flash.append(("ok", f"{action}: done"))
        else:
            sess.flash.append(("error", f"{action} refused ({a.error or a.status}): {a.message}"))
        return back(safe_next(form.get("next")) if form.get("next") else f"/grants/{grant_id}")

    @r.post("/grants/{grant_id}/approve")
    async def approve(request: Request, grant_id: str) -> Response:
        return await act(request, grant_id, "approve", lambda f: {"comment": f.get("comment", "")})

    @r.post("/grants/{grant_id}/deny")
    async def deny(request: Request, grant_id: str) -> Response:
        return await act(request, grant_id, "deny", lambda f: {"reason": f.get("reason", "")})

    @r.post("/grants/{grant_id}/revoke")
    async def revoke(request: Request, grant_id: str) -> Response:
        return await act(request, grant_id, "revoke", lambda f: {"reason": f.get("reason", "")})

    @r.post("/grants/{grant_id}/extend")
    async def extend(request: Request, grant_id: str) -> Response:
        return await act(
            request,
            grant_id,
            "extend",
            lambda f: {"duration": f.get("duration") or None, "reason": f.get("reason", "")},
        )

    @r.post("/grants/{grant_id}/review")
    async def review(request: Request, grant_id: str) -> Response:
        return await act(
            request, grant_id, "review", lambda f: {"outcome": f.get("outcome", ""), "notes": f.get("notes", "")}
        )

    @r.post("/grants/{grant_id}/credential")
    async def reveal(request: Request, grant_id: str) -> Response:
        """The single-use wrapping token, shown once with copy-ready commands (never stored here)."""
        got = await posted(request)
        if isinstance(got, Response):
            return got
        sess, me, _ = got
        g = await c.api(request, sess, "GET", f"/v1/grants/{grant_id}")
        a = await c.api(request, sess, "GET", f"/v1/grants/{grant_id}/credential")
        if not a.ok:
            sess.flash.append(("error", f"credential refused ({a.error or a.status}): {a.message}"))
            return back(f"/grants/{grant_id}")
        provider = (g.body or {}).get("provider") if g.ok else None
        return c.render(
            request,
            "credential.html",
            sess,
            me,
            cred=a.body,
            provider=provider,
            g=g.body if g.ok else {"grant_id": grant_id},
            portal=c.cs.aws_access_portal_url,
        )

    # -- approvals inbox ---------------------------------------------------------------------------------------
    @r.get("/approvals")
    async def approvals(request: Request) -> Response:
        try:
            sess, me = await c.me(request)
        except NeedSignIn:
            return to_login(request)
        rows: list[dict[str, Any]] = []
        for state in ("awaiting_approval", "active"):
            a = await c.api(request, sess, "GET", "/v1/grants", params={"state": state, "limit": 200})
            rows += [x for x in (a.body.get("grants", []) if a.ok else []) if x.get("requester") != me.id]
        delegations = await c.delegations_to(request, sess, me) if rows else []
        inbox = []
        for row in rows:
            g = await c.api(request, sess, "GET", f"/v1/grants/{row['grant_id']}")
            if not g.ok:
                continue
            ok, step_up, _ = c.vote_status(g.body, me, delegations)
            if ok:
                inbox.append({"g": g.body, "step_up": step_up, "round": pending_round(g.body)})
        return c.render(request, "approvals.html", sess, me, inbox=inbox)

    # -- break-glass reviews -------------------------------------------------------------------------------------
    @r.get("/reviews")
    async def reviews(request: Request) -> Response:
        try:
            sess, me = await c.me(request)
        except NeedSignIn:
            return to_login(request)
        a = await c.api(
            request, sess, "GET", "/v1/grants", params={"state": "pending_review", "break_glass": "true", "limit": 200}
        )
        ents = {e["id"]: e for e in await catalogue(request, sess)}
        queue = []
        for row in a.body.get("grants", []) if a.ok else []:
            if row.get("requester") == me.id:
                continue
            g = await c.api(request, sess, "GET", f"/v1/grants/{row['grant_id']}")
            if not g.ok:
                continue
            bg = (ents.get(g.body.get("entitlement", "")) or {}).get("break_glass") or {}
            groups = tuple(bg.get("reviewer_groups", ())) + (
                tuple(bg.get("escalation_groups", ())) if g.body.get("review_escalated") else ()
            )
            if me.in_any(groups):
                queue.append(g.body)
        queue.sort(key=lambda x: x.get("review_deadline") or "")
        return c.render(request, "reviews.html", sess, me, queue=queue, now=datetime.now(UTC).isoformat())

    # -- audit ---------------------------------------------------------------------------------------------------
    AUDIT_KEYS = ("requester", "entitlement", "state", "since", "until", "break_glass")

    def audit_params(q: dict[str, str]) -> dict[str, Any]:
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

    @r.get("/audit")
    async def audit(request: Request) -> Response:
        try:
            sess, me = await c.me(request)
        except NeedSignIn:
            return to_login(request)
        if not c.is_auditor(me):
            return c.render(
                request,
                "not_found.html",
                sess,
                me,
                status=403,
                message="the audit search is for auditors and admins",
            )
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

    @r.get("/audit/evidence.jsonl")
    async def audit_download(request: Request) -> Response:
        try:
            sess, me = await c.me(request)
        except NeedSignIn:
            return to_login(request)
        if not c.is_auditor(me):
            return PlainTextResponse("the audit search is for auditors and admins", status_code=403)
        a = await c.api(request, sess, "GET", "/v1/grants", params=audit_params(dict(request.query_params)))
        if not a.ok:
            return PlainTextResponse(a.message, status_code=a.status)
        ids = [row["grant_id"] for row in a.body.get("grants", [])]

        async def lines() -> AsyncIterator[bytes]:
            # each event exactly as stored (as `jitaccess export --format jsonl`): hashes re-verifiable
            for gid in ids:
                ev = await c.api(request, sess, "GET", f"/v1/grants/{gid}/events")
                for e in ev.body.get("events", []) if ev.ok else []:
                    yield (canonical_json(e) + "\n").encode()

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return StreamingResponse(
            lines(),
            media_type="application/x-ndjson",
            headers={
                "Content-Disposition": f'attachment; filename="jitaccess-evidence-{stamp}.jsonl"',
                "Cache-Control": "no-store",
            },
        )

    return r


def residual_window(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A credential that outlives its grant at the target (STS keys): the seconds and until when."""
    out: dict[str, Any] = {}
    for e in events:
        data = e.get("data") or {}
        if e.get("type") == "credential.issued" and data.get("residual_window_seconds"):
            out["seconds"] = data["residual_window_seconds"]
        if e.get("type") == "revocation.confirmed" and data.get("credential_expires_at"):
            out["until"] = data["credential_expires_at"]
    return out or None
