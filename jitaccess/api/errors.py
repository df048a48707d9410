"""Every error the API returns is JSON: {"error": <code>, "message": <what was wrong and what is allowed>, ...}."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError

from jitaccess.domain.refusals import Refusal
from jitaccess.service.errors import NotFound, RunFailed, UpdateFailed

log = structlog.get_logger("jitaccess.api")

# a use case's refusal by kind; `error` is the refusing rule, extra fields its details
REFUSAL_STATUS = {"forbidden": 403, "conflict": 409, "gone": 410, "invalid": 422}


class ErrorBody(BaseModel):
    """Every error: a stable code, a message saying what was wrong and what is allowed, and
    sometimes more fields (grant_id, reason_codes, valid_entitlements, problems, state, ...)."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="stable code, e.g. not_found, self_approval, invalid_request")
    message: str = Field(description="what was wrong and what is allowed, in words")


_WHAT = {
    401: "no or unrecognised bearer token (`unauthenticated`)",
    403: "not allowed; `error` names the rule (self_approval, not_an_approver, not_requester, policy_denied, ...)",
    404: "no such grant, onboarding or record (`not_found`)",
    409: "wrong state or a conflicting request (wrong_state, duplicate_vote, already_delivered, request_id_reused)",
    410: "the thing asked for no longer exists (the wrapping token expired)",
    422: "bad input (`invalid_request`): the message names each field and what is allowed",
    500: "the operation failed on the server side; the message says which run",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses=` for a route's possible errors, each with the error model."""
    return {s: {"model": ErrorBody, "description": _WHAT[s]} for s in statuses}


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.extra = status, error, message, extra


def _body(error: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": error, "message": message, **extra}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, e: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
        return JSONResponse(_body(e.error, e.message, **e.extra), status_code=e.status, headers=headers)

    @app.exception_handler(Refusal)
    async def _refused(_: Request, e: Refusal) -> JSONResponse:
        details = getattr(e, "details", {})
        return JSONResponse(_body(e.rule, e.message, **details), status_code=REFUSAL_STATUS.get(e.kind.value, 409))

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, e: NotFound) -> JSONResponse:
        return JSONResponse(_body("not_found", e.message), status_code=404)

    @app.exception_handler(UpdateFailed)
    async def _update_failed(_: Request, e: UpdateFailed) -> JSONResponse:
        return JSONResponse(_body("update_failed", e.message), status_code=409)

    @app.exception_handler(RunFailed)
    async def _run_failed(_: Request, e: RunFailed) -> JSONResponse:
        return JSONResponse(_body("reconciliation_failed", e.message), status_code=500)

    @app.exception_handler(RPCError)
    async def _temporal_failed(request: Request, e: RPCError) -> JSONResponse:
        # what the routes do not answer themselves (no such workflow: 404) is Temporal failing the
        # call: overloaded, restarting, unreachable. The caller can retry; nothing half-done stays
        status = e.status.name if e.status is not None else "UNKNOWN"
        log.warning("temporal_call_failed", path=request.url.path, status=status, error=e.message)
        message = (
            f"the workflow service failed this call ({status}: {e.message}); retry in a moment "
            "(a request sent again with the same request_id never starts a second grant)"
        )
        return JSONResponse(
            _body("temporal_unavailable", message, status=status), status_code=503, headers={"Retry-After": "1"}
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        problems = []
        for err in e.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append(f"{where or 'body'}: {err.get('msg')}")
        return JSONResponse(_body("invalid_request", "; ".join(problems), problems=problems), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, e: StarletteHTTPException) -> JSONResponse:
        if e.status_code == 400:  # FastAPI: a body that is not JSON at all; bad input like any other: 422
            return JSONResponse(
                _body("invalid_request", f"body: {e.detail}; send JSON (UTF-8) matching the documented schema"),
                status_code=422,
            )
        return JSONResponse(_body("http_error", str(e.detail)), status_code=e.status_code)
