"""CheckpointWorkflow: one signed checkpoint over the ledger's log (Schedule
`jitaccess-checkpoint`, every JITACCESS_CHECKPOINT_INTERVAL; see jitaccess.workers.checkpointing)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

MAKE_CHECKPOINT = "make_checkpoint"  # jitaccess.activities.checkpoint


@workflow.defn
class CheckpointWorkflow:
    @workflow.run
    async def run(self) -> dict[str, Any]:
        result: dict[str, Any] = await workflow.execute_activity(
            MAKE_CHECKPOINT,
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RetryPolicy(maximum_attempts=5, maximum_interval=timedelta(seconds=30)),
        )
        return result
