"""Which notifications an identity event sends: a pure mapping, event + grant -> notifications.

The workflow emits an event, then hands `notifications_for(event, grant)` to its notifiers (the
grant as it stands once the event's transition is done: the summary shows its state). Titles,
audiences, severities and recipients are decided here and nowhere else; the one notification
no event stands for, the expiry warning (a moment, not evidence), is `expiry_warning(grant)`.

Pure: no I/O, no clock, so it runs inside the workflow sandbox and unit tests call it directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jitaccess.domain.event_types import (
    ApprovalDenied,
    ApprovalEscalated,
    ApprovalExpired,
    ApprovalGranted,
    ApprovalReminder,
    ApprovalRequested,
    EventBody,
    ExtensionApplied,
    ExtensionExpired,
    ExtensionFailed,
    ExtensionRefused,
    ExtensionRequested,
    FulfilmentVerified,
    GrantApproved,
    ReviewOverdue,
    ReviewReminder,
    ReviewRequested,
    RevocationConfirmed,
    RevocationDeferred,
)
from jitaccess.domain.grant import ApprovalRound, Grant
from jitaccess.domain.notifications import Audience, Notification, NotificationKind, Severity, grant_links

K = NotificationKind


def grant_summary(g: Grant) -> dict[str, str | int | None]:
    """What every grant notification shows (never a secret: see Notification)."""
    return {
        "entitlement": g.entitlement,
        "requester": g.requester.id,
        "state": g.state.value,
        "reason": g.reason,
        "ticket": g.ticket,
        "incident": g.incident,
        "duration": f"{g.duration_seconds}s",
        "expires_at": g.expires_at.isoformat() if g.expires_at else None,
    }


def notification(
    g: Grant,
    kind: NotificationKind,
    audience: Audience,
    title: str,
    recipients: list[str],
    severity: Severity = Severity.info,
) -> Notification:
    return Notification(
        grant_id=g.grant_id,
        kind=kind,
        audience=audience,
        severity=severity,
        recipients=recipients,
        title=title,
        summary=grant_summary(g),
        links=grant_links(g.grant_id, audience),
    )


def _to_requester(g: Grant, kind: NotificationKind, title: str) -> list[Notification]:
    return [notification(g, kind, Audience.requester, title, [g.requester.id])]


def to_approvers(g: Grant, kind: NotificationKind, title: str, rnd: ApprovalRound | None = None) -> list[Notification]:
    """To the groups that can vote now in round `rnd` (default: the pending one; none: nobody to ask)."""
    rnd = rnd or g.pending_round()
    if rnd is None:
        return []
    groups = [grp for st in rnd.open_stages() for grp in rnd.groups_for(st)]
    return [notification(g, kind, Audience.approvers, title, list(dict.fromkeys(groups)))]


def _reviewer_groups(g: Grant) -> list[str]:
    ent = g.decision.entitlement
    bg = ent.break_glass if ent else None
    return list(bg.reviewer_groups) if bg else []


def _expires(g: Grant) -> str:
    return g.expires_at.isoformat() if g.expires_at else "?"


# -- one rule per event type that tells someone --------------------------------------------


def _approved(e: GrantApproved, g: Grant) -> list[Notification]:
    if e.break_glass:
        title = f"BREAK-GLASS: {g.requester.id} took {g.entitlement} ({g.incident})"
        return [notification(g, K.break_glass_alert, Audience.security, title, [], Severity.high)]
    if e.approvers is not None:  # by approvers (an auto-approval tells nobody)
        return _to_requester(g, K.approved, f"Your request for {g.entitlement} was approved")
    return []


def _approval_requested(e: ApprovalRequested, g: Grant) -> list[Notification]:
    return to_approvers(g, K.approval_requested, f"{g.requester.id} requests {g.entitlement}")


def _approval_granted(e: ApprovalGranted, g: Grant) -> list[Notification]:
    # a stage is done and the round is not: the next stage's approvers are asked
    return to_approvers(g, K.approval_requested, f"{g.requester.id} requests {g.entitlement}")


def _approval_reminder(e: ApprovalReminder, g: Grant) -> list[Notification]:
    return to_approvers(g, K.approval_reminder, f"Reminder: {g.requester.id} requests {g.entitlement}")


def _approval_escalated(e: ApprovalEscalated, g: Grant) -> list[Notification]:
    title = f"Escalated: {g.requester.id}'s request for {g.entitlement} is still pending"
    return [notification(g, K.approval_escalated, Audience.approvers, title, list(e.escalation_groups), Severity.high)]


def _approval_expired(e: ApprovalExpired, g: Grant) -> list[Notification]:
    return _to_requester(g, K.denied, f"Your request for {g.entitlement} expired without a decision")


def _approval_denied(e: ApprovalDenied, g: Grant) -> list[Notification]:
    return _to_requester(g, K.denied, f"Your request for {g.entitlement} was denied")


def _issued(e: FulfilmentVerified, g: Grant) -> list[Notification]:
    return _to_requester(g, K.issued, f"{g.entitlement} is active until {_expires(g)}")


def _revoked(e: RevocationConfirmed | RevocationDeferred, g: Grant) -> list[Notification]:
    return _to_requester(g, K.revoked, f"{g.entitlement} was revoked ({g.end_reason or 'revoked'})")


def _extension_requested(e: ExtensionRequested, g: Grant) -> list[Notification]:
    title = f"{g.requester.id} asks to extend {g.entitlement} by {e.extension_seconds}s"
    return to_approvers(g, K.approval_requested, title)


def _extension_refused(e: ExtensionRefused, g: Grant) -> list[Notification]:
    return _to_requester(g, K.extended, f"Your extension of {g.entitlement} was refused: {e.reason}")


def _extension_expired(e: ExtensionExpired, g: Grant) -> list[Notification]:
    title = f"Your extension of {g.entitlement} expired undecided; the grant still ends at {_expires(g)}"
    return _to_requester(g, K.extended, title)


def _extension_failed(e: ExtensionFailed, g: Grant) -> list[Notification]:
    return _to_requester(g, K.extended, f"Extending {g.entitlement} failed; it still ends at {e.expires_at}")


def _extension_applied(e: ExtensionApplied, g: Grant) -> list[Notification]:
    return _to_requester(g, K.extended, f"{g.entitlement} extended until {e.expires_at}")


def _review_requested(e: ReviewRequested, g: Grant) -> list[Notification]:
    title = f"Review break-glass use of {g.entitlement} by {g.requester.id} ({g.incident})"
    return [notification(g, K.review_requested, Audience.reviewers, title, list(e.reviewer_groups))]


def _review_reminder(e: ReviewReminder, g: Grant) -> list[Notification]:
    title = f"Reminder: review break-glass use of {g.entitlement} by {g.requester.id}"
    return [notification(g, K.review_requested, Audience.reviewers, title, _reviewer_groups(g))]


def _review_overdue(e: ReviewOverdue, g: Grant) -> list[Notification]:
    title = f"OVERDUE review of break-glass use of {g.entitlement} by {g.requester.id}"
    recipients = _reviewer_groups(g) + list(e.escalation_groups)
    return [notification(g, K.review_overdue, Audience.reviewers, title, recipients, Severity.high)]


RULES: dict[type[EventBody], Callable[[Any, Grant], list[Notification]]] = {
    GrantApproved: _approved,
    ApprovalRequested: _approval_requested,
    ApprovalGranted: _approval_granted,
    ApprovalReminder: _approval_reminder,
    ApprovalEscalated: _approval_escalated,
    ApprovalExpired: _approval_expired,
    ApprovalDenied: _approval_denied,
    FulfilmentVerified: _issued,
    RevocationConfirmed: _revoked,
    RevocationDeferred: _revoked,
    ExtensionRequested: _extension_requested,
    ExtensionRefused: _extension_refused,
    ExtensionExpired: _extension_expired,
    ExtensionFailed: _extension_failed,
    ExtensionApplied: _extension_applied,
    ReviewRequested: _review_requested,
    ReviewReminder: _review_reminder,
    ReviewOverdue: _review_overdue,
}


def notifications_for(event: EventBody, g: Grant) -> list[Notification]:
    """The notifications `event` sends about grant `g` (none for most events)."""
    rule = RULES.get(type(event))
    return rule(event, g) if rule else []


def expiry_warning(g: Grant) -> Notification:
    """The requester is told the grant ends soon (`expiry_warning_lead` before it does)."""
    return notification(
        g, K.expiry_warning, Audience.requester, f"{g.entitlement} expires at {_expires(g)}", [g.requester.id]
    )
