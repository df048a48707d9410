"""What every console page shares: the session and the signed-in person, the in-process call to the
JSON API, CSRF-checked form posts, template rendering with the security headers, error pages, and
the route class that turns a lapsed sign-in into the sign-in page (or a 403 for a form post)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials
from jinja2 import Environment, FileSystemLoader, select_autoescape

from jitaccess.api.auth import AuthProblem
from jitaccess.config import Settings, load_users
from jitaccess.console.formatting import FILTERS
from jitaccess.console.oidc import OidcClient, SignInFailed
from jitaccess.console.session import COOKIE, Session, SessionStore
from jitaccess.console.settings import ConsoleSettings
from jitaccess.domain.access import may_verify_all, viewer_for
from jitaccess.domain.principals import Principal

HERE = Path(__file__).parent
MAX_FORM = 64 * 1024
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
}
CSRF_REFUSED = "refused: this form lacks a valid CSRF token (reload the page and try again)"


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

    def refusal(self, what: str) -> str:
        """The flash message for a refused action: the API's error code (or status) and message."""
        return f"{what} refused ({self.error or self.status}): {self.message}"


class NeedSignIn(Exception):
    """No signed-in session (or its ID token lapsed): ConsoleRoute answers with the sign-in page."""


class FormRefused(Exception):
    """A form post without this session's CSRF token: ConsoleRoute answers 403 with the message."""


def safe_next(v: str | None) -> str:
    """Only a local path: never an open redirect."""
    if not v or not v.startswith("/") or v.startswith("//") or "\\" in v or len(v) > 500:
        return "/"
    return v


def back(to: str) -> RedirectResponse:
    return RedirectResponse(to, status_code=303)


def to_login(request: Request) -> Response:
    nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": "/login?" + urlencode({"next": nxt})})
    return RedirectResponse("/login?" + urlencode({"next": safe_next(nxt)}), status_code=303)


async def read_form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM:
        return {}
    ctype = request.headers.get("content-type", "")
    if "application/x-www-form-urlencoded" not in ctype:
        return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


class ConsoleRoute(APIRoute):
    """Pages raise NeedSignIn / FormRefused; this answers them the same way for every route."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except NeedSignIn:
                if request.method == "GET":
                    return to_login(request)
                return PlainTextResponse("sign in first", status_code=403)
            except FormRefused as e:
                return PlainTextResponse(str(e), status_code=403)

        return answer


class Console:
    def __init__(self, settings: Settings, cs: ConsoleSettings) -> None:
        self.settings, self.cs = settings, cs
        self.store = SessionStore(cs.session_ttl.total_seconds(), cs.idle_timeout.total_seconds(), cs.max_sessions)
        self.users = load_users(settings.users_file)
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(("html",)), auto_reload=False
        )
        self.env.filters.update(FILTERS)
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

    async def posted(self, request: Request) -> tuple[Session, Principal, dict[str, str]]:
        """A form POST: signed in, and carrying this session's CSRF token (form field or header)."""
        sess, me = await self.me(request)
        form = await read_form(request)
        if not sess.csrf_ok(form.get("csrf_token") or request.headers.get("X-CSRF-Token")):
            raise FormRefused(CSRF_REFUSED)
        return sess, me, form

    def is_auditor(self, me: Principal | None) -> bool:
        if me is None:
            return False
        v = viewer_for(me, admin_groups=self.settings.admin_groups, auditor_groups=self.settings.auditor_groups)
        return may_verify_all(v)

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

    async def rows(self, request: Request, sess: Session, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
        """A list the API returns under `key` (grants, catalogue entries); empty if it refuses."""
        a = await self.api(request, sess, "GET", path, params=params)
        return list(a.body.get(key, [])) if a.ok else []

    # -- rendering ----------------------------------------------------------------------------------
    def render(
        self,
        request: Request,
        name: str,
        sess: Session | None = None,
        me: Principal | None = None,
        status: int = 200,
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
            auditor=self.is_auditor(me),
            path=request.url.path,
            poll=self.cs.poll_seconds,
            **ctx,
        )
        resp = HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store", **SECURITY_HEADERS})
        return resp

    def error_page(self, request: Request, sess: Session, me: Principal, status: int, message: str) -> HTMLResponse:
        return self.render(request, "not_found.html", sess, me, status=status, message=message)


class Pages:
    """A page (or a few close ones) of the console: ROUTES names each route's method on the class."""

    ROUTES: tuple[tuple[str, str, str], ...] = ()  # (HTTP method, path, name of the handling method)

    def __init__(self, c: Console) -> None:
        self.c = c

    def install(self, r: APIRouter) -> None:
        for method, path, handler in self.ROUTES:
            r.add_api_route(path, getattr(self, handler), methods=[method])
