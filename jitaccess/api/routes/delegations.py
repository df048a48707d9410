"""Delegations: lending one's approval authority for a window, and listing them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from jitaccess.api.errors import responses
from jitaccess.api.models import DelegationBody
from jitaccess.api.routes.common import Cases, Me
from jitaccess.service.delegations import DelegationRequest

router = APIRouter(tags=["decisions"])


@router.post("/v1/delegations", status_code=201, responses=responses(401, 403, 422))
async def delegate(body: DelegationBody, me: Me, uc: Cases) -> dict[str, Any]:
    req = DelegationRequest(body.delegate, body.reason, body.starts_at, body.ends_at, body.duration)
    d = await uc.delegations.delegate(me, req)
    return d.model_dump(mode="json")


@router.get("/v1/delegations", responses=responses(401))
async def list_delegations(me: Me, uc: Cases) -> dict[str, Any]:
    lent = await uc.delegations.mine(me)
    return {
        "to_me": [d.model_dump(mode="json") for d in lent.to_me],
        "from_me": [d.model_dump(mode="json") for d in lent.from_me],
    }
