"""Signing in (OIDC authorization code + PKCE at the identity provider), out, and the front door."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials

from jitaccess.api.auth import AuthProblem, IdpUnavailable
from jitaccess.console.core import NeedSignIn, Pages, back, safe_next
from jitaccess.console.oidc import SignInFailed
from jitaccess.console.session import COOKIE


class SignInPages(Pages):
    ROUTES = (
        ("GET", "/login", "login"),
        ("GET", "/auth/callback", "callback"),
        ("POST", "/logout", "logout"),
        ("GET", "/", "home"),
    )

    async def login(self, request: Request, next: str = "/", step_up: bool = False) -> Response:
        c = self.c
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

    async def callback(self, request: Request) -> Response:
        c = self.c
        sess = c.session(request)
        if sess is None or not sess.login:
            return self.failed(request, "no sign-in in progress in this browser; start again")
        pending, sess.login = sess.login, None
        authenticate = request.app.state.authenticator
        try:
            token = await c.oidc().finish(pending, dict(request.query_params), authenticate.validator)
            me = await authenticate(HTTPAuthorizationCredentials(scheme="Bearer", credentials=token))
        except SignInFailed as e:
            return self.failed(request, str(e))
        except (AuthProblem, IdpUnavailable) as e:
            return self.failed(request, e.message)
        new = c.store.rotate(sess)
        new.id_token, new.user = token, me.id
        new.token_exp = me.auth_context.expires_at.timestamp() if me.auth_context else 0
        resp = back(pending.get("next") or "/")
        c.set_cookie(request, resp, new)
        return resp

    def failed(self, request: Request, message: str) -> Response:
        return self.c.render(request, "signin_failed.html", status=400, message=message)

    async def logout(self, request: Request) -> Response:
        sess, _, _ = await self.c.posted(request)
        self.c.store.drop(sess.sid)
        resp = self.c.render(request, "signed_out.html")
        resp.delete_cookie(COOKIE, path="/")
        return resp

    async def home(self, request: Request) -> Response:
        try:
            await self.c.me(request)
        except NeedSignIn:
            return self.c.render(request, "welcome.html")
        return back("/access")
