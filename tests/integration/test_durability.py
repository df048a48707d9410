"""Durability: a grant outlives the worker process that issued it.

The worker runs as a real subprocess (`python -m jitaccess.workers.main`, configured
only through JITACCESS_* environment variables). It is SIGKILLed while the
grant is active — no graceful shutdown, no chance to flush anything — and stays
dead past the grant's expiry. A new worker process then picks up the durable
expiry timer from Temporal and finishes the lifecycle: the grant ends revoked,
the Vault token is gone, and the evidence chain is complete, verifies, and holds
no event twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hvac
import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle

from jitaccess.bootstrap import connect
from jitaccess.config import Settings
from jitaccess.domain.commands import CommandSigner, SignerRole, public_key_text
from jitaccess.domain.states import GrantState
from jitaccess.ledger import Ledger
from jitaccess.workflows.grant import GrantWorkflow
from tests.support import eventually
from tests.workflows.support import AUTO_LIFECYCLE, grant_input

REPO = Path(__file__).resolve().parents[2]
GRANT_SECONDS = 8


def worker_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JITACCESS_")}
    env.update(
        JITACCESS_TEMPORAL_ADDRESS=settings.temporal_address,
        JITACCESS_TEMPORAL_NAMESPACE=settings.temporal_namespace,
        JITACCESS_VAULT_ADDR=settings.vault_addr,
        JITACCESS_VAULT_TOKEN=settings.vault_token.get_secret_value(),
        JITACCESS_LEDGER_URL=settings.ledger_url,
        JITACCESS_TASK_QUEUE=settings.task_queue,
    )
    # as in production, the worker holds the API's public key only, and its own signing key
    api = CommandSigner.from_text(settings.command_signing_key.get_secret_value(), SignerRole.api)
    env["JITACCESS_COMMAND_PUBLIC_KEYS"] = json.dumps([public_key_text(api.public_key)])
    env["JITACCESS_WORKER_SIGNING_KEY"] = settings.worker_signing_key.get_secret_value()
    env["JITACCESS_CATALOGUE_FILE"] = str(settings.catalogue_file)  # the worker issues from its own catalogue
    for name in ("command_signing_key", "worker_signing_key"):  # and trusts the test's signing keys
        value = getattr(settings, name, None)
        if value is not None:
            env[f"JITACCESS_{name.upper()}"] = value.get_secret_value()
    key = getattr(settings, "payload_key", None)  # the worker must decode what the client encrypts
    if key is not None:
        env["JITACCESS_PAYLOAD_KEY"] = key.get_secret_value()
    return env


def start_worker(settings: Settings, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "jitaccess.workers.main"],
            cwd=REPO,
            env=worker_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so it is stopped with everything it started
        )


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    """Stop one worker we started, by its process group id (= its pid)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


def still_running(proc: subprocess.Popen, log: Path) -> None:
    if proc.poll() is not None:  # it will never get there: stop waiting
        pytest.fail(f"worker exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")


async def wait_active(handle: WorkflowHandle, proc: subprocess.Popen, log: Path, timeout: float = 45):
    async def active():
        still_running(proc, log)
        try:
            g = await handle.query(GrantWorkflow.status, rpc_timeout=timedelta(seconds=5))
        except Exception as e:  # no worker polling yet: the query times out
            raise AssertionError(f"query failed: {e!r}") from None
        assert g.state is GrantState.active, g.state
        return g

    try:
        return await eventually(active, timeout, "grant active", interval=0.2)
    except AssertionError as e:
        raise AssertionError(f"{e}; worker log:\n{log.read_text(errors='replace')[-3000:]}") from None


@pytest.mark.slow
async def test_grant_expires_and_is_revoked_across_a_killed_worker(settings, tmp_path):
    inp = grant_input(settings, "alice", "secrets-readonly", timedelta(seconds=GRANT_SECONDS), reason="durability test")
    first_log, second_log = tmp_path / "worker-1.log", tmp_path / "worker-2.log"
    procs: list[subprocess.Popen] = []
    try:
        procs.append(start_worker(settings, first_log))
        client = await connect(settings)
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        active = await wait_active(handle, procs[0], first_log)
        accessor = active.credential.reference

        # kill -9 while the grant is active: the expiry timer now lives only in Temporal
        os.killpg(procs[0].pid, signal.SIGKILL)
        assert procs[0].wait(10) == -signal.SIGKILL

        remaining = (active.expires_at - datetime.now(UTC)).total_seconds()
        await asyncio.sleep(max(remaining, 0) + 2)  # expiry passes with no worker alive
        # nothing finishes the grant without a worker
        assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING

        procs.append(start_worker(settings, second_log))
        result = await asyncio.wait_for(handle.result(), 60)
    finally:
        for proc in procs:
            stop(proc)

    assert result.state is GrantState.revoked and result.end_reason == "expired"
    assert result.credential.reference == accessor

    vault = hvac.Client(url=settings.vault_addr, token=settings.vault_token.get_secret_value())
    with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid accessor"):
        vault.auth.token.lookup_accessor(accessor)

    ledger = Ledger(settings.ledger_url)
    try:
        events = ledger.events(inp.grant_id)
        verification = ledger.verify(inp.grant_id)
        summary = ledger.grant(inp.grant_id)
    finally:
        ledger.close()
    kinds = [e.type for e in events]
    assert kinds == AUTO_LIFECYCLE
    assert not [k for k, n in Counter(kinds).items() if n > 1]  # nothing recorded twice
    assert len({e.event_id for e in events}) == len(events) and [e.seq for e in events] == list(range(1, 8))
    assert verification.ok and verification.last_hash == result.last_hash
    assert summary["state"] == "revoked"
    confirmed = next(e for e in events if e.type == "revocation.confirmed")
    assert confirmed.data["reference"] == accessor
    # (Vault's TTL backstop, set to the grant's expiry, may have removed the token before the new
    # worker got there; then the read-back confirms it as already_gone — either way it is confirmed.)

    # the first worker issued, the second finished: each SIEM line came from the process that did the step
    first, second = first_log.read_text(errors="replace"), second_log.read_text(errors="replace")
    assert '"type": "fulfilment.verified"' in first and '"type": "grant.expired"' not in first
    assert '"type": "grant.expired"' in second and '"type": "revocation.confirmed"' in second


async def wait_polling(client, settings: Settings, proc: subprocess.Popen, log: Path, timeout: float = 45) -> None:
    """Until the worker process `proc` long-polls the grant task queue (its identity is pid@host)."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    async def polling() -> bool:
        still_running(proc, log)
        resp = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=settings.temporal_namespace,
                task_queue=TaskQueue(name=settings.task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        return any(p.identity.startswith(f"{proc.pid}@") for p in resp.pollers)

    await eventually(polling, timeout, f"worker {proc.pid} polling {settings.task_queue}", interval=0.2)


@pytest.mark.slow
async def test_expiry_fires_on_the_surviving_worker_within_the_sticky_timeout(settings, tmp_path):
    """Two workers; the one that ran the grant (its sticky queue holds the workflow) is killed -9.
    The fired expiry timer's task waits on the dead worker's sticky queue only for
    `sticky_schedule_to_start_timeout` (2 s; Temporal's default is 10 s) before the surviving worker
    takes it: `grant.expired` is stamped with the time that task started."""
    inp = grant_input(settings, "alice", "secrets-readonly", timedelta(seconds=10), reason="sticky test")
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    procs: list[subprocess.Popen] = []
    try:
        procs.append(start_worker(settings, logs[0]))
        client = await connect(settings)
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        await wait_active(handle, procs[0], logs[0])
        procs.append(start_worker(settings, logs[1]))
        await wait_polling(client, settings, procs[1], logs[1])
        os.killpg(procs[0].pid, signal.SIGKILL)  # the worker holding the workflow in its cache
        assert procs[0].wait(10) == -signal.SIGKILL
        result = await asyncio.wait_for(handle.result(), 60)
    finally:
        for proc in procs:
            stop(proc)
    assert result.state is GrantState.revoked and result.end_reason == "expired"
    ledger = Ledger(settings.ledger_url)
    try:
        expired = next(e for e in ledger.events(inp.grant_id) if e.type == "grant.expired")
    finally:
        ledger.close()
    late = (datetime.fromisoformat(expired.at.replace("Z", "+00:00")) - result.expires_at).total_seconds()
    print(f"expiry handled {late:.2f}s after expires_at")
    assert late < 4.5, f"expiry handled {late:.1f}s late (sticky queue timeout not applied?)"
    assert '"type": "grant.expired"' in logs[1].read_text(errors="replace")
