"""The console's sign-in: OIDC authorization code + PKCE (S256) against the configured issuer,
with `state` (bound to the browser's pre-sign-in session) and `nonce`. The ID token is then
validated by the API's own validator (jitaccess.api.auth): the console accepts exactly the tokens
the JSON API accepts, and the principal comes from the same code."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import httpx

from jitaccess.api.auth import AuthProblem, IdpUnavailable, TokenValidator


class SignInFailed(Exception):
    """The sign-in could not complete; the message says why (shown to the person)."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class OidcClient:
    def __init__(
        self, issuer: str, client_id: str, scopes: str, client_secret: str | None = None, timeout: float = 10
    ) -> None:
        self.issuer, self.client_id, self.scopes = issuer, client_id, scopes
        self.client_secret, self.timeout = client_secret, timeout
        self._doc: dict[str, Any] | None = None
        self._doc_at = 0.0

    async def discovery(self) -> dict[str, Any]:
        if self._doc is not None and time.monotonic() - self._doc_at < 600:
            return self._doc
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as c:
                doc = (await c.get(url)).raise_for_status().json()
        except (httpx.HTTPError, ValueError) as e:
            raise SignInFailed(
                f"the identity provider is unreachable ({type(e).__name__}); try again shortly"
            ) from None
        if not isinstance(doc, dict) or doc.get("issuer") != self.issuer:
            raise SignInFailed("the identity provider's discovery document names another issuer")
        for key in ("authorization_endpoint", "token_endpoint"):
            if not isinstance(doc.get(key), str):
                raise SignInFailed(f"the identity provider's discovery document has no {key}")
        self._doc, self._doc_at = doc, time.monotonic()
        return doc

    async def start(
        self, redirect_uri: str, *, step_up: bool = False, acr: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        """The authorize URL to send the browser to, and what the callback must check."""
        doc = await self.discovery()
        verifier = secrets.token_urlsafe(64)
        pending: dict[str, Any] = {
            "state": secrets.token_urlsafe(24),
            "nonce": secrets.token_urlsafe(24),
            "verifier": verifier,
            "redirect_uri": redirect_uri,
            "started": time.time(),
        }
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": self.scopes,
            "state": pending["state"],
            "nonce": pending["nonce"],
            "code_challenge": _b64(hashlib.sha256(verifier.encode()).digest()),
            "code_challenge_method": "S256",
        }
        if step_up:  # a fresh sign-in (and the stronger method the IdP maps acr_values to)
            params.update(prompt="login", max_age="0")
            if acr:
                params["acr_values"] = acr
        return doc["authorization_endpoint"] + "?" + urlencode(params), pending

    async def finish(self, pending: dict[str, Any], query: dict[str, str], validator: TokenValidator) -> str:
        """Check the redirect against the sign-in in progress, exchange the code (with the PKCE
        verifier), validate the ID token (the API's validator) and its nonce; the ID token."""
        if time.time() - float(pending.get("started", 0)) > 600:
            raise SignInFailed("the sign-in took longer than 10 minutes; start again")
        if not secrets.compare_digest(str(query.get("state", "")), str(pending["state"])):
            raise SignInFailed("the sign-in answer does not belong to this browser's sign-in (state mismatch)")
        if "error" in query:
            raise SignInFailed(f"the identity provider refused: {query['error'][:100]}")
        doc = await self.discovery()
        form = {
            "grant_type": "authorization_code",
            "code": query.get("code", ""),
            "redirect_uri": pending["redirect_uri"],
            "client_id": self.client_id,
            "code_verifier": pending["verifier"],
        }
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as c:
                if self.client_secret:
                    r = await c.post(doc["token_endpoint"], data=form, auth=(self.client_id, self.client_secret))
                else:
                    r = await c.post(doc["token_endpoint"], data=form)
            body = r.json()
        except (httpx.HTTPError, ValueError) as e:
            raise SignInFailed(f"the identity provider's token endpoint did not answer ({type(e).__name__})") from None
        if r.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("id_token"), str):
            raise SignInFailed(f"the identity provider refused the code: {str(body.get('error', r.status_code))[:100]}")
        token: str = body["id_token"]
        try:
            _, claims = await validator.validate(token)
        except AuthProblem as e:
            raise SignInFailed(f"the ID token is not accepted ({e.problem}): {e.message}") from None
        except IdpUnavailable as e:
            raise SignInFailed(e.message) from None
        if claims.get("nonce") != pending["nonce"]:
            raise SignInFailed("the ID token's nonce is not this sign-in's (a replayed or mixed-up answer)")
        return token
