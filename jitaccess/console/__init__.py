"""The web console (issue 12): server-rendered pages at `/`, Jinja2 + htmx (vendored), OIDC sign-in
(authorization code + PKCE), server-side sessions, CSRF on every form. A client of the JSON API in
the same process (jitaccess.console.views)."""

from jitaccess.console.settings import ConsoleSettings
from jitaccess.console.views import STATIC_DIR, router

__all__ = ["STATIC_DIR", "ConsoleSettings", "router"]
