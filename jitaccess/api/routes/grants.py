"""Grants: the catalogue, requesting a grant, reading and listing grants, claiming the credential."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from jitaccess.api.errors import responses
from jitaccess.api.models import GrantRequestBody
from jitaccess.api.routes.common import Cases, Me, expect_id
from jitaccess.api.views import archived_grant_view, grant_view
from jitaccess.domain.grant import Grant
from jitaccess.domain.policy import AccessRequest
from jitaccess.domain.states import GrantState
from jitaccess.service.grants import entitlements_for
from jitaccess.service.ports import GrantQuery

router = APIRouter()


@router.get("/v1/catalog", tags=["catalogue"], responses=responses(401))
async def catalog(me: Me, uc: Cases) -> dict[str, Any]:
    return {
        "policy_version": uc.catalogue.version,
        "entitlements": [
            {**e.model_dump(mode="json"), "you_may_request": may} for e, may in entitlements_for(uc.catalogue, me)
        ],
    }


@router.post("/v1/grants", status_code=202, tags=["grants"], responses=responses(401, 403, 409, 422))
async def request_grant(body: GrantRequestBody, me: Me, uc: Cases, response: Response) -> dict[str, Any]:
    out = await uc.requests.request(me, AccessRequest(**body.model_dump()))
    response.headers["Location"] = f"/v1/grants/{out.grant_id}"
    return {"grant_id": out.grant_id, "state": out.grant.state.value, "grant": grant_view(out.grant)}


@router.get("/v1/grants", tags=["grants"], responses=responses(401, 403, 422))
async def list_grants(
    me: Me,
    uc: Cases,
    state: Annotated[GrantState | None, Query()] = None,
    requester: Annotated[str | None, Query(max_length=200)] = None,
    break_glass: Annotated[bool | None, Query()] = None,
    entitlement: Annotated[str | None, Query(max_length=80)] = None,
    since: Annotated[datetime | None, Query(description="requested at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="requested before (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    query = GrantQuery(state.value if state else None, requester, break_glass, entitlement, since, until, limit)
    rows = await uc.reads.grants(me, query)
    return {"grants": rows, "count": len(rows)}


@router.get("/v1/grants/{grant_id}", tags=["grants"], responses=responses(401, 403, 404, 422))
async def get_grant(grant_id: str, me: Me, uc: Cases) -> dict[str, Any]:
    expect_id("grant", grant_id)
    g = await uc.reads.grant(me, grant_id)
    return grant_view(g) if isinstance(g, Grant) else archived_grant_view(g)


@router.get("/v1/grants/{grant_id}/credential", tags=["grants"], responses=responses(401, 403, 404, 409, 410, 422))
async def credential(grant_id: str, me: Me, uc: Cases, request: Request, response: Response) -> dict[str, Any]:
    expect_id("grant", grant_id)
    h = await uc.decisions.claim_credential(me, grant_id)
    response.headers["Cache-Control"] = "no-store"
    return {
        "grant_id": grant_id,
        "wrapping_token": h.wrapping_token,
        "expires_at": h.expires_at.isoformat(),
        "vault_addr": request.app.state.settings.vault_addr,
        "how": "single use: unwrap it yourself (`vault unwrap` / `bao unwrap` / `jitaccess credential`)",
    }
