"""The Temporal adapter of the service layer's workflow port (jitaccess.service.ports.WorkflowGateway).
The API's client signs every command it sends (jitaccess.service.signing)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.common import Priority, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from jitaccess.config import Settings
from jitaccess.domain import contracts as c
from jitaccess.domain.credentials import WrappedHandover
from jitaccess.domain.grant import ActionInput, ExtendInput, Grant, GrantInput, ReviewInput
from jitaccess.domain.onboarding import Onboarding, OnboardingInput
from jitaccess.domain.reconciliation import ReconcileInput, ReconciliationReport, chain_id
from jitaccess.domain.refusals import RefusalKind
from jitaccess.service.errors import NotFound, RequestRefused, RunFailed, UpdateFailed
from jitaccess.service.ports import GrantAction, OnboardingAction
from jitaccess.workflows.grant import GrantWorkflow, initial_search_attributes
from jitaccess.workflows.onboarding import ServiceOnboardingWorkflow
from jitaccess.workflows.priority import BREAK_GLASS_PRIORITY
from jitaccess.workflows.reconciliation import ReconciliationWorkflow

GRANT_UPDATES: dict[str, Any] = {
    "approve": GrantWorkflow.approve,
    "deny": GrantWorkflow.deny,
    "revoke": GrantWorkflow.revoke,
    "extend": GrantWorkflow.extend,
    "review": GrantWorkflow.review,
    "claim_credential": GrantWorkflow.claim_credential,
}
ONBOARDING_UPDATES: dict[str, Any] = {
    "approve": ServiceOnboardingWorkflow.approve,
    "deny": ServiceOnboardingWorkflow.deny,
    "offboard": ServiceOnboardingWorkflow.offboard,
}


def refusal_of(wid: str, e: WorkflowUpdateFailedError) -> Exception:
    """An update's validator refused it with a rule (`RequestRefused`), or it failed otherwise."""
    cause = e.cause
    if isinstance(cause, ApplicationError) and cause.type == c.REFUSAL:
        kind, rule = (list(cause.details) + ["conflict", "refused"])[:2]
        known = kind in RefusalKind.__members__
        return RequestRefused(RefusalKind(kind) if known else RefusalKind.conflict, rule, cause.message, grant_id=wid)
    return UpdateFailed(f"grant {wid}: {cause or e}")


class TemporalWorkflows:
    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self._eager_in_flight = 0  # grant starts now asking for their first task eagerly

    async def _query(self, wid: str, query: Any) -> Any:
        try:
            return await self.client.get_workflow_handle(wid).query(query)
        except RPCError as e:
            if e.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):  # none, or not an ID at all
                raise NotFound(f"no grant {wid[:80]}") from None
            raise

    async def _update(self, wid: str, method: Any, arg: Any, query: Any) -> Any:
        try:
            return await self.client.get_workflow_handle(wid).execute_update(method, arg)
        except WorkflowUpdateFailedError as e:
            raise refusal_of(wid, e) from None
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
        # either no such workflow, or it has ended: say which, with the final state
        state = (await self._query(wid, query)).state.value
        raise RequestRefused(
            RefusalKind.conflict,
            "wrong_state",
            f"grant {wid} has ended ({state}); no further decisions are possible",
            state=state,
            grant_id=wid,
        )

    async def _start(self, run: Any, inp: Any, wid: str, **options: Any) -> None:
        """Start a workflow, or join the running one of that ID (a retried request)."""
        await self.client.start_workflow(
            run,
            inp,
            id=wid,
            task_queue=self.settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            **options,
        )

    async def start_grant(self, inp: GrantInput) -> None:
        # Requester, GrantState, ...: the workflow keeps them current (docs/operations.md)
        attributes = initial_search_attributes(inp) if self.settings.search_attributes else None
        # Eager start (the first task comes back with the start, to this process's worker) only
        # for a few starts at once: unbounded, a burst fixed every grant's window before their
        # issues could run. Opt-in (settings: it slows a loaded worker). Without a worker here the
        # SDK asks for none (tests/integration/test_eager_start.py).
        eager = self._eager_in_flight < self.settings.eager_start_limit
        self._eager_in_flight += eager
        # only when the policy allowed it: a refused break-glass request is recorded at routine priority
        emergency = inp.decision.break_glass and inp.decision.allowed
        priority = BREAK_GLASS_PRIORITY if emergency else Priority.default
        try:
            await self._start(
                GrantWorkflow.run,
                inp,
                inp.grant_id,
                search_attributes=attributes,
                request_eager_start=eager,
                priority=priority,
            )
        except WorkflowAlreadyStartedError:  # the same request_id, and that grant has already ended
            pass
        finally:
            self._eager_in_flight -= eager

    async def grant(self, grant_id: str) -> Grant:
        g: Grant = await self._query(grant_id, GrantWorkflow.status)
        return g

    async def update_grant(
        self, grant_id: str, action: GrantAction, arg: ActionInput | ExtendInput | ReviewInput
    ) -> Grant:
        g: Grant = await self._update(grant_id, GRANT_UPDATES[action], arg, GrantWorkflow.status)
        return g

    async def claim_credential(self, grant_id: str, arg: ActionInput) -> WrappedHandover:
        h: WrappedHandover = await self._update(grant_id, GRANT_UPDATES["claim_credential"], arg, GrantWorkflow.status)
        return h

    async def onboarding_running(self, oid: str) -> bool | None:
        try:
            desc = await self.client.get_workflow_handle(oid).describe()
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        return desc.status == WorkflowExecutionStatus.RUNNING

    async def start_onboarding(self, inp: OnboardingInput) -> None:
        await self._start(ServiceOnboardingWorkflow.run, inp, inp.onboarding_id)

    async def onboarding(self, oid: str) -> Onboarding:
        o: Onboarding = await self._query(oid, ServiceOnboardingWorkflow.status)
        return o

    async def update_onboarding(self, oid: str, action: OnboardingAction, arg: ActionInput) -> Onboarding:
        o: Onboarding = await self._update(oid, ONBOARDING_UPDATES[action], arg, ServiceOnboardingWorkflow.status)
        return o

    async def reconcile(self, inp: ReconcileInput) -> ReconciliationReport:
        run_id = inp.run_id or ""
        try:
            report: ReconciliationReport = await self.client.execute_workflow(
                ReconciliationWorkflow.run,
                inp,
                id=chain_id(run_id),
                task_queue=self.settings.background_queue,
                execution_timeout=timedelta(minutes=30),
            )
        except WorkflowFailureError as e:
            raise RunFailed(f"reconciliation run {run_id} failed: {e.cause or e}") from None
        return report
