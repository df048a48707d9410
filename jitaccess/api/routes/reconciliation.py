"""Reconciliation: run it now, read the last run's report."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from jitaccess.api.errors import responses
from jitaccess.api.routes.common import Cases, Me

router = APIRouter(tags=["reconciliation"])


class ReconcileRunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dry_run: bool = False  # report only: revoke nothing, signal no grant


@router.post("/v1/reconciliation/runs", responses=responses(401, 403, 422, 500))
async def run_reconciliation(me: Me, uc: Cases, body: ReconcileRunBody | None = None) -> dict[str, Any]:
    """Run reconciliation now (admins / security) and return its report."""
    report = await uc.reconciliation.run(me, (body or ReconcileRunBody()).dry_run)
    return report.model_dump(mode="json")


@router.get("/v1/reconciliation/last", responses=responses(401, 403, 404))
async def last_reconciliation(me: Me, uc: Cases) -> dict[str, Any]:
    """The last completed run's report: findings and what was done about each."""
    return await uc.reconciliation.last(me)
