"""Service onboarding (non-human identities): onboard, read, approve, deny, offboard."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from jitaccess.api.errors import responses
from jitaccess.api.models import CommentBody, ReasonBody
from jitaccess.api.routes.common import Cases, Me, expect_id
from jitaccess.domain.onboarding import OnboardingRequest

router = APIRouter(tags=["onboarding"])
ERRORS = responses(401, 403, 404, 409, 422)


@router.post("/v1/onboardings", status_code=202, responses=responses(401, 403, 409, 422))
async def onboard(body: OnboardingRequest, me: Me, uc: Cases) -> dict[str, Any]:
    o = await uc.onboardings.onboard(me, body)
    return {"onboarding_id": o.onboarding_id, "state": o.state.value, "onboarding": o.model_dump(mode="json")}


@router.get("/v1/onboardings/{oid}", responses=responses(401, 403, 404, 422))
async def get_onboarding(oid: str, me: Me, uc: Cases) -> dict[str, Any]:
    expect_id("onboarding", oid)
    return (await uc.onboardings.get(me, oid)).model_dump(mode="json")


@router.post("/v1/onboardings/{oid}/approve", responses=ERRORS)
async def approve_onboarding(oid: str, me: Me, uc: Cases, body: CommentBody | None = None) -> dict[str, Any]:
    expect_id("onboarding", oid)
    return (await uc.onboardings.approve(me, oid, (body or CommentBody()).comment)).model_dump(mode="json")


@router.post("/v1/onboardings/{oid}/deny", responses=ERRORS)
async def deny_onboarding(oid: str, body: ReasonBody, me: Me, uc: Cases) -> dict[str, Any]:
    expect_id("onboarding", oid)
    return (await uc.onboardings.deny(me, oid, body.reason)).model_dump(mode="json")


@router.post("/v1/onboardings/{oid}/offboard", responses=ERRORS)
async def offboard(oid: str, body: ReasonBody, me: Me, uc: Cases) -> dict[str, Any]:
    expect_id("onboarding", oid)
    return (await uc.onboardings.offboard(me, oid, body.reason)).model_dump(mode="json")
