"""What goes into the grant lifecycle (commands, timers, activity outcomes) and what comes out
(effects the workflow executes). Plain frozen values: the machine is tested by comparing them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from jitaccess.domain.credentials import IssuedCredential, IssueResult, RevocationResult
from jitaccess.domain.event_types import EventBody
from jitaccess.domain.grant import ActionInput, ExtendInput, Grant, ReviewInput
from jitaccess.domain.notification_rules import notifications_for
from jitaccess.domain.notifications import Notification
from jitaccess.domain.principals import Actor
from jitaccess.domain.reconciliation import Finding
from jitaccess.domain.states import GrantState


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


# -- commands (updates and signals; `admission` is the signed command's evidence, {} when unsigned)
@dataclass(frozen=True)
class Decision:
    """A person's signed action on the grant."""

    action: ActionInput
    admission: dict[str, Any] = field(default_factory=dict)


class Approve(Decision):
    pass


class Deny(Decision):
    pass


class Revoke(Decision):
    pass


class Claim(Decision):
    """The requester fetches the single-use wrapped credential."""


@dataclass(frozen=True)
class ParentRevoke:
    """The onboarding that started this grant ends it (already verified as its parent's)."""

    actor: Actor
    reason: str
    admission: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Extend:
    request: ExtendInput
    admission: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SubmitReview:
    review: ReviewInput
    admission: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportDrift:
    finding: Finding
    admission: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Tick:
    """The wait ended (its timer fired, or a command woke it): fire whatever is due."""


@dataclass(frozen=True)
class ExtensionApplied:
    credential: IssuedCredential


@dataclass(frozen=True)
class ExtensionFailed:
    error: str


@dataclass(frozen=True)
class Issued:
    """The issue activity's answer (verified by read-back, or not)."""

    result: IssueResult


@dataclass(frozen=True)
class IssueRefused:
    """The issuer could not prove the grant from signed evidence: nothing was issued."""

    rule: str
    message: str


@dataclass(frozen=True)
class IssueFailed:
    error: str


@dataclass(frozen=True)
class CleanedUp:
    """Whatever a failed issue left behind is gone (read back)."""

    result: RevocationResult


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
    """Append an identity event to the grant's chain."""

    event: EventBody
    actor: Actor


@dataclass(frozen=True)
class Notify:
    """Deliver a notification in the background to its audience's notifiers."""

    notification: Notification


@dataclass(frozen=True)
class Flush:
    """Write the events not yet in the ledger (and upsert changed search attributes)."""


@dataclass(frozen=True)
class ApplyExtension:
    """Move the provider's TTL to `expires_at` (then feed back ExtensionApplied/ExtensionFailed)."""

    expires_at: datetime
    ttl_seconds: int


@dataclass(frozen=True)
class IssueCredential:
    """Run the issue activity (then feed back Issued, IssueRefused or IssueFailed)."""


@dataclass(frozen=True)
class CleanUp:
    """Remove what a failed issue left and confirm it absent (then feed back CleanedUp)."""


@dataclass(frozen=True)
class RevokeCredential:
    """One revocation attempt with read-back (then feed back RevokeAttempted)."""


@dataclass(frozen=True)
class Sleep:
    delay: timedelta


Phase = Literal["revoking", "review"]  # where a grant that continued as new picks up (GrantResume.phase)


@dataclass(frozen=True)
class ContinueAsNewIfLong:
    """A loop that may run for weeks hands over to a fresh run before the history grows too long."""

    phase: Phase


@dataclass(frozen=True)
class TellParent:
    """A child grant of a service onboarding reports its state upward."""


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


def said(event: EventBody, actor: Actor, g: Grant, tell: bool = True) -> list[Effect]:
    """Emit `event`; `tell`: and send the notifications it stands for (domain/notification_rules),
    made now, so they show the grant as it is now. Not `tell`: the caller notifies later."""
    return [Emit(event, actor), *(Notify(n) for n in notifications_for(event, g) if tell)]
