"""GrantWorkflow: one grant, request to confirmed revocation.

Workflow ID = grant ID. The lifecycle (jitaccess.domain.lifecycle) decides every step; this
workflow carries out its effects (grant_effects.py) and waits in one place, an updatable timer on
the lifecycle's earliest deadline. Decisions (approve / deny / revoke / extend / review / claim) are
updates whose validators ask the lifecycle, so a refused action never enters history and the caller
gets the precise rule. Every step appends to the grant's hash chain; the chain is flushed to the
ledger before every wait.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

with workflow.unsafe.imports_passed_through():
    from jitaccess.domain import contracts as c
    from jitaccess.domain.credentials import WrappedHandover
    from jitaccess.domain.grant import ActionInput, ExtendInput, Grant, GrantInput, Refusal, ReviewInput
    from jitaccess.domain.lifecycle import Lifecycle
    from jitaccess.domain.lifecycle_effects import (
        Approve,
        Claim,
        Command,
        Deny,
        Extend,
        ParentRevoke,
        ReportDrift,
        Revoke,
        SubmitReview,
        Tick,
    )
    from jitaccess.domain.lifecycle_schedule import timer_end
    from jitaccess.domain.principals import SYSTEM_ACTOR, Actor, ActorRole, Principal
    from jitaccess.domain.reconciliation import DriftReport
    from jitaccess.domain.search import grant_search_values
    from jitaccess.domain.states import GrantState as S
    from jitaccess.workflows import trust
    from jitaccess.workflows.common import EvidenceChain, refuse_unless, refuse_unless_signed, wait_until
    from jitaccess.workflows.grant_effects import GrantEffects
    from jitaccess.workflows.patches import (
        DEADLINE_ARMED_AHEAD,
        EXTENSION_APPROVED_WHILE_BUSY,
        SIGNED_COMMANDS,
        patched,
    )

GRANT_STATE_KEY = SearchAttributeKey.for_keyword("GrantState")


def initial_search_attributes(inp: GrantInput) -> TypedSearchAttributes:
    """What the API starts a grant with (so the workflow keeps them current from then on)."""
    values = grant_search_values(Grant.from_input(inp))
    return TypedSearchAttributes(
        [
            SearchAttributePair(SearchAttributeKey.for_bool(k), v)
            if isinstance(v, bool)
            else SearchAttributePair(SearchAttributeKey.for_keyword(k), v)
            for k, v in values.items()
        ]
    )


@workflow.defn(name="GrantWorkflow")
class GrantWorkflow(GrantEffects):
    @workflow.init
    def __init__(self, inp: GrantInput) -> None:
        self._inp = inp
        self._grant = inp.resume.grant if inp.resume else Grant.from_input(inp)
        self._life = Lifecycle(self._grant, inp.options)
        self._chain = EvidenceChain(inp.grant_id, inp.resume.last_event if inp.resume else None)
        self._notifying = []
        self._notifications = 0
        self._awaiting_provider = False
        self._gate = trust.CommandGate(inp.grant_id)
        # search attributes (Requester, GrantState, ...): kept current when the starter set them
        # (the API does, with JITACCESS_SEARCH_ATTRIBUTES); the values last upserted
        started = workflow.info().typed_search_attributes
        self._searchable = {p.key.name: p.value for p in started} if started.get(GRANT_STATE_KEY) is not None else None

    # -- the lifecycle ------------------------------------------------------------
    @workflow.run
    async def run(self, inp: GrantInput) -> Grant:
        """Step, wait, step ... until the lifecycle ends the grant."""
        life = self._life
        if inp.resume is not None:  # continued as new while revoking or awaiting review
            await self._execute(life.resume(inp.resume.phase, workflow.now()))
        else:
            await self._execute(life.start(inp, self._start_refusal(inp), workflow.now()))
        while not life.finished:
            await self._wait()
            await self._execute(life.after_wait(workflow.now()))
        return self._grant

    async def _wait(self) -> None:
        """The one wait (an updatable timer): until the lifecycle's earliest deadline, cut short
        when a command changes what it waits for; then fire what is due and look again."""
        life = self._life
        while not life.settled(workflow.now()):
            if self._grant.state is S.pending_review:
                await self._continue_as_new_if_long("review")
            now = workflow.now()
            wake = life.arm(now)
            if life.extension_ready() and patched(EXTENSION_APPROVED_WHILE_BUSY):
                # approved while the loop was busy (e.g. writing the previous extension's evidence):
                # the handler's wake-up was just forgotten, so apply it now instead of at the old expiry
                wake = now
            elif patched(DEADLINE_ARMED_AHEAD):
                wake = timer_end(wake, now)  # in two steps, so the deadline is not late by this task's run
            await wait_until(life.should_wake, wake)
            await self._execute(life.handle(Tick(), workflow.now()))

    def _start_refusal(self, inp: GrantInput) -> Refusal | None:
        """A grant starts only from an input the API signed (an onboarding's child: its worker)."""
        if not patched(SIGNED_COMMANDS):
            return None
        return self._gate.start_refusal(inp, "start:GrantWorkflow", trust.API_OR_WORKER)

    # -- decisions (updates) and status (query) ---------------------------------------
    def _decide(self, cmd: Command) -> Grant:
        self._apply(self._life.handle(cmd, workflow.now()))
        return self._grant

    async def _decide_update(self, cmd: Command) -> Grant:
        """An update, decided after the provider's answer the grant waits for, if any
        (GrantEffects._call_provider); its validator saw the grant before that answer: asked again."""
        if self._awaiting_provider:
            await self._after_provider_answer()
            refuse_unless(lambda: self._life.check(cmd, workflow.now()))
        return self._decide(cmd)

    def _validate(self, cmd: Command, signed: ActionInput | ExtendInput | ReviewInput, action: str) -> None:
        refuse_unless_signed(self._gate, signed, action, lambda: self._life.check(cmd, workflow.now()))

    @workflow.query
    def status(self) -> Grant:
        return self._grant

    @workflow.update
    async def approve(self, a: ActionInput) -> Grant:
        return await self._decide_update(Approve(a, admission=self._gate.admit(a, "approve")))

    @approve.validator
    def _validate_approve(self, a: ActionInput) -> None:
        self._validate(Approve(a), a, "approve")

    @workflow.update
    async def deny(self, a: ActionInput) -> Grant:
        return await self._decide_update(Deny(a, admission=self._gate.admit(a, "deny")))

    @deny.validator
    def _validate_deny(self, a: ActionInput) -> None:
        self._validate(Deny(a), a, "deny")

    @workflow.update
    async def extend(self, inp: ExtendInput) -> Grant:
        return await self._decide_update(Extend(inp, admission=self._gate.admit(inp, "extend")))

    @extend.validator
    def _validate_extend(self, inp: ExtendInput) -> None:
        self._validate(Extend(inp), inp, "extend")

    @workflow.update
    async def review(self, inp: ReviewInput) -> Grant:
        return await self._decide_update(SubmitReview(inp, admission=self._gate.admit(inp, "review")))

    @review.validator
    def _validate_review(self, inp: ReviewInput) -> None:
        self._validate(SubmitReview(inp), inp, "review")

    @workflow.update
    async def revoke(self, a: ActionInput) -> Grant:
        return await self._decide_update(Revoke(a, admission=self._gate.admit(a, "revoke")))

    @revoke.validator
    def _validate_revoke(self, a: ActionInput) -> None:
        self._validate(Revoke(a), a, "revoke")

    @workflow.update
    async def claim_credential(self, a: ActionInput) -> WrappedHandover:
        handover = self._grant.handover
        await self._execute(
            self._life.handle(Claim(a, admission=self._gate.admit(a, "claim_credential")), workflow.now())
        )
        assert handover is not None
        return handover

    @claim_credential.validator
    def _validate_claim(self, a: ActionInput) -> None:
        self._validate(Claim(a), a, "claim_credential")

    @workflow.signal(name=c.PARENT_REVOKE_SIGNAL)
    async def parent_revoke(self, cmd: c.ParentRevoke) -> None:
        """The onboarding ends this grant (offboarding, rotation, or an all-or-nothing failure);
        only its own parent's worker-signed signal counts."""
        parent = workflow.info().parent
        if parent is None or not self._gate.accept_signal(cmd, c.PARENT_REVOKE_SIGNAL):
            return
        actor = Actor(id=parent.workflow_id, kind=SYSTEM_ACTOR.kind, role=ActorRole.system)
        admission = self._gate.admit(cmd, c.PARENT_REVOKE_SIGNAL)
        await self._after_provider_answer()  # a signal has no validator: decided as it finds the grant then
        self._decide(ParentRevoke(actor, cmd.reason, admission=admission))

    @workflow.signal(name=c.REPORT_DRIFT_SIGNAL)
    async def report_drift(self, report: DriftReport) -> None:
        """Reconciliation found this active grant's access gone at the target: recorded on this
        grant's chain once (the lifecycle ignores it unless the grant is active), and only when a
        worker signed it for this grant."""
        if not self._gate.accept_signal(report, c.REPORT_DRIFT_SIGNAL):
            return
        admission = self._gate.admit(report, c.REPORT_DRIFT_SIGNAL)
        await self._after_provider_answer()
        await self._execute(self._life.handle(ReportDrift(report.finding, admission=admission), workflow.now()))


__all__ = ["GrantWorkflow", "Principal"]
