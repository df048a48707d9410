"""The notifications the grant lifecycle sends: who hears what, in words. Built when the step
happens, so the summary shows the grant as it was then."""

from __future__ import annotations

from jitaccess.domain import notification_rules
from jitaccess.domain.catalogue import BreakGlass
from jitaccess.domain.grant import ApprovalRound, Grant
from jitaccess.domain.lifecycle_effects import Notify
from jitaccess.domain.notification_rules import notification
from jitaccess.domain.notifications import Audience, NotificationKind, Severity

K = NotificationKind


def notice(
    g: Grant,
    kind: NotificationKind,
    audience: Audience,
    title: str,
    recipients: list[str],
    severity: Severity = Severity.info,
) -> Notify:
    return Notify(notification(g, kind, audience, title, recipients, severity))


def to_requester(g: Grant, kind: NotificationKind, title: str) -> Notify:
    return notice(g, kind, Audience.requester, title, [g.requester.id])


def to_approvers(g: Grant, kind: NotificationKind, title: str, rnd: ApprovalRound) -> Notify:
    """To the groups that can vote in the round's open stages (escalation groups once escalated)."""
    return Notify(*notification_rules.to_approvers(g, kind, title, rnd))


def approval_requested(g: Grant, rnd: ApprovalRound) -> Notify:
    return to_approvers(g, K.approval_requested, f"{g.requester.id} requests {g.entitlement}", rnd)


def extension_requested(g: Grant, rnd: ApprovalRound, seconds: int) -> Notify:
    title = f"{g.requester.id} asks to extend {g.entitlement} by {seconds}s"
    return to_approvers(g, K.approval_requested, title, rnd)


def approval_reminder(g: Grant, rnd: ApprovalRound) -> Notify:
    return to_approvers(g, K.approval_reminder, f"Reminder: {g.requester.id} requests {g.entitlement}", rnd)


def approval_escalated(g: Grant, rnd: ApprovalRound) -> Notify:
    title = f"Escalated: {g.requester.id}'s request for {g.entitlement} is still pending"
    return notice(g, K.approval_escalated, Audience.approvers, title, list(rnd.escalation_groups), Severity.high)


def break_glass_alert(g: Grant) -> Notify:
    title = f"BREAK-GLASS: {g.requester.id} took {g.entitlement} ({g.incident})"
    return notice(g, K.break_glass_alert, Audience.security, title, [], Severity.high)


def expires(g: Grant) -> str:
    return g.expires_at.isoformat() if g.expires_at else "?"


def review_requested(g: Grant, reminder: bool = False) -> Notify:
    title = f"Review break-glass use of {g.entitlement} by {g.requester.id} ({g.incident})"
    if reminder:
        title = f"Reminder: review break-glass use of {g.entitlement} by {g.requester.id}"
    return notice(g, K.review_requested, Audience.reviewers, title, list(reviewers(g, escalated=False)))


def review_overdue(g: Grant) -> Notify:
    title = f"OVERDUE review of break-glass use of {g.entitlement} by {g.requester.id}"
    return notice(g, K.review_overdue, Audience.reviewers, title, list(reviewers(g, escalated=True)), Severity.high)


def break_glass(g: Grant) -> BreakGlass:
    bg = g.decision.entitlement.break_glass if g.decision.entitlement else None
    assert bg is not None, "only a break-glass grant is reviewed"
    return bg


def reviewers(g: Grant, escalated: bool) -> tuple[str, ...]:
    bg = break_glass(g)
    return bg.reviewer_groups + (bg.escalation_groups if escalated else ())
