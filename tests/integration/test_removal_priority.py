"""Taking access away never waits behind giving it (jitaccess/workflows/priority.py). With every
activity slot taken and issues queued behind it, as when a burst of requests meets a slow provider, a
grant's revoke at its expiry is the next activity the worker gets. Without the priority it came after
every issue queued before it: the revoke, its read-back and its evidence waited for the whole backlog.

On a real Temporal server with one task-queue partition (tests/integration/conftest.py), so the order
is exact; the grant activities are replaced by name (tests/workflows/mocked_support.py), issues held
at a gate, on a worker with one activity slot."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from jitaccess.api.gateway import TemporalWorkflows
from jitaccess.bootstrap import connect
from jitaccess.domain import contracts as c
from jitaccess.domain.credentials import IssueResult
from jitaccess.domain.grant import GrantInput, IssueRequest
from jitaccess.domain.policy import AccessRequest
from jitaccess.workers.factory import SANDBOXED_RUNNER
from jitaccess.workflows.grant import GrantWorkflow
from tests.integration.priority_support import ACTIVITY, grant_input, wait_queued
from tests.support import eventually
from tests.workflows.mocked_support import FakeActivities, install_trust

BACKLOG = 6
EXPIRING_AFTER = timedelta(seconds=5)  # long enough for the backlog to be queued before it expires


def readonly_grant(settings, duration: timedelta) -> GrantInput:
    return grant_input(settings, AccessRequest(entitlement="secrets-readonly", duration=duration, reason="removal"))


@dataclass
class GatedIssues(FakeActivities):
    """Issues wait at `gate`, except those of the grants in `let_through`; `holding` is set once an
    issue waits there (it holds the worker's one activity slot)."""

    let_through: set[str] = field(default_factory=set)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    holding: asyncio.Event = field(default_factory=asyncio.Event)

    @activity.defn(name=c.ISSUE_CREDENTIAL)
    async def issue_credential(self, req: IssueRequest) -> IssueResult:
        if req.grant.grant_id not in self.let_through:
            self.holding.set()
            await self.gate.wait()
        return await super().issue_credential(req)

    def started(self) -> list[tuple[str, str]]:
        """(activity, grant id) in the order the worker got them (one slot: one at a time)."""
        return [(name, _grant_of(arg)) for name, arg in self.calls]


def _grant_of(arg: Any) -> str:
    if isinstance(arg, IssueRequest):
        return arg.grant.grant_id
    if isinstance(arg, c.EventBatch):
        return arg.events[0].grant_id
    return str(arg.grant_id)


async def scheduled(client: Client, grant_id: str, activity_type: str) -> list[Any]:
    """The grant's ActivityTaskScheduled events for `activity_type`, from its history."""
    history = await client.get_workflow_handle(grant_id).fetch_history()
    return [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == activity_type
    ]


async def test_a_revoke_at_expiry_leaves_a_backlog_of_issues_first(settings, one_partition_temporal, command_keys):
    settings = settings.model_copy(
        update={"temporal_address": one_partition_temporal.address, "task_queue": f"removal-{uuid.uuid4()}"}
    )
    client = await connect(settings)
    workflows = TemporalWorkflows(client, settings)
    install_trust(command_keys)
    expiring = readonly_grant(settings, EXPIRING_AFTER)
    holder, *backlog = [readonly_grant(settings, timedelta(minutes=5)) for _ in range(BACKLOG + 1)]
    fakes = GatedIssues(let_through={expiring.grant_id})
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[GrantWorkflow],
        activities=fakes.all(),
        workflow_runner=SANDBOXED_RUNNER,
        max_concurrent_activities=1,
    )
    started = [expiring, holder, *backlog]
    async with worker:
        try:
            await workflows.start_grant(expiring)
            await eventually(lambda: "fulfilment.verified" in fakes.types(expiring.grant_id), what="active")
            await workflows.start_grant(holder)
            await asyncio.wait_for(fakes.holding.wait(), timeout=20)  # the one slot is taken
            for inp in backlog:
                await workflows.start_grant(inp)
            for inp in backlog:
                await eventually(lambda g=inp.grant_id: scheduled(client, g, c.ISSUE_CREDENTIAL), what="issue queued")
            revokes = await eventually(
                lambda: scheduled(client, expiring.grant_id, c.REVOKE_CREDENTIAL), timeout=30, what="revoke queued"
            )
            issues = [(await scheduled(client, inp.grant_id, c.ISSUE_CREDENTIAL))[0] for inp in backlog]
            assert all(e.event_time.ToDatetime() < revokes[0].event_time.ToDatetime() for e in issues), (
                "every issue of the backlog was queued before the revoke"
            )

            await wait_queued(client, settings.task_queue, ACTIVITY, BACKLOG + 1)  # the issues and the revoke
            fakes.gate.set()
            await eventually(
                lambda: all((c.ISSUE_CREDENTIAL, g.grant_id) in fakes.started() for g in backlog), what="backlog issued"
            )
            order = fakes.started()
            after_holder = order[order.index((c.ISSUE_CREDENTIAL, holder.grant_id)) + 1 :]
            assert after_holder[0] == (c.REVOKE_CREDENTIAL, expiring.grant_id), after_holder
            attrs = revokes[0].activity_task_scheduled_event_attributes
            assert attrs.priority.priority_key == 1
            issue_attrs = (await scheduled(client, holder.grant_id, c.ISSUE_CREDENTIAL))[0]
            assert issue_attrs.activity_task_scheduled_event_attributes.priority.priority_key == 0  # the default
        finally:
            fakes.gate.set()
            for inp in started:
                with contextlib.suppress(RPCError):  # the expiring grant has ended by itself
                    await client.get_workflow_handle(inp.grant_id).terminate(reason="test over")
