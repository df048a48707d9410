"""Operations routes: /healthz, /readyz (is everything a request needs reachable: which is not) and
/metrics (Prometheus text: jitaccess's metrics, the ledger's gauges, the Temporal SDK's)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from jitaccess.ops import metrics, readiness

router = APIRouter(tags=["ops"])


class CheckResult(BaseModel):
    ok: bool
    detail: str


class Readiness(BaseModel):
    status: str  # ready | not_ready
    failed: list[str]  # the checks that failed, by name (temporal, ledger, openbao, catalogue)
    checks: dict[str, CheckResult]


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, Any]:
    state = request.app.state
    return {"status": "ok", "policy_version": state.catalogue.version, "task_queue": state.settings.task_queue}


# probes, not API: out of the OpenAPI document (like /metrics); the body is `Readiness`
@router.get("/readyz", response_model=Readiness, include_in_schema=False)
async def readyz(request: Request) -> Any:
    """Ready when Temporal (the namespace), the ledger, OpenBao (unsealed) and the catalogue
    are reachable; otherwise 503 naming which failed. Unauthenticated, like /healthz."""
    state = request.app.state
    checks = await readiness.check_all(
        state.settings, getattr(state, "client", None), getattr(state, "ledger", None), state.catalogue.version
    )
    failed = [c.name for c in checks if not c.ok]
    body = {
        "status": "not_ready" if failed else "ready",
        "failed": failed,
        "checks": {c.name: c.as_dict() for c in checks},
    }
    return JSONResponse(body, status_code=503 if failed else 200)


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    body = await run_in_threadpool(metrics.render, getattr(request.app.state, "ledger", None))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
