"""Decisions on a grant: approve, deny, revoke, extend, review (each one update to its workflow)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from jitaccess.api.errors import responses
from jitaccess.api.models import CommentBody, ExtendBody, ReasonBody, ReviewBody
from jitaccess.api.routes.common import Cases, Me, expect_id
from jitaccess.api.views import grant_view

router = APIRouter(tags=["decisions"])
ERRORS = responses(401, 403, 404, 409, 422)


@router.post("/v1/grants/{grant_id}/approve", responses=ERRORS)
async def approve(grant_id: str, me: Me, uc: Cases, body: CommentBody | None = None) -> dict[str, Any]:
    expect_id("grant", grant_id)
    return grant_view(await uc.decisions.approve(me, grant_id, (body or CommentBody()).comment))


@router.post("/v1/grants/{grant_id}/deny", responses=ERRORS)
async def deny(grant_id: str, body: ReasonBody, me: Me, uc: Cases) -> dict[str, Any]:
    expect_id("grant", grant_id)
    return grant_view(await uc.decisions.deny(me, grant_id, body.reason))


@router.post("/v1/grants/{grant_id}/extend", responses=ERRORS)
async def extend(grant_id: str, body: ExtendBody, me: Me, uc: Cases) -> dict[str, Any]:
    expect_id("grant", grant_id)
    return grant_view(await uc.decisions.extend(me, grant_id, body.duration, body.reason))


@router.post("/v1/grants/{grant_id}/review", responses=ERRORS)
async def review(grant_id: str, body: ReviewBody, me: Me, uc: Cases) -> dict[str, Any]:
    expect_id("grant", grant_id)
    return grant_view(await uc.decisions.review(me, grant_id, body.outcome, body.notes))


@router.post("/v1/grants/{grant_id}/revoke", responses=ERRORS)
async def revoke(grant_id: str, body: ReasonBody, me: Me, uc: Cases) -> dict[str, Any]:
    expect_id("grant", grant_id)
    return grant_view(await uc.decisions.revoke(me, grant_id, body.reason))
