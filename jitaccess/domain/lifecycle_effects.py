"""What goes into the grant lifecycle (commands, timers, activity outcomes) and what comes out
(effects the workflow executes). Plain frozen values: the machine is tested by comparing them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar

from jitaccess.domain.credentials import IssuedCredential, IssueResult, RevocationResult
from jitaccess.domain.event_types import EventBody
from jitaccess.domain.grant import ActionInput, ExtendInput, Grant, ReviewInput
from jitaccess.domain.notification_rules import notifications_for
from jitaccess.domain.notifications import Notification
from jitaccess.domain.principals import Actor
from jitaccess.domain.reconciliation import Finding
from jitaccess.domain.states import GrantState

T = TypeVar("T")


class Timer(StrEnum):
    """The deadlines a waiting grant wakes for (`Lifecycle.due`)."""

    approval_reminder = "approval_reminder"
    approval_escalation = "approval_escalation"
    approval_deadline = "approval_deadline"
    extension_deadline = "extension_deadline"
    expiry_warning = "expiry_warning"
    expiry = "expiry"
    review_reminder = "review_reminder"
    review_overdue = "review_overdue"


@dataclass(frozen=True)
class Marker:
    """A message or effect that carries nothing but its kind (equal to any other of its class)."""


# -- commands (updates and signals)
@dataclass(frozen=True)
class Signed:
    """`admission`: the signed command's evidence for its event ({} when unsigned, as in a validator)."""

    admission: dict[str, Any] = field(default_factory=dict, kw_only=True)


@dataclass(frozen=True)
class Decision(Signed):
    """A person's signed action on the grant."""

    action: ActionInput


class Approve(Decision):
    pass


class Deny(Decision):
    pass


class Revoke(Decision):
    pass


class Claim(Decision):
    """The requester fetches the single-use wrapped credential."""


@dataclass(frozen=True)
class ParentRevoke(Signed):
    """The onboarding that started this grant ends it (already verified as its parent's)."""

    actor: Actor
    reason: str


@dataclass(frozen=True)
class Extend(Signed):
    request: ExtendInput


@dataclass(frozen=True)
class SubmitReview(Signed):
    review: ReviewInput


@dataclass(frozen=True)
class ReportDrift(Signed):
    finding: Finding


class Tick(Marker):
    """The wait ended (its timer fired, or a command woke it): fire whatever is due."""


# -- outcomes (what an activity answered, fed back to the lifecycle)
@dataclass(frozen=True)
class Failed:
    """The activity failed; `error` is its innermost message."""

    error: str


class ExtensionFailed(Failed):
    pass


class IssueFailed(Failed):
    pass


@dataclass(frozen=True)
class Answered(Generic[T]):
    """The activity answered; `result` is its answer."""

    result: T


class ExtensionApplied(Answered[IssuedCredential]):
    """The provider's TTL moved; `result`: the credential as it is now."""


class Issued(Answered[IssueResult]):
    """The issue activity's answer (verified by read-back, or not)."""


@dataclass(frozen=True)
class IssueRefused:
    """The issuer could not prove the grant from signed evidence: nothing was issued."""

    rule: str
    message: str


class CleanedUp(Answered[RevocationResult]):
    """Whatever a failed issue left behind is gone (read back)."""


@dataclass(frozen=True)
class RevokeAttempted:
    """One revocation attempt: its read-back, or the error that stopped it."""

    result: RevocationResult | None = None
    error: str = ""


Command = Approve | Deny | Revoke | ParentRevoke | Extend | SubmitReview | Claim | ReportDrift
Outcome = ExtensionApplied | ExtensionFailed | Issued | IssueRefused | IssueFailed | CleanedUp | RevokeAttempted
Message = Command | Tick | Outcome


# -- effects
@dataclass(frozen=True)
class Emit:
    """Append an identity event to the grant's chain; `at`: its time when an activity's answer
    fixed it (None: the workflow's time)."""

    event: EventBody
    actor: Actor
    at: datetime | None = None


@dataclass(frozen=True)
class Notify:
    """Deliver a notification in the background to its audience's notifiers."""

    notification: Notification


class Flush(Marker):
    """Write the events not yet in the ledger (and upsert changed search attributes)."""


@dataclass(frozen=True)
class ApplyExtension:
    """Move the provider's TTL to `expires_at` (then feed back ExtensionApplied/ExtensionFailed)."""

    expires_at: datetime
    ttl_seconds: int


class IssueCredential(Marker):
    """Run the issue activity (then feed back Issued, IssueRefused or IssueFailed)."""


class CleanUp(Marker):
    """Remove what a failed issue left and confirm it absent (then feed back CleanedUp)."""


class RevokeCredential(Marker):
    """One revocation attempt with read-back (then feed back RevokeAttempted)."""


@dataclass(frozen=True)
class Sleep:
    delay: timedelta


class TellParent(Marker):
    """A child grant of a service onboarding reports its state upward."""


Phase = Literal["revoking", "review"]  # where a grant that continued as new picks up (GrantResume.phase)


@dataclass(frozen=True)
class ContinueAsNewIfLong:
    """A loop that may run for weeks hands over to a fresh run before the history grows too long."""

    phase: Phase


@dataclass(frozen=True)
class End:
    """The grant is over (`state`, with `reason`): flush, let handlers and notifications finish."""

    state: GrantState


Effect = (
    Emit
    | Notify
    | Flush
    | ApplyExtension
    | IssueCredential
    | CleanUp
    | RevokeCredential
    | Sleep
    | ContinueAsNewIfLong
    | TellParent
    | End
)


def said(event: EventBody, actor: Actor, g: Grant, tell: bool = True, at: datetime | None = None) -> list[Effect]:
    """Emit `event` (at `at`, see Emit); `tell`: and send the notifications it stands for
    (domain/notification_rules), made now, so they show the grant as it is now. Not `tell`: the
    caller notifies later."""
    return [Emit(event, actor, at), *(Notify(n) for n in notifications_for(event, g) if tell)]
