"""What the task-queue priority tests share: grant inputs as the API builds them, and waiting for
tasks to reach Temporal's matching. A workflow start or a scheduled activity is in the
history at once, but history hands its task to matching a moment later: a poll sent before then
gets the tasks already there, whatever their priority (seen: a break-glass task polled 3rd, 7th of
13 on a one-partition server when polled at once; first in every one of 13 tries after this wait)."""

from __future__ import annotations

import uuid

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from jitaccess.config import Settings, load_catalogue, load_users
from jitaccess.domain.grant import GrantInput
from jitaccess.domain.policy import AccessRequest, evaluate
from tests.support import eventually

WORKFLOW = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
ACTIVITY = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY


def grant_input(settings: Settings, request: AccessRequest) -> GrantInput:
    """alice's request, decided by the suite's catalogue as the API decides it."""
    alice = load_users(settings.users_file)["alice"].principal("alice")
    decision = evaluate(load_catalogue(settings.catalogue_file), alice, request)
    return GrantInput(grant_id=f"grant-{uuid.uuid4()}", requester=alice, request=request, decision=decision)


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
