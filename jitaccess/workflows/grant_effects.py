"""Carrying out what the grant lifecycle (jitaccess.domain.lifecycle) decides: events onto the
chain, notifications delivered in the background, ledger flushes, provider calls (whose outcomes go
back to the lifecycle), continue-as-new and the end. A mixin of GrantWorkflow; deterministic."""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, SearchAttributeUpdate
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from jitaccess.domain import contracts as c
    from jitaccess.domain import lifecycle_effects as fx
    from jitaccess.domain.event_types import NotificationAbandoned
    from jitaccess.domain.grant import Grant, GrantInput, GrantResume
    from jitaccess.domain.lifecycle import Lifecycle
    from jitaccess.domain.notifications import DeliveryRequest, DeliveryResult, Notification
    from jitaccess.domain.principals import SYSTEM_ACTOR
    from jitaccess.domain.search import grant_search_values
    from jitaccess.workflows import trust
    from jitaccess.workflows.common import EvidenceChain, failure_message
    from jitaccess.workflows.grant_provider import ProviderCall, call_provider
    from jitaccess.workflows.patches import LAST_EVENTS_FLUSHED_LOCALLY, SEARCH_ATTRIBUTES, patched


def search_updates(values: dict[str, str | bool]) -> list[SearchAttributeUpdate]:
    """Typed search attribute updates for `values` (jitaccess.domain.search names)."""
    return [
        SearchAttributeKey.for_bool(k).value_set(v)
        if isinstance(v, bool)
        else SearchAttributeKey.for_keyword(k).value_set(v)
        for k, v in values.items()
    ]


class GrantEffects:
    """What GrantWorkflow holds: its input, the lifecycle (with the grant), the chain."""

    _inp: GrantInput
    _grant: Grant
    _life: Lifecycle
    _chain: EvidenceChain
    _notifying: list[asyncio.Task[None]]
    _notifications: int
    _searchable: dict[str, str | bool] | None
    _awaiting_provider: bool

    def _apply(self, effects: list[fx.Effect]) -> None:
        """The effects of an update or signal handler (events and notifications; no waiting)."""
        for e in effects:
            match e:
                case fx.Emit():
                    ev = self._chain.emit(e.event, e.actor, e.at)
                    self._grant.events, self._grant.last_hash = ev.seq, ev.hash
                case fx.Notify():
                    self._notify(e.notification)
                case _:
                    raise AssertionError(f"{e!r} needs the workflow's main loop")

    async def _execute(self, effects: list[fx.Effect]) -> None:
        """Carry out effects in order; a provider call's outcome goes back to the lifecycle and
        its effects come next."""
        queue = deque(effects)
        while queue:
            e = queue.popleft()
            match e:
                case fx.Emit() | fx.Notify():
                    self._apply([e])
                case fx.Flush():
                    await self._flush()
                case fx.Sleep():
                    await workflow.sleep(e.delay)
                case fx.ContinueAsNewIfLong():
                    await self._continue_as_new_if_long(e.phase)
                case fx.TellParent():
                    await self._tell_parent()
                case fx.End():
                    await self._end()
                case fx.IssueCredential() | fx.CleanUp() | fx.RevokeCredential() | fx.ApplyExtension():
                    outcome = await self._call_provider(e)
                    queue.extendleft(reversed(self._life.handle(outcome, workflow.now())))

    async def _call_provider(self, call: ProviderCall) -> fx.Outcome:
        """An issue's or a revoke's answer makes events stamped with its time (domain Emit.at), so
        that any attempt of the task that takes the answer builds them alike and a local activity
        may write them (EvidenceChain.flush: today the revocation's, the grant's last). Updates and
        signals that arrive meanwhile are decided after those events (`_after_provider_answer`): a
        retried attempt may carry a message the first attempt did not, and its handler, run first,
        would otherwise put its event where the first attempt wrote the answer's."""
        stamped = isinstance(call, fx.IssueCredential | fx.RevokeCredential)
        self._awaiting_provider = stamped and patched(LAST_EVENTS_FLUSHED_LOCALLY)
        try:
            return await call_provider(call, self._life, self._inp)
        finally:
            self._awaiting_provider = False

    async def _after_provider_answer(self) -> None:
        """What a handler awaits first (see _call_provider); no wait at all when none is awaited,
        so that histories from before it replay unchanged."""
        if self._awaiting_provider:
            await workflow.wait_condition(lambda: not self._awaiting_provider)

    async def _end(self) -> None:
        """The lifecycle ended the grant: store the last events, let handlers and deliveries finish."""
        await self._flush(last=True)
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._notifying:  # bounded: each delivery gives up after notification_attempts
            await asyncio.gather(*self._notifying)
        await self._flush(last=True)
        await self._tell_parent()

    async def _continue_as_new_if_long(self, phase: fx.Phase) -> None:
        """Loops that may run for weeks (revocation retries, an unreviewed break-glass grant) hand
        over to a fresh run before the history grows too long, carrying the state and the chain."""
        info = workflow.info()
        if not (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._life.options.history_budget
        ):
            return
        await self._flush()
        if self._notifying:
            await asyncio.gather(*self._notifying)
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._flush()
        resume = GrantResume(grant=self._grant, last_event=self._chain.last, phase=phase)
        workflow.continue_as_new(self._inp.model_copy(update={"resume": resume}))

    async def _tell_parent(self) -> None:
        """A child grant of a service onboarding reports its state (and non-secret reference) upward."""
        parent = workflow.info().parent
        if parent is None:
            return
        g = self._grant
        update = c.ChildUpdate(
            grant_id=g.grant_id,
            state=g.state.value,
            reference=g.credential.reference if g.credential else None,
            expires_at=g.expires_at,
        )
        signed = trust.sign(update, parent.workflow_id, c.CHILD_UPDATE_SIGNAL)
        await workflow.get_external_workflow_handle(parent.workflow_id).signal(c.CHILD_UPDATE_SIGNAL, signed)

    # -- notifications ------------------------------------------------------------------
    def _notify(self, n: Notification) -> None:
        """Deliver in the background: a notifier that is down never blocks or fails the grant."""
        names = self._life.options.notifiers.get(n.audience.value, [])
        if not names:
            return
        self._notifications += 1
        for name in names:
            delivery_id = f"{n.grant_id}:n{self._notifications}:{name}"
            self._notifying.append(asyncio.create_task(self._deliver(name, n, delivery_id)))

    async def _deliver(self, notifier: str, n: Notification, delivery_id: str) -> None:
        delay = timedelta(seconds=1)
        attempts = self._life.options.notification_attempts
        for attempt in range(1, attempts + 1):
            try:
                res: DeliveryResult = await workflow.execute_activity(
                    c.DELIVER_NOTIFICATION,
                    DeliveryRequest(notifier=notifier, notification=n, attempt=attempt, delivery_id=delivery_id),
                    result_type=DeliveryResult,
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=RetryPolicy(maximum_attempts=1),  # this loop retries, with an event per attempt
                )
            except ActivityError as e:
                res = DeliveryResult(notifier=notifier, ok=False, error=failure_message(e), attempt=attempt)
            self._apply([fx.Emit(res.event(n), SYSTEM_ACTOR)])
            await self._flush()
            if res.ok:
                return
            if attempt < attempts:
                await workflow.sleep(delay)
                delay *= 2
        abandoned = NotificationAbandoned(notifier=notifier, kind=n.kind.value, attempts=attempts)
        self._apply([fx.Emit(abandoned, SYSTEM_ACTOR)])
        await self._flush()

    # -- the ledger and visibility -------------------------------------------------------
    async def _flush(self, last: bool = False) -> None:
        """Store events not yet in the ledger (idempotent there, so replays and retries are harmless);
        `last`: the workflow ends after it (EvidenceChain.flush)."""
        self._upsert_search_attributes()
        await self._chain.flush(self._grant.summary(), last)

    def _upsert_search_attributes(self) -> None:
        """Visibility follows the grant (Requester, Entitlement, GrantState, BreakGlass, Provider):
        the changed ones are upserted before every wait (patched: older histories never did)."""
        if self._searchable is None:  # started without them (older grants, feature off)
            return
        values = grant_search_values(self._grant)
        changed = {k: v for k, v in values.items() if self._searchable.get(k) != v}
        if not changed or not patched(SEARCH_ATTRIBUTES):
            return
        workflow.upsert_search_attributes(search_updates(changed))
        self._searchable = values
