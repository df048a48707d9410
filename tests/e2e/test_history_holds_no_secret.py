"""Temporal history holds ciphertext only: the wrapping token (the one credential
allowed into history) and request details never appear in clear."""

from __future__ import annotations

import json

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from jitaccess.workers.codec import ENCODING


@pytest.fixture
def settings(settings):
    """Search attributes on (they are off by default): their values are the one thing a history holds in clear by design, so they are checked too."""
    return settings.model_copy(update={"search_attributes": True})


async def test_history_payloads_are_encrypted_and_hold_no_wrapping_token(api, settings):
    r = await api.call(
        "alice",
        "POST",
        "/v1/grants",
        json={"entitlement": "secrets-admin", "duration": 60, "reason": "very-distinctive-reason"},
    )
    gid = r.json()["grant_id"]
    await api.wait_state("alice", gid, "awaiting_approval")
    assert (await api.call("bob", "POST", f"/v1/grants/{gid}/approve", json={})).status_code == 200
    await api.wait_state("alice", gid, "active")
    wrapping = (await api.call("alice", "GET", f"/v1/grants/{gid}/credential")).json()["wrapping_token"]
    assert (await api.call("alice", "POST", f"/v1/grants/{gid}/revoke", json={"reason": "done"})).status_code == 200
    await api.wait_state("alice", gid, "revoked")

    raw = await Client.connect(settings.temporal_address)  # no codec: what an operator or the UI sees
    history = await raw.get_workflow_handle(gid).fetch_history()
    blob = history.to_json()
    assert wrapping not in blob and "very-distinctive-reason" not in blob
    plain = [
        (ev.event_type, p.data) for ev in history.events for p in _payloads(ev) if p.metadata["encoding"] != ENCODING
    ]
    # the only clear payloads are the SDK's own metadata: local-activity markers (seq, activity type,
    # times) and the patch marker / TemporalChangeVersion search attribute naming a workflow.patched() id
    searchable = _search_attribute_payloads(history)  # Requester, Entitlement, GrantState, ... by design
    assert all(_sdk_metadata(t, d) for t, d in plain if d not in searchable), plain
    assert searchable and all(json.loads(d) in (True, False) or len(json.loads(d)) < 80 for d in searchable)
    assert sum(1 for ev in history.events for p in _payloads(ev) if p.metadata["encoding"] == ENCODING) > 5
    # an activity result and an update result carried the token: they exist, encrypted
    assert any(ev.HasField("activity_task_completed_event_attributes") for ev in history.events)
    assert any(ev.HasField("workflow_execution_update_completed_event_attributes") for ev in history.events)


def _payloads(event):
    """Every Payload message anywhere in a history event."""
    from google.protobuf.message import Message
    from temporalio.api.common.v1 import Payload

    stack = [event]
    while stack:
        msg = stack.pop()
        if isinstance(msg, Payload):
            yield msg
            continue
        for field, value in msg.ListFields():
            if field.message_type is None:
                continue
            if isinstance(value, Message):
                stack.append(value)
            elif hasattr(value, "values"):  # map field
                stack.extend(v for v in value.values() if isinstance(v, Message))
            else:  # repeated field
                stack.extend(value)


def _search_attribute_payloads(history) -> set[bytes]:
    """The values of the search attributes set at start or upserted (plain by Temporal's design, so
    operators can query; jitaccess puts only IDs, names and states there, never a reason or a secret)."""
    found: set[bytes] = set()
    for ev in history.events:
        for attrs in (
            ev.workflow_execution_started_event_attributes.search_attributes,
            ev.upsert_workflow_search_attributes_event_attributes.search_attributes,
        ):
            found.update(p.data for name, p in attrs.indexed_fields.items() if name != "TemporalChangeVersion")
    return found


def _sdk_metadata(event_type: int, data: bytes) -> bool:
    """A clear payload the SDK writes itself: a local-activity marker, a patch marker
    ({"id": <patch>, "deprecated": ...}) or the TemporalChangeVersion search attribute (patch ids)."""
    if event_type == EventType.EVENT_TYPE_MARKER_RECORDED and b'"activity_type":"record_events"' in data:
        return True
    value = json.loads(data)
    if event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
        return isinstance(value, dict) and set(value) <= {"id", "deprecated"}
    if event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return False
