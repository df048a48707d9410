"""The web console's settings (`JITACCESS_CONSOLE_*`). Everything has a default that works with
`jitaccess dev up`: the OIDC client is the first configured human issuer (in the dev stack,
OpenBao's OIDC provider and its `jitaccess-console` public client)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JITACCESS_CONSOLE_", extra="ignore")

    enabled: bool = True
    # the OIDC client people sign in with (authorization code + PKCE); default: the first
    # `JITACCESS_OIDC_ISSUERS` entry of kind human and its first audience
    issuer: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None  # only for a confidential client; PKCE is always used
    scopes: str = "openid groups"
    # the console's own base URL as the IdP redirects to it (`<public_url>/auth/callback`);
    # default: JITACCESS_PUBLIC_URL, else the URL the browser used
    public_url: str | None = None
    session_ttl: timedelta = Field(default=timedelta(hours=8), gt=timedelta(0))  # never past the ID token's exp
    idle_timeout: timedelta = Field(default=timedelta(minutes=30), gt=timedelta(0))
    max_sessions: int = Field(default=10_000, ge=10)
    # cookies are `Secure` unless the console is reached on localhost / 127.0.0.1 (None: decide by host)
    cookie_secure: bool | None = None
    step_up_acr: str | None = None  # acr_values asked for on a step-up sign-in (e.g. "mfa")
    temporal_ui_url: str | None = None  # e.g. http://127.0.0.1:8233: the grant page links to its workflow
    aws_access_portal_url: str | None = None  # IAM Identity Center access portal (https://d-…awsapps.com/start)
    poll_seconds: int = Field(default=5, ge=1, le=300)  # live state refresh on "My access" and grant pages
