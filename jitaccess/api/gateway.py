"""Temporal adapters for the service layer's ports (jitaccess.service)."""

from __future__ import annotations

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from jitaccess.config import Settings
from jitaccess.domain.grant import Grant, GrantInput
from jitaccess.domain.onboarding import Onboarding, OnboardingInput
from jitaccess.workflows.grant import GrantWorkflow, initial_search_attributes
from jitaccess.workflows.onboarding import ServiceOnboardingWorkflow


class TemporalGrantStarter:
    """Starts grant workflows with the API's client (which signs every command it sends)."""

    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    async def start(self, inp: GrantInput) -> None:
        try:
            await self.client.start_workflow(
                GrantWorkflow.run,
                inp,
                id=inp.grant_id,
                task_queue=self.settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                # Requester, GrantState, ...: the workflow keeps them current (docs/operations.md)
                search_attributes=initial_search_attributes(inp) if self.settings.search_attributes else None,
                # no request_eager_start: measured worse under a burst (bench/README.md, issue 15)
            )
        except WorkflowAlreadyStartedError:  # the same request_id, and that grant has already ended
            pass

    async def status(self, grant_id: str) -> Grant:
        g: Grant = await self.client.get_workflow_handle(grant_id).query(GrantWorkflow.status)
        return g


class TemporalOnboardingRuns:
    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    async def running(self, oid: str) -> bool | None:
        try:
            desc = await self.client.get_workflow_handle(oid).describe()
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        return desc.status == WorkflowExecutionStatus.RUNNING

    async def start(self, inp: OnboardingInput) -> None:
        await self.client.start_workflow(
            ServiceOnboardingWorkflow.run,
            inp,
            id=inp.onboarding_id,
            task_queue=self.settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )

    async def status(self, oid: str) -> Onboarding:
        o: Onboarding = await self.client.get_workflow_handle(oid).query(ServiceOnboardingWorkflow.status)
        return o
