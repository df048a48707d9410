"""What every route shares: the signed-in caller, the use cases, and ID checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from jitaccess.api.auth import Authenticator, bearer
from jitaccess.api.errors import ApiError
from jitaccess.domain.principals import Principal
from jitaccess.service.use_cases import UseCases


async def _principal(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None
) -> Principal:
    """The caller, from their bearer token (jitaccess.api.auth); every /v1 route requires one."""
    authenticate: Authenticator = request.app.state.authenticator
    return await authenticate(creds)


def _use_cases(request: Request) -> UseCases:
    uc: UseCases = request.app.state.use_cases
    return uc


Me = Annotated[Principal, Depends(_principal)]
Cases = Annotated[UseCases, Depends(_use_cases)]


def expect_id(kind: str, wid: str) -> None:
    """A grant route takes only grant IDs, an onboarding route only onboarding IDs: anything
    else (the other kind, a delegation or reconciliation chain, junk) is 404 before any call."""
    if not wid.startswith(f"{kind}-") or len(wid) > 200 or not wid.isprintable():
        raise ApiError(404, "not_found", f"no {kind} {wid[:80]!r}: {kind} IDs look like {kind}-...")
