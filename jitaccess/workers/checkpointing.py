"""The checkpoint Schedule: every `checkpoint_interval`, one CheckpointWorkflow on the grant task
queue (created when a worker or `dev up` starts with a checkpoint key; idempotent, like the
reconciliation schedule in jitaccess.workers.common)."""

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
)

from jitaccess.config import Settings
from jitaccess.workflows.checkpoint import CheckpointWorkflow

CHECKPOINT_SCHEDULE_ID = "jitaccess-checkpoint"


def checkpoint_schedule(settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(CheckpointWorkflow.run, id="checkpoint", task_queue=settings.task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=settings.checkpoint_interval)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_checkpoint_schedule(
    client: Client, settings: Settings, *, schedule_id: str = CHECKPOINT_SCHEDULE_ID
) -> ScheduleHandle | None:
    """Create the schedule (or bring its interval and task queue up to date); None, and nothing
    created, when this process has no checkpoint key (JITACCESS_CHECKPOINT_KEY_FILE)."""
    if settings.checkpoint_key_file is None:
        return None
    wanted = checkpoint_schedule(settings)
    try:
        return await client.create_schedule(schedule_id, wanted)
    except ScheduleAlreadyRunningError:
        handle = client.get_schedule_handle(schedule_id)

    def _changed(inp) -> ScheduleUpdate | None:
        cur = inp.description.schedule
        action = cur.action
        same = (
            isinstance(action, ScheduleActionStartWorkflow)
            and action.task_queue == settings.task_queue
            and [i.every for i in cur.spec.intervals] == [settings.checkpoint_interval]
        )
        if same:
            return None
        wanted.state = cur.state
        return ScheduleUpdate(schedule=wanted)

    await handle.update(_changed)
    return handle
