"""ServiceOnboardingWorkflow: a non-human identity's bundle of entitlements, all or nothing.

Workflow ID = onboarding ID (`onboarding-<service>-<environment>`). One child GrantWorkflow per
entitlement (each with its own evidence chain, expiry and confirmed revocation); this workflow
keeps the onboarding's own chain. Children are started with ParentClosePolicy.ABANDON: if this
workflow is ever terminated, every child still expires and is revoked on its own timer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from jitaccess.domain import contracts as c
    from jitaccess.domain.approval import ApprovalRound, Vote
    from jitaccess.domain.contracts import GrantOptions
    from jitaccess.domain.event_types import (
        ApprovalDenied,
        ApprovalExpired,
        ApprovalGranted,
        ApprovalRequested,
        EventBody,
        OffboardingCompleted,
        OffboardingRequested,
        OnboardingActive,
        OnboardingApproved,
        OnboardingChildEnded,
        OnboardingChildStarted,
        OnboardingProvisioningFailed,
        OnboardingRequested,
        PolicyDecided,
        RotationCompleted,
        RotationFailed,
        RotationIssued,
    )
    from jitaccess.domain.event_types.onboarding import ONBOARDING_ENDED
    from jitaccess.domain.grant import ActionInput, GrantInput, Refusal
    from jitaccess.domain.onboarding import ChildGrant, ChildPlan, Onboarding, OnboardingDecision, OnboardingInput
    from jitaccess.domain.onboarding import OnboardingState as O
    from jitaccess.domain.policy import AccessRequest
    from jitaccess.domain.principals import SYSTEM_ACTOR, Actor, ActorRole
    from jitaccess.workflows import trust
    from jitaccess.workflows.common import EvidenceChain, refuse_unless_signed, wait_until
    from jitaccess.workflows.grant import GrantWorkflow
    from jitaccess.workflows.patches import SIGNED_COMMANDS, patched

ENDED = frozenset({"revoked", "issue_failed", "cancelled", "denied", "approval_expired", "reviewed"})
CHILD_ACTIVE_TIMEOUT = timedelta(minutes=15)  # a child's own issue timeout ends it long before this


@workflow.defn(name="ServiceOnboardingWorkflow")
class ServiceOnboardingWorkflow:
    @workflow.init
    def __init__(self, inp: OnboardingInput) -> None:
        self._o = Onboarding(
            onboarding_id=inp.onboarding_id,
            requester=inp.requester,
            workload=inp.request.workload,
            template=inp.request.template,
        )
        self._inp = inp
        self._chain = EvidenceChain(inp.onboarding_id)
        self._gate = trust.CommandGate(inp.onboarding_id)
        self._offboard: tuple[Actor, str] | None = None

    @workflow.run
    async def run(self, inp: OnboardingInput) -> Onboarding:
        o, d = self._o, inp.decision
        self._emit(
            OnboardingRequested(
                template=o.template,
                workload=o.workload.model_dump(mode="json"),
                reason=inp.request.reason,
                requester=o.requester.model_dump(mode="json"),
                owner=o.workload.owning_team,
            ),
            o.requester.as_actor(ActorRole.requester),
        )
        if patched(SIGNED_COMMANDS) and (
            forged := self._gate.start_refusal(inp, "start:ServiceOnboardingWorkflow", trust.API)
        ):
            refusal = PolicyDecided(
                outcome="deny", rule="trust:signed_request", reason_codes=[forged.rule], messages=[forged.message]
            )
            self._emit(refusal, SYSTEM_ACTOR)
            return await self._end(O.denied, f"refused: {forged.message}")
        self._emit(self._decided(d), SYSTEM_ACTOR)
        if not d.pre_approved and not await self._approved(d):
            if o.state is O.denied:
                return await self._end(O.denied, o.end_reason or "denied")
            return await self._end(O.approval_expired, "no decision before the approval deadline")
        failed = await self._provision(d)
        if failed:
            # all or nothing: what was issued is revoked and confirmed before the onboarding ends
            failures = [{"grant_id": ch.grant_id, "entitlement": ch.entitlement, "state": ch.state} for ch in failed]
            self._emit(OnboardingProvisioningFailed(failed=failures))
            await self._revoke_children("all-or-nothing: a sibling failed to issue")
            return await self._end(O.failed, "failed: " + ", ".join(f"{ch.entitlement} {ch.state}" for ch in failed))
        await self._live(d)
        if self._offboard is not None:
            actor, reason = self._offboard
            o.state = O.offboarding
            await self._revoke_children(f"offboarded by {actor.id}: {reason}")
            self._emit(OffboardingCompleted(children=self._children_view()))
            return await self._end(O.offboarded, f"offboarded by {actor.id}: {reason}")
        await self._revoke_children("onboarding lifetime ended")
        return await self._end(O.expired, "lifetime ended")

    @staticmethod
    def _decided(d: OnboardingDecision) -> PolicyDecided:
        return PolicyDecided(
            rule=d.rule,
            policy_version=d.policy_version,
            pre_approved=d.pre_approved,
            stages=[s.model_dump(mode="json") for s in d.stages],
            stage_sources=d.stage_sources,  # which rule (template / entitlement) asked for each stage
            inputs=d.inputs,
            lifetime=d.lifetime.total_seconds(),
            entitlements=[p.entitlement for p in d.children],
            entitlement_rules={p.entitlement: p.decision.inputs.get("entitlement_rule") for p in d.children},
        )

    async def _approved(self, d: OnboardingDecision) -> bool:
        """Ask the approvers and wait; False when denied or undecided at the deadline."""
        o, now = self._o, workflow.now()
        o.state = O.awaiting_approval
        o.approval = ApprovalRound(
            stages=d.stages, requested_at=now, deadline=now + d.approval_timeout, approver_auth=d.approver_auth
        )
        self._emit(ApprovalRequested(pending=o.approval.pending(), deadline=o.approval.deadline.isoformat()))
        await self._flush()
        if not await wait_until(lambda: o.state is not O.awaiting_approval, workflow.now() + d.approval_timeout):
            self._emit(ApprovalExpired())
            return False
        return o.state is not O.denied

    async def _provision(self, d: OnboardingDecision) -> list[ChildGrant]:
        """Start one child grant per entitlement and wait for them; the children that failed."""
        o = self._o
        o.state = O.provisioning
        o.ends_at = workflow.now() + d.lifetime
        for plan in d.children:
            await self._start_child(plan, generation=1)
        await self._await_children(lambda ch: ch.state not in ("requested", "issuing"), CHILD_ACTIVE_TIMEOUT)
        return [ch for ch in o.children if ch.state != "active"]

    async def _live(self, d: OnboardingDecision) -> None:
        """Active until the lifetime ends or an offboard arrives, rotating children when due."""
        o = self._o
        assert o.ends_at is not None
        o.state = O.active
        self._emit(OnboardingActive(children=self._children_view(), ends_at=o.ends_at.isoformat()))
        await self._flush()
        plans = {p.entitlement: p for p in d.children}
        while True:
            due = self._next_renewal(plans, d.rotation_interval, d.rotation_overlap)
            await wait_until(lambda: self._offboard is not None, min(o.ends_at, due[0]) if due else o.ends_at)
            if self._offboard is not None or workflow.now() >= o.ends_at:
                return
            if due and workflow.now() >= due[0]:
                await self._rotate(plans[due[1].entitlement], due[1], d.rotation_overlap)

    # -- children ---------------------------------------------------------------------
    async def _start_child(self, plan: ChildPlan, generation: int) -> ChildGrant:
        o = self._o
        assert o.ends_at is not None
        remaining = o.ends_at - workflow.now()
        duration = min(remaining, plan.decision.duration)
        grant_id = f"grant-{o.onboarding_id.removeprefix('onboarding-')}-{plan.entitlement}-g{generation}"
        child = ChildGrant(grant_id=grant_id, entitlement=plan.entitlement, generation=generation)
        o.children.append(child)
        workload = {**o.workload.model_dump(mode="json"), "onboarding_id": o.onboarding_id, "generation": generation}
        request = AccessRequest(
            entitlement=plan.entitlement,
            duration=duration,
            reason=f"onboarding {o.workload.service} ({o.workload.environment})",
            workload=workload,
        )
        child_input = GrantInput(
            grant_id=grant_id,
            requester=o.requester,
            request=request,
            decision=plan.decision.model_copy(update={"duration": duration}),
            admin_groups=self._inp.admin_groups,
            options=self._inp.options,
        )
        await workflow.start_child_workflow(
            GrantWorkflow.run,
            trust.sign(child_input, grant_id, "start:GrantWorkflow"),
            id=grant_id,
            parent_close_policy=ParentClosePolicy.ABANDON,
        )
        self._emit(
            OnboardingChildStarted(
                grant_id=grant_id,
                entitlement=plan.entitlement,
                generation=generation,
                duration_seconds=int(duration.total_seconds()),
            )
        )
        return child

    async def _await_children(self, done: Callable[[ChildGrant], bool], timeout: timedelta | None = None) -> None:
        deadline = workflow.now() + timeout if timeout is not None else None
        await wait_until(lambda: all(done(ch) for ch in self._o.children), deadline)

    async def _revoke_children(self, reason: str) -> None:
        for ch in self._o.children:
            if ch.state not in ENDED:
                await self._signal_revoke(ch.grant_id, reason)
        await self._await_children(lambda ch: ch.state in ENDED)

    async def _signal_revoke(self, grant_id: str, reason: str) -> None:
        cmd = trust.sign(c.ParentRevoke(reason=reason), grant_id, c.PARENT_REVOKE_SIGNAL)
        await workflow.get_external_workflow_handle(grant_id).signal(c.PARENT_REVOKE_SIGNAL, cmd)

    def _next_renewal(
        self, plans: dict[str, ChildPlan], interval: timedelta | None, overlap: timedelta
    ) -> tuple[datetime, ChildGrant] | None:
        """The live child due soonest for a new credential: secret-bearing ones every `interval`,
        any child that would expire before the onboarding ends, `overlap` before its expiry."""
        o = self._o
        assert o.ends_at is not None
        best: tuple[datetime, ChildGrant] | None = None
        for ch in o.children:
            if ch.state != "active" or ch.expires_at is None:
                continue
            due: datetime | None = None
            if interval is not None and plans[ch.entitlement].secret_bearing:
                assert ch.started_at is not None  # set by child_update when the child became active
                due = ch.started_at + interval
            if ch.expires_at < o.ends_at:
                due = min(due, ch.expires_at - overlap) if due else ch.expires_at - overlap
            if due is not None and due < o.ends_at and (best is None or due < best[0]):
                best = (due, ch)
        return best

    async def _rotate(self, plan: ChildPlan, old: ChildGrant, overlap: timedelta) -> None:
        """New credential first (handed over wrapped by its own grant), an overlap, then the old one
        revoked and confirmed; the onboarding's chain records both references, never a secret."""
        o = self._o
        new = await self._start_child(plan, generation=old.generation + 1)
        await workflow.wait_condition(lambda: new.state not in ("requested", "issuing"), timeout=CHILD_ACTIVE_TIMEOUT)
        pair = {"entitlement": plan.entitlement, "old_grant": old.grant_id, "new_grant": new.grant_id}
        if new.state != "active":
            self._emit(RotationFailed(**pair, state=new.state))
            old.started_at = workflow.now()  # keep the old credential; try again next interval
            await self._flush()
            return

        def refs() -> dict[str, str | None]:  # as the children last reported them
            return {"old_reference": old.reference, "new_reference": new.reference}

        self._emit(RotationIssued(**pair, **refs(), overlap_seconds=overlap.total_seconds()))
        await self._flush()
        await workflow.sleep(overlap)
        await self._signal_revoke(old.grant_id, "rotated")
        await workflow.wait_condition(lambda: old.state in ENDED)
        o.rotations += 1
        self._emit(RotationCompleted(**pair, **refs(), old_state=old.state))
        await self._flush()

    def _children_view(self) -> list[dict[str, Any]]:
        return [
            {"grant_id": ch.grant_id, "entitlement": ch.entitlement, "state": ch.state, "reference": ch.reference}
            for ch in self._o.children
        ]

    @workflow.signal(name=c.CHILD_UPDATE_SIGNAL)
    def child_update(self, u: c.ChildUpdate) -> None:
        """A child reports where it stands; only a worker-signed report about one of our children counts."""
        if not self._gate.accept_signal(u, c.CHILD_UPDATE_SIGNAL):
            return
        for ch in self._o.children:
            if ch.grant_id == u.grant_id:
                if ch.state == "requested" and u.state == "active":
                    ch.started_at = workflow.now()
                ch.state, ch.reference, ch.expires_at = u.state, u.reference or ch.reference, u.expires_at
                if u.state in ENDED:
                    self._emit(OnboardingChildEnded(grant_id=u.grant_id, state=u.state, reference=ch.reference))

    # -- decisions ----------------------------------------------------------------------
    @workflow.query
    def status(self) -> Onboarding:
        return self._o

    @workflow.update
    def approve(self, a: ActionInput) -> Onboarding:
        o = self._o
        assert o.approval is not None
        stage, who, via = o.check_decide(a.actor, workflow.now(), a.delegations, "approve")
        o.approval.votes.append(Vote.cast((stage, who, via), a.actor, workflow.now(), a.comment))
        vote = ApprovalGranted(
            stage=stage.name,
            comment=a.comment,
            on_behalf_of=who.id if via else None,
            pending=o.approval.pending(),
            **self._gate.admit(a, "approve"),
        )
        self._emit(vote, a.actor.as_actor(ActorRole.approver))
        if o.approval.complete:
            o.state = O.provisioning
            self._emit(OnboardingApproved(approvers=[v.approver for v in o.approval.votes]))
        return o

    @approve.validator
    def _validate_approve(self, a: ActionInput) -> None:
        refuse_unless_signed(
            self._gate, a, "approve", lambda: self._o.check_decide(a.actor, workflow.now(), a.delegations, "approve")
        )

    @workflow.update
    def deny(self, a: ActionInput) -> Onboarding:
        o = self._o
        o.check_decide(a.actor, workflow.now(), a.delegations)
        o.state, o.end_reason = O.denied, f"denied by {a.actor.id}: {a.comment}"
        self._emit(
            ApprovalDenied(reason=a.comment, **self._gate.admit(a, "deny")), a.actor.as_actor(ActorRole.approver)
        )
        return o

    @deny.validator
    def _validate_deny(self, a: ActionInput) -> None:
        refuse_unless_signed(
            self._gate, a, "deny", lambda: self._o.check_decide(a.actor, workflow.now(), a.delegations)
        )

    @workflow.update
    def offboard(self, a: ActionInput) -> Onboarding:
        self._o.check_offboard(a.actor, self._inp.admin_groups)
        if self._offboard is None:
            role = ActorRole.requester if a.actor.id == self._o.requester.id else ActorRole.approver
            self._offboard = (a.actor.as_actor(role), a.comment)
            self._emit(
                OffboardingRequested(reason=a.comment, **self._gate.admit(a, "offboard")), a.actor.as_actor(role)
            )
        return self._o

    @offboard.validator
    def _validate_offboard(self, a: ActionInput) -> None:
        refuse_unless_signed(self._gate, a, "offboard", lambda: self._o.check_offboard(a.actor, self._inp.admin_groups))

    # -- evidence -------------------------------------------------------------------------
    async def _end(self, state: O, reason: str) -> Onboarding:
        o = self._o
        o.state, o.end_reason = state, reason
        self._emit(ONBOARDING_ENDED[state.value](reason=reason, children=self._children_view()))
        await self._flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._flush()
        return o

    def _emit(self, event: EventBody, actor: Actor = SYSTEM_ACTOR) -> None:
        ev = self._chain.emit(event, actor)
        self._o.events, self._o.last_hash = ev.seq, ev.hash

    async def _flush(self) -> None:
        await self._chain.flush()


__all__ = ["ServiceOnboardingWorkflow", "GrantOptions", "Refusal"]
