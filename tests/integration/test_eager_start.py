"""Eager workflow start in both layouts: the API beside a worker (`dev up`) and the API alone (the
production topology), where the SDK must send the first task through the task queue instead."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType

from jitaccess.api.gateway import TemporalWorkflows
from jitaccess.bootstrap import connect
from jitaccess.config import load_catalogue, load_users
from jitaccess.domain.grant import Grant, GrantInput
from jitaccess.domain.policy import AccessRequest, evaluate
from jitaccess.domain.states import GrantState
from tests.conftest import running_worker


def auto_approved(settings) -> GrantInput:
    cat = load_catalogue(settings.catalogue_file)
    alice = load_users(settings.users_file)["alice"].principal("alice")
    req = AccessRequest(entitlement="secrets-readonly", duration=timedelta(seconds=2), reason="debug")
    return GrantInput(
        grant_id=f"grant-{uuid.uuid4()}", requester=alice, request=req, decision=evaluate(cat, alice, req)
    )


@pytest.mark.parametrize("api_hosts_worker", [True, False], ids=["api-beside-worker", "api-alone"])
async def test_an_eager_start_runs_the_grant_to_revocation_without_a_lost_task(settings, api_hosts_worker):
    settings = settings.model_copy(update={"eager_start_limit": 8})
    inp = auto_approved(settings)
    async with running_worker(settings) as (worker_client, ledger):
        api_client = worker_client if api_hosts_worker else await connect(settings)
        await TemporalWorkflows(api_client, settings).start_grant(inp)
        handle = worker_client.get_workflow_handle(inp.grant_id, result_type=Grant)
        result: Grant = await handle.result()
        assert result.state is GrantState.revoked
        assert ledger.verify(inp.grant_id).ok
        history = await handle.fetch_history()
    first_task = next(e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED)
    # a polled task records its poller's build id; an eager one came back with the start, unpolled
    assert first_task.workflow_task_started_event_attributes.HasField("worker_version") is not api_hosts_worker
    # a first task handed to a process with no worker would only come back after its timeout
    kinds = [ev.event_type for ev in history.events]
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT not in kinds
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in kinds
