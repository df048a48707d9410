"""When a waiting grant must wake: approval reminders, escalation and deadline; an extension's
deadline, the expiry warning and the expiry; review reminders and the review deadline.
One schedule for every phase, so the workflow has one wait (an updatable timer)."""

from __future__ import annotations

from datetime import datetime, timedelta

from jitaccess.domain.contracts import GrantOptions
from jitaccess.domain.grant import Grant
from jitaccess.domain.lifecycle_effects import Timer
from jitaccess.domain.states import ExtensionStatus as X
from jitaccess.domain.states import GrantState as S

# How far ahead of a deadline its first timer ends (timer_end): more than a busy workflow task runs,
# and an evicted grant's replay, take on a loaded worker (up to ~0.9 s each at 10,000 held grants).
ARM_AHEAD = timedelta(seconds=2)
# Only a deadline further away than this is armed in two steps: a nearer one's second step would run
# under the same load as its first (N=200 five-second grants: no gain, one more task each).
TWO_STEPS_BEYOND = timedelta(seconds=30)


def timer_end(deadline: datetime | None, now: datetime) -> datetime | None:
    """Where the timer for `deadline` should end: ARM_AHEAD before it when it is more than
    TWO_STEPS_BEYOND away, else the deadline itself (the wait then wakes, finds nothing due, and
    arms the remainder from a fresh task).

    Temporal starts a timer when the task that armed it completes, but the workflow counts its
    length from the task's start (`workflow.now()`), so a deadline fires late by that task's whole
    run: the task that arms an expiry also records the issue, and under a burst it runs long. The
    task arming the remainder only looks at the clock, so it runs short; and a workflow evicted
    from the cache replays on the first timer, ahead of its deadline, instead of after it."""
    if deadline is None or deadline - now <= TWO_STEPS_BEYOND:
        return deadline
    return deadline - ARM_AHEAD


class Schedule:
    """The deadlines of the phase the grant is in. `woken`: a command changed what the active
    phase waits for; `ended`: why the active phase is over (expired, or revoked early)."""

    def __init__(self, grant: Grant, options: GrantOptions) -> None:
        self.grant = grant
        self.options = options
        self.woken = False
        self.ended: str | None = None
        self.warned = True  # the expiry warning went out (or is not wanted)
        self._rearm = False  # re-decide `warned` when the next wait starts (the expiry moved)
        self.reminder: datetime | None = None  # the next approval or review reminder

    def deadlines(self) -> dict[Timer, datetime]:
        """Every deadline still ahead of the grant's current phase."""
        g, out = self.grant, {}
        rnd = g.approval
        if g.state is S.awaiting_approval and rnd is not None:
            out[Timer.approval_deadline] = rnd.deadline
            if self.reminder is not None:
                out[Timer.approval_reminder] = self.reminder
            if g.decision.escalate_after is not None and not rnd.escalated:
                out[Timer.approval_escalation] = rnd.requested_at + g.decision.escalate_after
        elif g.state is S.active and g.expires_at is not None:
            out[Timer.expiry] = g.expires_at
            ext, lead = g.extension, self.options.expiry_warning_lead
            if ext is not None and ext.status is X.pending and ext.round is not None:
                out[Timer.extension_deadline] = ext.round.deadline
            if not self.warned and lead is not None:
                out[Timer.expiry_warning] = g.expires_at - lead
        elif g.state is S.pending_review and g.review_deadline is not None:
            if self.reminder is not None:
                out[Timer.review_reminder] = self.reminder
            if not g.review_escalated:
                out[Timer.review_overdue] = g.review_deadline
        return out

    def next_wake(self, now: datetime) -> datetime | None:
        """The earliest deadline (None: nothing to wait for but a command)."""
        return min(self.deadlines().values(), default=None)

    def due(self, now: datetime) -> set[Timer]:
        due = {t for t, at in self.deadlines().items() if at <= now}
        if Timer.expiry in due:  # a warning for an expiry already reached is not sent
            due.discard(Timer.expiry_warning)
        return due

    def settled(self, now: datetime) -> bool:
        """Is the wait over? Approval: decided, cancelled or past its deadline; active: expired or
        revoked early (`ended`); review: reviewed."""
        g = self.grant
        if g.state is S.awaiting_approval:
            return Timer.approval_deadline in self.due(now)
        if g.state is S.active:
            return self.ended is not None
        return g.state is not S.pending_review

    def arm(self, now: datetime) -> datetime | None:
        """A wait starts now: forget what woke the last one, and say when to wake."""
        if self._rearm:
            self._rearm = False
            self.rearm_warning(now)
        self.woken = False
        return self.next_wake(now)

    def extension_ready(self) -> bool:
        """An approved extension waits to be applied (the active wait wakes at once for it)."""
        ext = self.grant.extension
        return self.grant.state is S.active and ext is not None and ext.status is X.approved

    def begin_active(self) -> None:
        """Issued: the expiry warning is due `expiry_warning_lead` before expiry, unless the grant is that short."""
        lead = self.options.expiry_warning_lead
        self.warned = lead is None or self.grant.duration <= lead

    def rearm_warning(self, now: datetime) -> None:
        """The expiry moved (or an extension failed): warn again unless the lead is already past."""
        g, lead = self.grant, self.options.expiry_warning_lead
        assert g.expires_at is not None
        self.warned = lead is None or g.expires_at - lead <= now

    def rearm_at_next_wait(self) -> None:
        self._rearm = True

    def reminded(self, now: datetime) -> None:
        """A reminder went out: the next one is a whole period after the last one due."""
        g = self.grant
        bg = g.decision.entitlement.break_glass if g.decision.entitlement else None
        every = bg.review_reminder_every if g.state is S.pending_review and bg else g.decision.reminder_every
        assert self.reminder is not None and every is not None
        while self.reminder <= now:
            self.reminder += every
