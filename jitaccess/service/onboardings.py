"""Use case: onboard a service (a non-human identity) from a template."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from jitaccess.domain.catalogue import Catalogue
from jitaccess.domain.contracts import GrantOptions
from jitaccess.domain.onboarding import (
    Onboarding,
    OnboardingInput,
    OnboardingRequest,
    evaluate_onboarding,
    onboarding_id,
)
from jitaccess.domain.principals import Principal
from jitaccess.domain.refusals import RefusalKind
from jitaccess.service.grants import RequestRefused
from jitaccess.service.ports import Clock

MAX_RUNS = 99


class OnboardingRuns(Protocol):
    """The workflow side: which run of an onboarding ID is going, and starting a new one."""

    async def running(self, oid: str) -> bool | None:
        """True: a run with this ID is going; False: it ended; None: no run ever had this ID."""

    async def start(self, inp: OnboardingInput) -> None: ...

    async def status(self, oid: str) -> Onboarding: ...


@dataclass(frozen=True)
class Onboardings:
    catalogue: Catalogue
    runs: OnboardingRuns
    clock: Clock
    admin_groups: tuple[str, ...]
    options: GrantOptions
    owner_of: Callable[[Principal], Principal | None] = lambda _me: None  # a service's declared owner

    async def onboard(
        self, me: Principal, req: OnboardingRequest, may_join: Callable[[Onboarding], bool]
    ) -> Onboarding:
        """Start the onboarding, or return the one already going for this service and environment
        (a retried request) when `may_join` says the caller may see it. Every run keeps its own ID,
        and so its own evidence chain: a re-onboarding after an end gets `-r2`, `-r3`, ..."""
        d = evaluate_onboarding(self.catalogue, me, req, self.clock.now(), self.owner_of(me))
        if not d.allowed:  # malformed: 422; refused by a rule: 403 naming the (first) rule
            kind, rule = (
                (RefusalKind.invalid, "invalid_request")
                if d.is_input_error
                else (RefusalKind.forbidden, d.reason_codes[0])
            )
            details: dict[str, object] = {"reason_codes": list(d.reason_codes), "rule": d.rule}
            raise RequestRefused.with_details(kind, rule, "; ".join(d.messages), details)
        oid, going = await self.current_run(onboarding_id(req.workload))
        if going:
            o = await self.runs.status(oid)
            if not may_join(o):
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
        await self.runs.start(inp)
        return await self.runs.status(oid)

    async def current_run(self, base: str) -> tuple[str, bool]:
        """The ID of the run going now (True), or the next free ID (False)."""
        for n in range(1, MAX_RUNS + 1):
            oid = base if n == 1 else f"{base}-r{n}"
            state = await self.runs.running(oid)
            if state is None:
                return oid, False
            if state:
                return oid, True
        raise RequestRefused(
            RefusalKind.conflict, "too_many_runs", f"{base} has been onboarded {MAX_RUNS} times; use a new service name"
        )
