"""Waiting for tasks to reach Temporal's matching. A workflow start or a scheduled activity is in the
history at once, but history hands its task to matching a moment later: a poll sent before then
gets the tasks already there, whatever their priority (seen: a break-glass task polled 3rd, 7th of
13 on a one-partition server when polled at once; first in every one of 13 tries after this wait)."""

from __future__ import annotations

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from tests.support import eventually

WORKFLOW = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
ACTIVITY = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY


async def backlog(client: Client, queue: str, kind: TaskQueueType.ValueType) -> int:
    """Matching's count of tasks waiting on `queue` (its stats are cached for up to ~5 s)."""
    request = DescribeTaskQueueRequest(
        namespace=client.namespace, task_queue=TaskQueue(name=queue), task_queue_type=kind, report_stats=True
    )
    return (await client.workflow_service.describe_task_queue(request)).stats.approximate_backlog_count


async def wait_queued(client: Client, queue: str, kind: TaskQueueType.ValueType, count: int) -> None:
    """Until `count` tasks wait in matching on `queue`."""

    async def there() -> bool:
        return await backlog(client, queue, kind) >= count

    await eventually(there, timeout=30, interval=0.2, what=f"{count} tasks waiting in matching on {queue}")
