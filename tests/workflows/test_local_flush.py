"""A workflow task that dies after its local activity wrote the chain must not break the chain.

The issue's events (`credential.issued`, `fulfilment.verified`) and the revocation's
(`revocation.confirmed`) are written by a local activity (EvidenceChain.flush): inside the workflow
task, before Temporal has accepted it. Here that task fails once, right after the write, as when
its worker dies. Temporal retries it; the retry builds the events again and writes them again, and
the ledger keeps the first attempt's (insert-or-ignore). The chain verifies only if the retry built
them byte for byte: stamped with the provider's answer, not the task's time, and with any update
that reached the retry but not the first attempt decided after them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateStage
from temporalio.worker import (
    Interceptor,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from jitaccess.domain.contracts import RECORD_EVENTS
from jitaccess.domain.grant import ActionInput
from jitaccess.domain.states import GrantState
from jitaccess.workflows.grant import GrantWorkflow
from tests.conftest import running_worker
from tests.workflows.support import finish, grant_input, principal, types

# the workflow IDs whose next local flush of `fulfilment.verified` fails its task once; and what to
# do, from outside the workflow, while that first attempt still runs (say, send an update)
FAIL_ONCE: dict[str, Callable[[], None]] = {}
FAILED: list[str] = []


class _FailAfterLocalFlush(WorkflowOutboundInterceptor):
    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
        handle = super().start_local_activity(input)
        wid = workflow.info().workflow_id
        events = input.args[0].events if input.activity == RECORD_EVENTS else []
        if wid not in FAIL_ONCE or "fulfilment.verified" not in [e.type for e in events]:
            return handle
        meanwhile = FAIL_ONCE.pop(wid)

        async def written_then_fail() -> Any:
            await handle  # the first attempt's events are in the ledger now
            meanwhile()
            with workflow.unsafe.sandbox_unrestricted():
                # blocking on purpose: the first attempt still runs, so what `meanwhile` sent reaches only the retry
                time.sleep(0.5)  # noqa: ASYNC251
            FAILED.append(wid)
            raise RuntimeError("injected: the workflow task dies after its local flush wrote")

        return asyncio.ensure_future(written_then_fail())  # type: ignore[return-value]


class _Inbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_FailAfterLocalFlush(outbound))


class FailAfterLocalFlush(Interceptor):
    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        return _Inbound


async def failed_tasks(handle) -> int:
    history = await handle.fetch_history()
    return sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)


async def test_a_task_retried_after_its_local_flush_rebuilds_the_same_events(settings):
    inp = grant_input(settings, "alice", "secrets-readonly", timedelta(seconds=3))
    FAIL_ONCE[inp.grant_id] = lambda: None
    async with running_worker(settings, interceptors=(FailAfterLocalFlush(),)) as (client, ledger):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        result = await finish(handle)
        assert FAILED.count(inp.grant_id) == 1 and await failed_tasks(handle) == 1
        assert result.state is GrantState.revoked
        chain = ledger.verify(inp.grant_id)
        assert chain.ok, chain
        assert types(ledger.events(inp.grant_id))[-2:] == ["grant.expired", "revocation.confirmed"]


async def test_an_update_that_reaches_only_the_retry_is_decided_after_the_issue(settings):
    """alice revokes while the first attempt runs: the retry carries her update and runs its handler
    first. It waits for the issue's events, which the first attempt already wrote where they are."""
    inp = grant_input(settings, "alice", "secrets-readonly", timedelta(minutes=5))
    alice = principal(settings, "alice")
    loop = asyncio.get_running_loop()
    sent: list[asyncio.Task] = []
    async with running_worker(settings, interceptors=(FailAfterLocalFlush(),)) as (client, ledger):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)

        def revoke() -> None:  # from the workflow's thread: the update goes out on the test's loop
            update = handle.start_update(
                GrantWorkflow.revoke,
                ActionInput(actor=alice, comment="done already"),
                wait_for_stage=WorkflowUpdateStage.COMPLETED,
            )
            loop.call_soon_threadsafe(lambda: sent.append(asyncio.ensure_future(update)))

        FAIL_ONCE[inp.grant_id] = revoke
        result = await finish(handle)
        assert FAILED.count(inp.grant_id) == 1 and await failed_tasks(handle) == 1
        decided = await (await sent[0]).result()
        assert decided.state is GrantState.active  # decided once the issue's answer was in: revoking next
        assert result.state is GrantState.revoked and result.end_reason is not None
        chain = ledger.verify(inp.grant_id)
        assert chain.ok, chain
        kinds = types(ledger.events(inp.grant_id))
        assert kinds.index("fulfilment.verified") < kinds.index("grant.revoke_requested"), kinds
