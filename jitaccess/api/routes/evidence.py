"""Evidence: a chain's events, one grant's verified evidence, verifying the whole ledger."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from jitaccess.api.errors import responses
from jitaccess.api.routes.common import Cases, Me
from jitaccess.ops import metrics

router = APIRouter(tags=["evidence"])


@router.get("/v1/grants/{grant_id}/events", responses=responses(401, 403, 404, 422))
async def events(grant_id: str, me: Me, uc: Cases) -> dict[str, Any]:
    evs = await uc.reads.events(me, grant_id)  # 404 if none or not theirs
    return {"grant_id": grant_id, "events": [e.model_dump(mode="json") for e in evs]}


@router.get("/v1/grants/{grant_id}/evidence", responses=responses(401, 403, 404, 422))
async def evidence(grant_id: str, me: Me, uc: Cases) -> dict[str, Any]:
    ev = await uc.reads.grant_evidence(me, grant_id)  # 404 if none or not theirs
    metrics.chain_verification_failed("api", 0 if ev.verification.ok else 1)
    return {
        "grant_id": grant_id,
        "verification": ev.verification.model_dump(mode="json"),
        "events": [e.model_dump(mode="json") for e in ev.events],
        "log": ev.log,  # inclusion in the newest signed checkpoint
    }


@router.get("/v1/evidence/verify", responses=responses(401, 403))
async def verify_all(me: Me, uc: Cases) -> dict[str, Any]:
    """Verify every chain in the ledger (auditors and admins)."""
    v = await uc.reads.verify_all(me)
    metrics.chain_verification_failed("api", len(v.broken))
    return {
        "ok": v.ok,
        "grants": len(v.results),
        "broken": [r.model_dump(mode="json") for r in v.broken],
        "results": [r.model_dump(mode="json") for r in v.results],
        "log": v.log,  # the offline verifier: log, checkpoints, commands
    }
