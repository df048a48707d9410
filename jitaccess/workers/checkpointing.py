"""The checkpoint Schedule: every `checkpoint_interval`, one CheckpointWorkflow on the background
task queue (`settings.background_queue`: the grant task queue unless one is set), created when a
worker or `dev up` starts with a checkpoint key; idempotent, like the reconciliation schedule in
jitaccess.workers.schedules."""

from __future__ import annotations

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

from jitaccess.config import Settings
from jitaccess.workers.schedules import ensure_schedule
from jitaccess.workflows.checkpoint import CheckpointWorkflow

CHECKPOINT_SCHEDULE_ID = "jitaccess-checkpoint"


def checkpoint_schedule(settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            CheckpointWorkflow.run, id="checkpoint", task_queue=settings.background_queue
        ),
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
    return await ensure_schedule(client, schedule_id, checkpoint_schedule(settings))
