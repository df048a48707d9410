"""Which notifications an identity event sends: a pure mapping, event + grant -> notifications.

The workflow emits an event, then hands `notifications_for(event, grant)` to its notifiers (the
grant as it stands once the event's transition is done: the summary shows its state). Titles,
audiences, severities and recipients are decided here and nowhere else; the one notification
no event stands for, the expiry warning (a moment, not evidence), is `expiry_warning(grant)`.

Pure: no I/O, no clock, so it runs inside the workflow sandbox and unit tests call it directly.
"""

from __future__ import annotations

from jitaccess.domain import event_types as ev
from jitaccess.domain.approval import ApprovalRound
from jitaccess.domain.event_types import EventBody
from jitaccess.domain.grant import Grant
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


# Most events tell one audience one sentence: by (kind, audience), each event's title, filled
# from the event's fields and the grant's (entitlement, requester, incident, expires, end_reason).
# Recipients follow the audience: the requester; the approvers who can vote now in the pending
# round; the break-glass reviewer groups.
REQ, APP, REV = Audience.requester, Audience.approvers, Audience.reviewers
TOLD: dict[tuple[NotificationKind, Audience], dict[type[EventBody], str]] = {
    (K.approval_requested, APP): {
        ev.ApprovalRequested: "{requester} requests {entitlement}",
        # a stage is done and the round is not: the next stage's approvers are asked
        ev.ApprovalGranted: "{requester} requests {entitlement}",
        ev.ExtensionRequested: "{requester} asks to extend {entitlement} by {extension_seconds}s",
    },
    (K.approval_reminder, APP): {ev.ApprovalReminder: "Reminder: {requester} requests {entitlement}"},
    (K.denied, REQ): {
        ev.ApprovalExpired: "Your request for {entitlement} expired without a decision",
        ev.ApprovalDenied: "Your request for {entitlement} was denied",
    },
    (K.issued, REQ): {ev.FulfilmentVerified: "{entitlement} is active until {expires}"},
    (K.revoked, REQ): {
        ev.RevocationConfirmed: "{entitlement} was revoked ({end_reason})",
        ev.RevocationDeferred: "{entitlement} was revoked ({end_reason})",  # shared access: our hold released
    },
    (K.extended, REQ): {
        ev.ExtensionRefused: "Your extension of {entitlement} was refused: {reason}",
        ev.ExtensionExpired: "Your extension of {entitlement} expired undecided; the grant still ends at {expires}",
        ev.ExtensionFailed: "Extending {entitlement} failed; it still ends at {expires_at}",
        ev.ExtensionApplied: "{entitlement} extended until {expires_at}",
    },
    (K.review_requested, REV): {
        ev.ReviewRequested: "Review break-glass use of {entitlement} by {requester} ({incident})",
        ev.ReviewReminder: "Reminder: review break-glass use of {entitlement} by {requester}",
    },
}
_TOLD_BY_EVENT = {
    e: (kind, audience, title) for (kind, audience), titles in TOLD.items() for e, title in titles.items()
}


def _told(event: EventBody, g: Grant) -> list[Notification]:
    kind, audience, template = _TOLD_BY_EVENT[type(event)]
    facts = {
        "entitlement": g.entitlement,
        "requester": g.requester.id,
        "incident": g.incident,
        "expires": g.expires_at.isoformat() if g.expires_at else "?",
        "end_reason": g.end_reason or "revoked",
    }
    title = template.format(**{**event.data(), **facts})
    if audience is Audience.approvers:
        return to_approvers(g, kind, title)
    recipients = [g.requester.id] if audience is Audience.requester else _reviewer_groups(g)
    return [notification(g, kind, audience, title, recipients)]


def _alerts(event: EventBody, g: Grant) -> list[Notification]:
    """The high-severity ones: break-glass taken, an approval escalated, a review overdue."""
    who = g.requester.id
    if isinstance(event, ev.GrantApproved) and event.break_glass:
        title = f"BREAK-GLASS: {who} took {g.entitlement} ({g.incident})"
        return [notification(g, K.break_glass_alert, Audience.security, title, [], Severity.high)]
    if isinstance(event, ev.ApprovalEscalated):
        title = f"Escalated: {who}'s request for {g.entitlement} is still pending"
        groups = list(event.escalation_groups)
        return [notification(g, K.approval_escalated, Audience.approvers, title, groups, Severity.high)]
    if isinstance(event, ev.ReviewOverdue):
        title = f"OVERDUE review of break-glass use of {g.entitlement} by {who}"
        groups = _reviewer_groups(g) + list(event.escalation_groups)
        return [notification(g, K.review_overdue, Audience.reviewers, title, groups, Severity.high)]
    return []


def notifications_for(event: EventBody, g: Grant) -> list[Notification]:
    """The notifications `event` sends about grant `g` (none for most events)."""
    if type(event) in _TOLD_BY_EVENT:
        return _told(event, g)
    if isinstance(event, ev.GrantApproved) and event.approvers is not None and not event.break_glass:
        # approved by its approvers (an auto-approval tells nobody)
        return _told_requester(g, K.approved, f"Your request for {g.entitlement} was approved")
    return _alerts(event, g)


def _told_requester(g: Grant, kind: NotificationKind, title: str) -> list[Notification]:
    return [notification(g, kind, Audience.requester, title, [g.requester.id])]


def expiry_warning(g: Grant) -> Notification:
    """The requester is told the grant ends soon (`expiry_warning_lead` before it does): a moment,
    not evidence, so no event stands for it."""
    [n] = _told_requester(
        g, K.expiry_warning, f"{g.entitlement} expires at {g.expires_at.isoformat() if g.expires_at else '?'}"
    )
    return n
