"""A break-glass grant is someone's incident: behind a backlog of routine requests, its first task
leaves Temporal's matching first (task-queue priority, api/gateway.py). Checked on a real server, by
polling the task queue as a worker would. Priority holds within each task-queue partition (a dev
server has 4, a poll lands on any): this server has one, so the order is exact."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import PollWorkflowTaskQueueRequest

from jitaccess.api.gateway import TemporalWorkflows
from jitaccess.bootstrap import connect
from jitaccess.domain.grant import GrantInput
from jitaccess.domain.policy import AccessRequest
from tests.integration.priority_support import WORKFLOW, grant_input, wait_queued

ROUTINE_BACKLOG = 12


async def test_a_break_glass_grant_leaves_a_backlog_of_routine_ones_first(settings, one_partition_temporal):
    # a queue no worker polls: every start waits in matching, as behind a burst
    settings = settings.model_copy(
        update={
            "temporal_address": one_partition_temporal.address,
            "task_queue": f"priority-{uuid.uuid4()}",
            "eager_start_limit": 0,
        }
    )
    client = await connect(settings)
    workflows = TemporalWorkflows(client, settings)
    duration = timedelta(minutes=5)
    routine = [
        grant_input(settings, AccessRequest(entitlement="secrets-readonly", duration=duration, reason="debug"))
        for _ in range(ROUTINE_BACKLOG)
    ]
    emergency = grant_input(
        settings,
        AccessRequest(
            entitlement="secrets-admin", duration=duration, reason="prod down", break_glass=True, incident="INC-7"
        ),
    )
    refused = grant_input(  # asked as break-glass where the policy does not allow it: routine
        settings,
        AccessRequest(entitlement="secrets-readonly", duration=duration, reason="x", break_glass=True),
    )
    assert emergency.decision.allowed and not refused.decision.allowed
    started = [*routine, refused, emergency]
    try:
        for inp in started:
            await workflows.start_grant(inp)

        async def priority_key(inp: GrantInput) -> int:
            info = (await client.get_workflow_handle(inp.grant_id).describe()).raw_description.workflow_execution_info
            return info.priority.priority_key

        # 0: none set, so the server's default (3)
        assert [await priority_key(inp) for inp in (routine[0], refused, emergency)] == [0, 0, 1]

        await wait_queued(client, settings.task_queue, WORKFLOW, len(started))
        poll = PollWorkflowTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=settings.task_queue), identity="priority-test"
        )
        first = await client.workflow_service.poll_workflow_task_queue(poll, timeout=timedelta(seconds=10))
        assert first.workflow_execution.workflow_id == emergency.grant_id, "started last, polled first"
    finally:
        for inp in started:  # nothing ran: no credential was issued
            await client.get_workflow_handle(inp.grant_id).terminate(reason="test over")
