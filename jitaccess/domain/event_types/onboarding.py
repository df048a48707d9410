"""A service onboarding's own chain (ServiceOnboardingWorkflow): request, children, rotation, end.
Its approval and policy events are the grant's types (`approval.*`, `policy.decided`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from jitaccess.domain.event_types.base import Children, Command, EventBody, IsoTime


class OnboardingRequested(EventBody, type="onboarding.requested"):
    """A bundle of entitlements for a workload was asked for (the chain's first event)."""

    template: str
    workload: dict[str, Any] = Field(description="service, environment, owning team and dependencies")
    reason: str
    requester: dict[str, Any]
    owner: str | None = Field(None, description="the owning team")


class OnboardingApproved(EventBody, type="onboarding.approved"):
    """Every approval stage voted yes."""

    approvers: list[str]


class OnboardingChildStarted(EventBody, type="onboarding.child_started"):
    """A child grant (one entitlement, `generation` counts its rotations) was started."""

    grant_id: str
    entitlement: str
    generation: int = Field(description="1, then one more per rotation")
    duration_seconds: int


class OnboardingChildEnded(EventBody, type="onboarding.child_ended"):
    """A child grant reported its end."""

    grant_id: str
    state: str
    reference: str | None = None


class OnboardingProvisioningFailed(EventBody, type="onboarding.provisioning_failed"):
    """A child failed to become active: all or nothing, the others are revoked."""

    failed: list[dict[str, Any]] = Field(description="grant_id, entitlement and state of each child that failed")


class OnboardingActive(EventBody, type="onboarding.active"):
    """Every child is active; the onboarding lasts until `ends_at`."""

    children: Children
    ends_at: IsoTime


class _OnboardingEnded(EventBody):
    reason: str
    children: Children


class OnboardingDenied(_OnboardingEnded, type="onboarding.denied"):
    """The onboarding ended denied (by an approver, or its start was not signed)."""


class OnboardingApprovalExpired(_OnboardingEnded, type="onboarding.approval_expired"):
    """The onboarding ended undecided at its approval deadline."""


class OnboardingFailed(_OnboardingEnded, type="onboarding.failed"):
    """The onboarding ended because a child failed to issue (the others revoked)."""


class OnboardingOffboarded(_OnboardingEnded, type="onboarding.offboarded"):
    """The onboarding ended by offboarding (every child revoked)."""


class OnboardingExpired(_OnboardingEnded, type="onboarding.expired"):
    """The onboarding's lifetime ended (every child revoked)."""


class OffboardingRequested(EventBody, type="offboarding.requested"):
    """The requester, an approver or an admin asked to end the onboarding."""

    reason: str
    command: Command | None = None


class OffboardingCompleted(EventBody, type="offboarding.completed"):
    """Every child of an offboarded onboarding is revoked."""

    children: Children


class _Rotation(EventBody):
    entitlement: str
    old_grant: str
    new_grant: str


class RotationFailed(_Rotation, type="rotation.failed"):
    """The new credential did not become active: the old one is kept, retried next interval."""

    state: str


class RotationIssued(_Rotation, type="rotation.issued"):
    """The new credential is active; the old one is revoked after `overlap_seconds`."""

    old_reference: str | None = None
    new_reference: str | None = None
    overlap_seconds: float = Field(description="how long both credentials live")


class RotationCompleted(_Rotation, type="rotation.completed"):
    """The old credential is revoked (`old_state`)."""

    old_reference: str | None = None
    old_state: str
    new_reference: str | None = None


# an onboarding's end, by its final state (OnboardingState value)
ONBOARDING_ENDED: dict[str, type[_OnboardingEnded]] = {
    m.TYPE.removeprefix("onboarding."): m
    for m in (OnboardingDenied, OnboardingApprovalExpired, OnboardingFailed, OnboardingOffboarded, OnboardingExpired)
}
