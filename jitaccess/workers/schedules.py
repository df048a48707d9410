"""The Temporal Schedules the workers keep: reconciliation every `reconcile_interval` (the
checkpoint schedule is in jitaccess.workers.checkpointing)."""

from __future__ import annotations

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from jitaccess.config import Settings
from jitaccess.domain.reconciliation import CHAIN_PREFIX, ReconcileInput
from jitaccess.workflows.reconciliation import ReconciliationWorkflow

RECONCILIATION_SCHEDULE_ID = "jitaccess-reconciliation"


def reconciliation_schedule(settings: Settings) -> Schedule:
    """Every `reconcile_interval`, one ReconciliationWorkflow (workflow ID reconciliation-<time>) on
    the background task queue (`settings.background_queue`); a run still going when the next is due
    makes that one skip."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ReconciliationWorkflow.run,
            ReconcileInput(dry_run=False),
            id=CHAIN_PREFIX.rstrip("-"),
            task_queue=settings.background_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=settings.reconcile_interval)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_schedule(client: Client, schedule_id: str, wanted: Schedule) -> ScheduleHandle:
    """Create a schedule, or leave it as it is when it exists with the same workflow, task queue
    and intervals (idempotent: call it at every worker / dev-up start). An existing schedule that
    differs is updated in place, its pause state kept."""
    try:
        return await client.create_schedule(schedule_id, wanted)
    except ScheduleAlreadyRunningError:
        handle = client.get_schedule_handle(schedule_id)
    want = wanted.action
    assert isinstance(want, ScheduleActionStartWorkflow)

    def _changed(inp: ScheduleUpdateInput) -> ScheduleUpdate | None:
        cur = inp.description.schedule
        action = cur.action
        same = (
            isinstance(action, ScheduleActionStartWorkflow)
            and action.task_queue == want.task_queue
            and action.workflow == want.workflow
            and [i.every for i in cur.spec.intervals] == [i.every for i in wanted.spec.intervals]
        )
        if same:
            return None
        wanted.state = cur.state
        return ScheduleUpdate(schedule=wanted)

    await handle.update(_changed)
    return handle


async def ensure_reconciliation_schedule(
    client: Client, settings: Settings, *, schedule_id: str = RECONCILIATION_SCHEDULE_ID
) -> ScheduleHandle:
    return await ensure_schedule(client, schedule_id, reconciliation_schedule(settings))
