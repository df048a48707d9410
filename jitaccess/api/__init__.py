"""FastAPI app: authentication, authorisation, routes -> Temporal client."""

from jitaccess.api.app import create_app

__all__ = ["create_app"]
