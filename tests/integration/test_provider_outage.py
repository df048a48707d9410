"""Failure behaviour with a real outage: the worker reaches OpenBao through a
proxy that the test cuts and restores (issue 3, 'Failure behaviour')."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from jitaccess.domain.contracts import GrantOptions
from jitaccess.domain.grant import ActionInput
from jitaccess.domain.states import GrantState
from jitaccess.workflows.grant import GrantWorkflow
from tests.conftest import running_worker
from tests.support import eventually
from tests.tcp_proxy import TcpProxy
from tests.workflows.support import grant_input, principal, token_is_dead, types, vault_provider, vault_root, wait_state

FAST = GrantOptions(
    issue_timeout=timedelta(seconds=4), revocation_backoff_cap=timedelta(seconds=1), revocation_failing_after=2
)


@pytest.fixture
def proxy(openbao):
    host, port = openbao.address.removeprefix("http://").split(":")
    p = TcpProxy(host, int(port))
    yield p
    p.close()


@pytest.fixture
def via_proxy(settings, proxy):
    """Worker settings whose Vault address goes through the proxy."""
    return settings.model_copy(update={"vault_addr": f"http://{proxy.address}"})


@pytest.mark.parametrize("end", ["expiry", "early_revoke"])
async def test_provider_down_at_end_is_revocation_failing_then_confirmed_when_back(settings, via_proxy, proxy, end):
    duration = timedelta(seconds=3) if end == "expiry" else timedelta(minutes=5)
    inp = grant_input(settings, "alice", "secrets-readonly", duration, options=FAST)
    async with running_worker(via_proxy) as (client, ledger):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        g = await wait_state(handle, GrantState.active)
        proxy.cut()
        if end == "early_revoke":
            await handle.execute_update(
                GrantWorkflow.revoke, ActionInput(actor=principal(settings, "alice"), comment="done")
            )
        await wait_state(handle, GrantState.revocation_failing, timeout=30)
        # at expiry the token's own TTL (the backstop) has ended it even though the pipeline cannot reach
        # Vault; on an early revoke it is still live, and nothing pretends otherwise
        assert token_is_dead(settings, g.credential.reference) is (end == "expiry")

        # the state is visible to a query as soon as the workflow task commits; its events reach the
        # ledger by the activity that task scheduled, a moment later
        def stored() -> list[str]:
            seen = types(ledger.events(inp.grant_id))
            assert "revocation.failing" in seen, seen
            return seen

        failing = await eventually(stored, 10, "revocation.failing stored")
        assert failing.count("revocation.retrying") >= 2 and "revocation.failing" in failing
        assert "revocation.confirmed" not in failing
        proxy.restore()
        result = await asyncio.wait_for(handle.result(), 30)
    assert result.state is GrantState.revoked
    assert token_is_dead(settings, g.credential.reference)
    evs = ledger.events(inp.grant_id)
    assert types(evs)[-1] == "revocation.confirmed" and evs[-1].data["attempts"] >= 3
    assert evs[-1].data["already_gone"] is (end == "expiry")
    assert ledger.verify(inp.grant_id).ok


async def test_provider_down_at_issue_ends_issue_failed_with_nothing_left(settings, via_proxy, proxy):
    inp = grant_input(settings, "alice", "secrets-readonly", timedelta(minutes=5), options=FAST)
    proxy.cut()
    async with running_worker(via_proxy) as (client, ledger):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        await asyncio.sleep(6)  # past the 4 s issue timeout; clean-up now retries against the dead provider
        assert (await handle.query(GrantWorkflow.status)).state is GrantState.issuing
        proxy.restore()
        result = await asyncio.wait_for(handle.result(), 30)
    assert result.state is GrantState.issue_failed
    evs = types(ledger.events(inp.grant_id))
    assert evs[-2:] == ["credential.issue_failed", "credential.cleanup_confirmed"]
    assert "credential.issued" not in evs
    assert vault_provider(settings).list_managed(inp.grant_id) == []
    assert ledger.verify(inp.grant_id).ok


async def test_access_removed_by_hand_is_recorded_as_already_gone(settings):
    inp = grant_input(settings, "alice", "secrets-readonly", timedelta(minutes=5))
    async with running_worker(settings) as (client, ledger):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        g = await wait_state(handle, GrantState.active)
        vault_root(settings).auth.token.revoke_accessor(g.credential.reference)  # someone removes it by hand
        await handle.execute_update(
            GrantWorkflow.revoke, ActionInput(actor=principal(settings, "alice"), comment="done")
        )
        result = await handle.result()
    assert result.state is GrantState.revoked
    confirmed = ledger.events(inp.grant_id)[-1]
    assert confirmed.type == "revocation.confirmed" and confirmed.data["already_gone"] is True
    assert confirmed.data["attempts"] == 1
