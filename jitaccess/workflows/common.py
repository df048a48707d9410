"""Helpers every workflow shares: the evidence chain, and turning refusals and activity
failures into what callers and events need. Deterministic like the workflows themselves."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from jitaccess.domain import contracts as c
    from jitaccess.domain.commands import Signable
    from jitaccess.domain.event_types import EventBody
    from jitaccess.domain.events import IdentityEvent, make_event, parse_at
    from jitaccess.domain.grant import Refusal
    from jitaccess.domain.principals import Actor
    from jitaccess.workflows import trust
    from jitaccess.workflows.patches import EVIDENCE_BY_ACTIVITY, LAST_EVENTS_FLUSHED_LOCALLY, patched


def refuse_unless_signed(gate: trust.CommandGate, cmd: Signable, action: str, rule: Callable[[], Any]) -> None:
    """An update validator: the command must be signed for this workflow and action, then the
    domain `rule` must allow it; a Refusal becomes the error the API maps to 403/409/410/422."""

    def signed_and_allowed() -> None:
        gate.check(cmd, action)
        rule()

    refuse_unless(signed_and_allowed)


def refuse_unless(rule: Callable[[], Any]) -> None:
    """Run a domain `rule`; a Refusal it raises becomes the error the API maps to 403/409/410/422."""
    try:
        rule()
    except Refusal as r:
        raise ApplicationError(r.message, r.kind.value, r.rule, type=c.REFUSAL, non_retryable=True) from None


async def wait_until(woken: Callable[[], bool], deadline: datetime | None) -> bool:
    """The one wait every workflow loop uses (an updatable timer): until `woken()` holds, a handler
    having changed what the loop waits for, or until `deadline` (None: no deadline; one already
    past: no wait). False when the deadline ended it; the caller looks again either way."""
    now = workflow.now()
    if deadline is not None and deadline <= now:
        return False
    try:
        await workflow.wait_condition(woken, timeout=None if deadline is None else deadline - now)
    except TimeoutError:
        return False
    return True


def failure_message(err: BaseException) -> str:
    """The innermost failure message of an activity error (provider messages carry no secrets)."""
    while err.__cause__ is not None:
        err = err.__cause__
    return str(err) or err.__class__.__name__


class EvidenceChain:
    """One hash chain of identity events (keyed by a grant, onboarding or run ID), built in
    workflow time so a replay produces identical events, and stored idempotently by the
    `record_events` activity."""

    def __init__(self, key: str, last: IdentityEvent | None = None) -> None:
        """`last`: the chain's last event when a workflow continues as new (already in the ledger).
        Only that and the events not yet flushed are held: the ledger has the rest, and a grant
        held active for hours keeps no history in memory (bench/README.md, issue 15)."""
        self.key = key
        self._last = last
        self.count = 1 if last else 0  # events this run has seen (the carried last one included)
        self._unflushed: list[IdentityEvent] = []
        # the history length of the workflow task whose own time the last event depends on (its
        # `at`, or an earlier event's, through prev_hash); -1: none, every attempt builds it alike
        self._last_depends_on = -1

    @property
    def last(self) -> IdentityEvent:
        if self._last is None:
            raise RuntimeError(f"chain {self.key} has no event yet")
        return self._last

    def emit(self, event: EventBody, actor: Actor, at: datetime | None = None) -> IdentityEvent:
        """Append one event (its data: the fields the model was given, see EventBody.data).

        `at`: the time an activity's answer fixed (domain Emit.at), never before the chain's last
        event, so that worker and Temporal clocks never make the chain go back in time. None: the
        workflow task's time, which a retried attempt of the task sees differently."""
        if at is None:
            at = workflow.now()
            self._last_depends_on = workflow.info().get_current_history_length()
        elif self._last is not None:
            at = max(at, parse_at(self._last.at))
        ev = make_event(self.key, self._last, event.TYPE, at, actor, event.data())
        self._unflushed.append(ev)
        self._last = ev
        self.count += 1
        return ev

    async def flush(self, summary: dict[str, object] | None = None, last: bool = False) -> None:
        """Write the events not yet in the ledger, before the workflow goes on (into a wait, or a
        handler's answer). `last`: the workflow ends after this write.

        By a regular activity, which runs only once the workflow task that scheduled it is
        committed, at the cost of an activity and one more task. A local activity writes from
        inside the task instead, before Temporal has accepted it. If the task then fails or times
        out, its retry builds its events again and writes them again, and the ledger keeps the first
        attempt's (insert-or-ignore on event_id): an event stamped with the first attempt's time
        broke the chain (seen under overload at 200 concurrent grants). So a local activity writes
        only events that every attempt builds byte for byte: those made in a task Temporal accepted
        before this one, and those stamped from an activity's answer after them (update and signal
        handlers wait for that answer: GrantEffects._call_provider). And only the last write: the
        task holds for it, and a timer armed in that task starts only when it completes, late by
        the write (bench/README.md, fifteenth session). Histories recorded before each change keep
        their path (patches)."""
        if not self._unflushed:
            return
        batch = c.EventBatch(events=self._unflushed, summary=summary or {})
        self._unflushed = []
        local = last and self._last_depends_on < workflow.info().get_current_history_length()
        retry = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30))
        if patched(EVIDENCE_BY_ACTIVITY) and not (local and patched(LAST_EVENTS_FLUSHED_LOCALLY)):
            await workflow.execute_activity(
                c.RECORD_EVENTS, batch, start_to_close_timeout=timedelta(seconds=30), retry_policy=retry
            )
            return
        await workflow.execute_local_activity(
            c.RECORD_EVENTS, batch, start_to_close_timeout=timedelta(seconds=10), retry_policy=retry
        )
