"""A workflow task that dies after its local activity wrote the chain must not break the chain.

A grant's last write (`grant.expired`, `revocation.confirmed`) goes by a local activity
(EvidenceChain.flush): inside the workflow task, before Temporal has accepted it. Here that task
fails once, right after the write, as when its worker dies. Temporal retries it; the retry builds
the events again and writes them again, and the ledger keeps the first attempt's
(insert-or-ignore). The chain verifies only if the retry built them byte for byte: stamped with the
provider's answer, not the task's time. And a message that reaches the grant while it waits for a
provider's answer is decided after that answer's events, so that a retry that carries it builds
those events where the first attempt did.
"""

from __future__ import annotations

import asyncio
import threading
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
from jitaccess.providers.base import ProviderRegistry
from jitaccess.providers.vault_token import VaultTokenProvider
from jitaccess.workflows.grant import GrantWorkflow
from tests.conftest import running_worker
from tests.support import Delegating
from tests.workflows.support import finish, grant_input, principal, types, vault_provider

ACCEPTED = WorkflowUpdateStage.ACCEPTED

# the workflow IDs whose local flush of `revocation.confirmed` fails its task once
FAIL_ONCE: set[str] = set()
FAILED: list[str] = []


class _FailAfterLocalFlush(WorkflowOutboundInterceptor):
    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
        handle = super().start_local_activity(input)
        wid = workflow.info().workflow_id
        events = input.args[0].events if input.activity == RECORD_EVENTS else []
        if wid not in FAIL_ONCE or "revocation.confirmed" not in [e.type for e in events]:
            return handle
        FAIL_ONCE.discard(wid)

        async def written_then_fail() -> Any:
            await handle  # the first attempt's events are in the ledger now
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
    FAIL_ONCE.add(inp.grant_id)
    async with running_worker(settings, interceptors=(FailAfterLocalFlush(),)) as (client, ledger):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        result = await finish(handle)
        assert FAILED.count(inp.grant_id) == 1 and await failed_tasks(handle) == 1
        assert result.state is GrantState.revoked
        chain = ledger.verify(inp.grant_id)
        assert chain.ok, chain
        stored = ledger.events(inp.grant_id)
        assert types(stored)[-2:] == ["grant.expired", "revocation.confirmed"]
        # the chain the workflow went on from (and reports) is the one the first attempt stored:
        # an event after it (a notification's) would otherwise link to a hash the ledger never saw
        assert (result.events, result.last_hash) == (stored[-1].seq, stored[-1].hash)


class IssueHeld(Delegating):
    """issue waits until the test lets it go: the grant waits for the provider's answer meanwhile."""

    def __init__(self, real: VaultTokenProvider) -> None:
        super().__init__(real)
        self.started, self.go = threading.Event(), threading.Event()

    def issue(self, grant, **kw):
        self.started.set()
        self.go.wait(30)
        return self.real.issue(grant, **kw)


async def test_an_update_that_arrives_while_the_issue_runs_is_decided_after_its_answer(settings):
    """alice revokes while her credential is being issued: her update is accepted at once, decided
    once the issue's answer is in (the grant active, the revocation next), and its event follows the
    issue's in the chain."""
    held = IssueHeld(vault_provider(settings))
    inp = grant_input(settings, "alice", "secrets-readonly", timedelta(minutes=5))
    alice = principal(settings, "alice")
    providers = ProviderRegistry({"vault_token": held})
    async with running_worker(settings, providers=providers) as (client, ledger):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        assert await asyncio.to_thread(held.started.wait, 20)
        update = await handle.start_update(
            GrantWorkflow.revoke, ActionInput(actor=alice, comment="done already"), wait_for_stage=ACCEPTED
        )
        held.go.set()
        decided = await update.result()
        result = await finish(handle)
    assert decided.state is GrantState.active  # decided once the issue's answer was in: revoking next
    assert result.state is GrantState.revoked
    kinds = types(ledger.events(inp.grant_id))
    assert kinds.index("fulfilment.verified") < kinds.index("grant.revoke_requested"), kinds
    assert ledger.verify(inp.grant_id).ok
