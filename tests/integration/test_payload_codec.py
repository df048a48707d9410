"""The payload codec: a key ring (encrypt with the first key, decrypt with any), and refusal of
every payload it did not encrypt — without ever raising in decode, so a grant is never stuck.

The refusal is checked against the real dev server: a plain `temporalio` client without the
codec (someone who reached Temporal but holds no payload key) sends an update and a signal to a
live grant. The update is rejected (its argument cannot be converted, so its validator never
runs and nothing enters history), the signal is dropped, and the grant runs on: its state is
unchanged and its expiry timer still fires and revokes it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
import structlog
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter

from jitaccess.bootstrap import data_converter
from jitaccess.config import Settings
from jitaccess.domain import contracts as c
from jitaccess.domain.grant import ActionInput
from jitaccess.domain.reconciliation import DriftReport, Finding, FindingKind, Remedy
from jitaccess.domain.states import GrantState
from jitaccess.workers.codec import (
    PLAINTEXT_REFUSED,
    TAMPERED_REFUSED,
    UNKNOWN_KEY_REFUSED,
    EncryptionCodec,
    key_id,
    new_key,
)
from jitaccess.workflows.grant import GrantWorkflow
from tests.conftest import running_worker
from tests.workflows.support import finish, grant_input, principal, token_is_dead, types, wait_state


def payload(data: bytes) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=data)


# -- the ring ------------------------------------------------------------------------------------
async def test_the_ring_encrypts_with_the_first_key_and_decrypts_with_any():
    old, new = new_key(), new_key()
    before = EncryptionCodec(old)
    [sealed_old] = await before.encode([payload(b'"hello"')])
    assert sealed_old.metadata["encryption-key-id"] == key_id(old).encode() and b"hello" not in sealed_old.data
    ring = EncryptionCodec([new, old])
    [sealed_new] = await ring.encode([payload(b'"world"')])
    assert sealed_new.metadata["encryption-key-id"] == key_id(new).encode()
    assert [p.data for p in await ring.decode([sealed_old, sealed_new])] == [b'"hello"', b'"world"']
    assert ring.key_ids == [key_id(new), key_id(old)]


async def test_what_the_codec_did_not_encrypt_is_refused_never_raised():
    key, other = new_key(), new_key()
    codec = EncryptionCodec(key)
    [foreign] = await EncryptionCodec(other).encode([payload(b'"x"')])
    [mine] = await codec.encode([payload(b'"y"')])
    tampered = Payload()
    tampered.CopyFrom(mine)
    tampered.data = mine.data[:-1] + bytes([mine.data[-1] ^ 1])
    with structlog.testing.capture_logs() as logs:
        out = await codec.decode([payload(b'"plain"'), foreign, tampered, mine])
    assert [p.metadata["encoding"] for p in out[:3]] == [PLAINTEXT_REFUSED, UNKNOWN_KEY_REFUSED, TAMPERED_REFUSED]
    assert all(p.data == b"" for p in out[:3]) and out[3].data == b'"y"'
    unknown = [e for e in logs if e["event"] == "payload_key_unknown"]
    assert unknown and unknown[0]["key_id"] == key_id(other) and unknown[0]["log_level"] == "error"
    # no converter understands a refused payload: it cannot be taken as data
    with pytest.raises(Exception, match="plaintext-refused"):
        pydantic_data_converter.payload_converter.from_payloads([out[0]], [str])


def test_settings_ring_from_payload_keys_and_payload_key(monkeypatch):
    a, b, c_ = new_key(), new_key(), new_key()
    monkeypatch.setenv("JITACCESS_PAYLOAD_KEYS", f" {a}, {b} ,,{a}")
    monkeypatch.setenv("JITACCESS_PAYLOAD_KEY", c_)
    assert Settings().payload_key_ring() == [a, b, c_]  # the single key stays readable (decrypt-only)
    monkeypatch.delenv("JITACCESS_PAYLOAD_KEYS")
    assert Settings().payload_key_ring() == [c_]  # JITACCESS_PAYLOAD_KEY alone: a ring of one
    monkeypatch.delenv("JITACCESS_PAYLOAD_KEY")
    assert Settings().payload_key_ring() == []


# -- against the real dev server -------------------------------------------------------------------
def drift(grant_id: str) -> DriftReport:
    finding = Finding(
        kind=FindingKind.drift,
        provider="vault_token",
        reference="forged",
        grant_id=grant_id,
        detail="a forged drift report",
        remedy=Remedy.signal_grant,
    )
    return DriftReport(finding=finding)


async def refused_everywhere(settings: Settings, outsider: Client, *, expect_refusal: str) -> None:
    """An outsider's update and signal to a live grant are refused / dropped; the grant carries
    on and its expiry timer revokes it."""
    async with running_worker(settings) as (client, ledger):
        inp = grant_input(settings, "alice", "secrets-readonly", timedelta(seconds=6))
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        active = await wait_state(handle, GrantState.active, ledger=ledger)
        theirs = outsider.get_workflow_handle(inp.grant_id)

        with pytest.raises(WorkflowUpdateFailedError) as e:
            await theirs.execute_update(
                GrantWorkflow.revoke, ActionInput(actor=principal(settings, "alice"), comment="outsider")
            )
        assert expect_refusal in str(e.value.cause), e.value.cause
        await theirs.signal(c.REPORT_DRIFT_SIGNAL, drift(inp.grant_id))
        await theirs.signal(c.PARENT_REVOKE_SIGNAL, c.ParentRevoke(reason="outsider says stop"))

        await asyncio.sleep(0.5)  # the signals were delivered (and dropped) by now
        g = await handle.query(GrantWorkflow.status)
        assert g.state is GrantState.active and g.drift is None and g.events == active.events
        result = await finish(handle, timeout=30)
    assert result.state is GrantState.revoked and result.end_reason == "expired"  # the timer still fired
    assert token_is_dead(settings, result.credential.reference)
    kinds = types(ledger.events(inp.grant_id))
    assert "grant.revoke_requested" not in kinds and "reconciliation.drift_detected" not in kinds
    history = await handle.fetch_history()
    assert not [ev for ev in history.events if ev.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED]
    assert sum(ev.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED for ev in history.events) == 2
    assert not [ev for ev in history.events if ev.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]


async def test_a_client_without_the_payload_key_can_change_nothing(settings):
    plain = await Client.connect(settings.temporal_address, data_converter=pydantic_data_converter)
    await refused_everywhere(settings, plain, expect_refusal="Failed decoding arguments")


async def test_a_client_with_an_unknown_key_can_change_nothing_and_is_logged(settings):
    stranger_key = new_key()
    stranger = await Client.connect(
        settings.temporal_address,
        data_converter=dataclasses.replace(data_converter(settings), payload_codec=EncryptionCodec(stranger_key)),
    )
    with structlog.testing.capture_logs() as logs:
        await refused_everywhere(settings, stranger, expect_refusal="Failed decoding arguments")
    named = [e for e in logs if e["event"] == "payload_key_unknown" and e["key_id"] == key_id(stranger_key)]
    assert named, "the unknown key id was not logged"


async def test_a_worker_with_the_new_ring_reads_grants_started_under_the_old_key(settings):
    """Rotation: a grant started under the old key is still read, decided and revoked by processes
    whose ring is [new, old]; what they write from then on is under the new key."""
    old, new = settings.payload_key.get_secret_value(), new_key()
    async with running_worker(settings) as (client, ledger):
        inp = grant_input(settings, "alice", "secrets-readonly", timedelta(minutes=5))
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        await wait_state(handle, GrantState.active, ledger=ledger)
    rotated = settings.model_copy(update={"payload_key": None, "payload_keys": SecretStr(f"{new},{old}")})
    async with running_worker(rotated) as (client, _ledger):
        h = client.get_workflow_handle_for(GrantWorkflow.run, inp.grant_id)
        assert (await h.query(GrantWorkflow.status)).state is GrantState.active
        await h.execute_update(GrantWorkflow.revoke, ActionInput(actor=principal(settings, "alice"), comment="done"))
        result = await finish(h)
    assert result.state is GrantState.revoked
    history = await h.fetch_history()
    last = [ev for ev in history.events if ev.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED][0]
    [p] = last.workflow_execution_completed_event_attributes.result.payloads
    assert p.metadata["encryption-key-id"] == key_id(new).encode()
    assert datetime.now(UTC) - result.ended_at < timedelta(minutes=1)


def test_cli_keys_rotate_prints_a_new_key_and_how_to_prepend_it():
    import os
    import subprocess
    import sys
    from pathlib import Path

    current = new_key()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JITACCESS_")} | {"JITACCESS_PAYLOAD_KEY": current}
    run = subprocess.run(
        [str(Path(sys.executable).with_name("jitaccess")), "keys", "rotate"], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr
    fresh = run.stdout.strip()
    assert EncryptionCodec([fresh, current]).key_ids == [key_id(fresh), key_id(current)]  # a valid key
    assert key_id(current) in run.stderr and "PREPEND" in run.stderr and "JITACCESS_PAYLOAD_KEYS=" in run.stderr
    assert current not in run.stdout + run.stderr  # the existing keys are never printed
