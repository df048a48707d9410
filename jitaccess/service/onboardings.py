"""Use cases: onboard a service (a non-human identity) from a template, read it, decide on it,
offboard it. Every run of an onboarding ID keeps its own ID, and so its own evidence chain."""

from __future__ import annotations

from dataclasses import dataclass

from jitaccess.domain.access import may_read, onboarding_facts
from jitaccess.domain.catalogue import Catalogue
from jitaccess.domain.contracts import GrantOptions
from jitaccess.domain.grant import ActionInput
from jitaccess.domain.onboarding import (
    Onboarding,
    OnboardingDecision,
    OnboardingInput,
    OnboardingRequest,
    evaluate_onboarding,
    onboarding_id,
)
from jitaccess.domain.principals import Principal
from jitaccess.domain.refusals import RefusalKind
from jitaccess.service.authority import Authority
from jitaccess.service.errors import RequestRefused, hidden
from jitaccess.service.ports import Clock, Directory, WorkflowGateway

MAX_RUNS = 99


@dataclass(frozen=True)
class Onboardings:
    catalogue: Catalogue
    workflows: WorkflowGateway
    authority: Authority
    clock: Clock
    admin_groups: tuple[str, ...]
    options: GrantOptions
    directory: Directory | None = None  # resolves a service principal's declared owner

    async def onboard(self, me: Principal, req: OnboardingRequest) -> Onboarding:
        """Start the onboarding, or return the one already going for this service and environment
        (a retried request) when the caller may read it. A re-onboarding after an end gets `-r2`, ..."""
        d = self._decide(me, req)
        oid, going = await self.current_run(onboarding_id(req.workload))
        if going:
            o = await self.workflows.onboarding(oid)
            if not await self._may_read(me, o):
                raise RequestRefused(
                    RefusalKind.conflict,
                    "already_onboarding",
                    f"{req.workload.service} ({req.workload.environment}) is being onboarded by someone else; "
                    "ask its owning team",
                )
            return o
        inp = OnboardingInput(
            onboarding_id=oid,
            requester=me,
            request=req,
            decision=d,
            admin_groups=self.admin_groups,
            options=self.options,
        )
        await self.workflows.start_onboarding(inp)
        return await self.workflows.onboarding(oid)

    def _decide(self, me: Principal, req: OnboardingRequest) -> OnboardingDecision:
        """Malformed: invalid; refused by a rule: forbidden, naming the (first) rule."""
        owner = self.directory(me.owner) if me.owner and self.directory is not None else None
        d = evaluate_onboarding(self.catalogue, me, req, self.clock.now(), owner)
        if d.allowed:
            return d
        kind, rule = (
            (RefusalKind.invalid, "invalid_request") if d.is_input_error else (RefusalKind.forbidden, d.reason_codes[0])
        )
        details: dict[str, object] = {"reason_codes": list(d.reason_codes), "rule": d.rule}
        raise RequestRefused.with_details(kind, rule, "; ".join(d.messages), details)

    async def current_run(self, base: str) -> tuple[str, bool]:
        """The ID of the run going now (True), or the next free ID (False)."""
        for n in range(1, MAX_RUNS + 1):
            oid = base if n == 1 else f"{base}-r{n}"
            state = await self.workflows.onboarding_running(oid)
            if state is None:
                return oid, False
            if state:
                return oid, True
        raise RequestRefused(
            RefusalKind.conflict, "too_many_runs", f"{base} has been onboarded {MAX_RUNS} times; use a new service name"
        )

    async def _may_read(self, me: Principal, o: Onboarding) -> bool:
        return may_read(await self.authority.viewer(me), onboarding_facts(o))

    async def get(self, me: Principal, oid: str) -> Onboarding:
        o = await self.workflows.onboarding(oid)
        if not await self._may_read(me, o):
            raise hidden(oid)  # as for an unknown onboarding
        return o

    async def approve(self, me: Principal, oid: str, comment: str = "") -> Onboarding:
        return await self.workflows.update_onboarding(oid, "approve", await self.authority.decision_by(me, comment))

    async def deny(self, me: Principal, oid: str, reason: str) -> Onboarding:
        return await self.workflows.update_onboarding(oid, "deny", await self.authority.decision_by(me, reason))

    async def offboard(self, me: Principal, oid: str, reason: str) -> Onboarding:
        """Offboards the run going now when there is one (an ended one answers that it has ended)."""
        going, is_going = await self.current_run(oid)
        target = going if is_going else oid
        return await self.workflows.update_onboarding(target, "offboard", ActionInput(actor=me, comment=reason))
