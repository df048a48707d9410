"""Delegation rules (pure): who may lend their approval authority, for which window, and which
delegations still count when the delegate votes.

Only someone who can approve something may delegate; the window starts now or later and is
bounded; and at vote time each delegator is taken as they are *now* (their current groups), so a
delegation from someone who has since lost their approval authority no longer counts."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime, timedelta

from jitaccess.domain.approval import Delegation
from jitaccess.domain.catalogue import Catalogue
from jitaccess.domain.principals import Principal
from jitaccess.domain.refusals import Refusal, RefusalKind

MAX_DELEGATION = timedelta(days=30)  # longest window
MAX_LEAD = timedelta(days=365)  # a window starts at most this far ahead
CLOCK_SKEW = timedelta(seconds=60)  # a start this little in the past is taken as "now"


def check_delegator(catalogue: Catalogue, delegator: Principal) -> None:
    """Only a member of some approver or escalation group in the catalogue may delegate."""
    groups = catalogue.approving_groups
    if not delegator.in_any(groups):
        raise Refusal(
            RefusalKind.forbidden,
            "delegator_not_an_approver",
            f"only an approver can delegate approval authority: {delegator.id} is in none of the approver "
            f"or escalation groups ({', '.join(groups)})",
        )


def delegation_window(
    now: datetime,
    starts_at: datetime | None,
    ends_at: datetime | None,
    duration: timedelta | None,
    delegator: str,
    delegate: str,
    known_users: Collection[str] = (),
) -> tuple[datetime, datetime]:
    """The (start, end) of a new delegation, or Refusal(invalid) listing every problem."""
    problems: list[str] = []
    starts = starts_at or now
    if starts < now - CLOCK_SKEW:
        problems.append(f"starts_at {starts.isoformat()} is in the past; a delegation window starts now or later")
    elif starts > now + MAX_LEAD:
        problems.append(f"starts_at may be at most {MAX_LEAD.days} days ahead")
    starts = max(starts, now)
    ends: datetime | None = ends_at
    if ends is None and duration is not None:
        try:
            ends = starts + duration
        except OverflowError:
            problems.append("starts_at + duration is past the end of the calendar")
    if ends is None:
        if duration is None:
            problems.append("give ends_at or duration for the delegation window")
    elif ends <= starts:
        problems.append("the window must end after it starts (and after now)")
    elif ends - starts > MAX_DELEGATION:
        problems.append(f"a delegation window may last at most {MAX_DELEGATION.days} days")
    if delegate == delegator:
        problems.append("you cannot delegate to yourself")
    if known_users and delegate not in known_users:
        problems.append(f"unknown delegate {delegate!r}")
    if problems or ends is None:
        raise Refusal(RefusalKind.invalid, "invalid_request", "; ".join(problems))
    return starts, ends


def current_delegations(delegations: list[Delegation], resolve: Callable[[str], Principal | None]) -> list[Delegation]:
    """The delegations as they count now: each delegator resolved to their current principal
    (groups) by `resolve`; a delegator that no longer resolves is dropped. The approval rules
    then check the delegator's *current* groups against the open stages."""
    out: list[Delegation] = []
    for d in delegations:
        now_as = resolve(d.delegator.id)
        if now_as is not None:
            out.append(d.model_copy(update={"delegator": now_as}))
    return out
