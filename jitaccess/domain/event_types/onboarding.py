"""A service onboarding's own chain (ServiceOnboardingWorkflow): request, children, rotation, end.
Its approval and policy events are the grant's types (`approval.*`, `policy.decided`)."""

from __future__ import annotations

from typing import Any, ClassVar

from jitaccess.domain.event_types.base import Children, Command, EventBody, IsoTime, event_type


@event_type
class OnboardingRequested(EventBody):
    """A bundle of entitlements for a workload was asked for (the chain's first event)."""

    TYPE: ClassVar[str] = "onboarding.requested"

    template: str
    workload: dict[str, Any]
    reason: str
    requester: dict[str, Any]
    owner: str | None = None


@event_type
class OnboardingApproved(EventBody):
    """Every approval stage voted yes."""

    TYPE: ClassVar[str] = "onboarding.approved"

    approvers: list[str]


@event_type
class OnboardingChildStarted(EventBody):
    """A child grant (one entitlement, `generation` counts its rotations) was started."""

    TYPE: ClassVar[str] = "onboarding.child_started"

    grant_id: str
    entitlement: str
    generation: int
    duration_seconds: int


@event_type
class OnboardingChildEnded(EventBody):
    """A child grant reported its end."""

    TYPE: ClassVar[str] = "onboarding.child_ended"

    grant_id: str
    state: str
    reference: str | None = None


@event_type
class OnboardingProvisioningFailed(EventBody):
    """A child failed to become active: all or nothing, the others are revoked."""

    TYPE: ClassVar[str] = "onboarding.provisioning_failed"

    failed: list[dict[str, Any]]  # grant_id, entitlement, state


@event_type
class OnboardingActive(EventBody):
    """Every child is active; the onboarding lasts until `ends_at`."""

    TYPE: ClassVar[str] = "onboarding.active"

    children: Children
    ends_at: IsoTime


class _OnboardingEnded(EventBody):
    reason: str
    children: Children


@event_type
class OnboardingDenied(_OnboardingEnded):
    """The onboarding ended denied (by an approver, or its start was not signed)."""

    TYPE: ClassVar[str] = "onboarding.denied"


@event_type
class OnboardingApprovalExpired(_OnboardingEnded):
    """The onboarding ended undecided at its approval deadline."""

    TYPE: ClassVar[str] = "onboarding.approval_expired"


@event_type
class OnboardingFailed(_OnboardingEnded):
    """The onboarding ended because a child failed to issue (the others revoked)."""

    TYPE: ClassVar[str] = "onboarding.failed"


@event_type
class OnboardingOffboarded(_OnboardingEnded):
    """The onboarding ended by offboarding (every child revoked)."""

    TYPE: ClassVar[str] = "onboarding.offboarded"


@event_type
class OnboardingExpired(_OnboardingEnded):
    """The onboarding's lifetime ended (every child revoked)."""

    TYPE: ClassVar[str] = "onboarding.expired"


@event_type
class OffboardingRequested(EventBody):
    """The requester, an approver or an admin asked to end the onboarding."""

    TYPE: ClassVar[str] = "offboarding.requested"

    reason: str
    command: Command | None = None


@event_type
class OffboardingCompleted(EventBody):
    """Every child of an offboarded onboarding is revoked."""

    TYPE: ClassVar[str] = "offboarding.completed"

    children: Children


class _Rotation(EventBody):
    entitlement: str
    old_grant: str
    new_grant: str


@event_type
class RotationFailed(_Rotation):
    """The new credential did not become active: the old one is kept, retried next interval."""

    TYPE: ClassVar[str] = "rotation.failed"

    state: str


@event_type
class RotationIssued(_Rotation):
    """The new credential is active; the old one is revoked after `overlap_seconds`."""

    TYPE: ClassVar[str] = "rotation.issued"

    old_reference: str | None = None
    new_reference: str | None = None
    overlap_seconds: float


@event_type
class RotationCompleted(_Rotation):
    """The old credential is revoked (`old_state`)."""

    TYPE: ClassVar[str] = "rotation.completed"

    old_reference: str | None = None
    old_state: str
    new_reference: str | None = None


# an onboarding's end, by its final state (OnboardingState value)
ONBOARDING_ENDED: dict[str, type[_OnboardingEnded]] = {
    m.TYPE.removeprefix("onboarding."): m
    for m in (OnboardingDenied, OnboardingApprovalExpired, OnboardingFailed, OnboardingOffboarded, OnboardingExpired)
}
