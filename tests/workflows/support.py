"""Helpers for the GrantWorkflow tests: worker on any client, inputs from evaluate(), Vault read-back."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import hvac
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from jitaccess.config import Settings, load_catalogue, load_users
from jitaccess.domain.catalogue import Catalogue
from jitaccess.domain.contracts import GrantOptions
from jitaccess.domain.events import IdentityEvent
from jitaccess.domain.grant import ActionInput, Grant, GrantInput
from jitaccess.domain.policy import AccessRequest, evaluate
from jitaccess.domain.principals import Principal
from jitaccess.domain.states import GrantState
from jitaccess.ledger import Ledger
from jitaccess.providers.vault_token import VaultClients, VaultTokenProvider
from jitaccess.workflows.grant import GrantWorkflow
from tests.conftest import running_worker
from tests.support import eventually


@contextlib.asynccontextmanager
async def worker_on(client: Client, settings: Settings, **kw) -> AsyncIterator[Ledger]:
    """A grant worker (build_worker) polling `settings.task_queue` on `client`; yields its ledger.

    `settings.temporal_address` is ignored: the worker uses the client it is given.
    Extra keyword arguments (providers=, ledger=) go to build_worker.
    """
    async with running_worker(settings, client, **kw) as (_client, ledger):
        yield ledger


def principal(settings: Settings, name: str) -> Principal:
    return load_users(settings.users_file)[name].principal(name)


def grant_input(
    settings: Settings,
    requester: str,
    entitlement: str,
    duration: timedelta | None,
    *,
    catalogue: Catalogue | None = None,
    options: GrantOptions | None = None,
    reason: str = "workflow test",
) -> GrantInput:
    """A GrantInput exactly as the API builds it: the policy decision comes from evaluate()."""
    req = AccessRequest(entitlement=entitlement, duration=duration, reason=reason)
    cat = catalogue or load_catalogue(settings.catalogue_file)
    return input_for(cat, principal(settings, requester), req, settings.admin_groups, options)


def input_for(
    catalogue: Catalogue,
    who: Principal,
    request: AccessRequest,
    admin_groups: tuple[str, ...],
    options: GrantOptions | None = None,
    now: datetime | None = None,
) -> GrantInput:
    """A GrantInput as the API builds it, for an allowed request: the decision comes from evaluate()
    (`now`: the request time, which business-hours auto-approval rules need)."""
    decision = evaluate(catalogue, who, request, now)
    assert decision.allowed, decision.messages
    return GrantInput(
        grant_id=f"grant-{uuid.uuid4()}",
        requester=who,
        request=request,
        decision=decision,
        admin_groups=admin_groups,
        options=options or GrantOptions(),
    )


async def finish(handle: WorkflowHandle, timeout: float = 60) -> Grant:
    """The workflow's result, or a clear failure instead of a hung test (clean-up and revocation
    retry forever by design, so a broken activity would otherwise never let the workflow end)."""
    try:
        return await asyncio.wait_for(handle.result(), timeout)
    except TimeoutError:
        raise AssertionError(f"{handle.id} did not finish within {timeout:.0f}s") from None


def vault_provider(settings: Settings) -> VaultTokenProvider:
    return VaultTokenProvider(VaultClients(settings.vault_addr, settings.vault_token.get_secret_value()))


def vault_root(settings: Settings) -> hvac.Client:
    return hvac.Client(url=settings.vault_addr, token=settings.vault_token.get_secret_value())


def vault_ttl(settings: Settings, accessor: str) -> int:
    """The token's remaining TTL in seconds, as the real server says."""
    return vault_root(settings).auth.token.lookup_accessor(accessor)["data"]["ttl"]


def token_is_dead(settings: Settings, accessor: str) -> bool:
    """lookup-accessor on the real server: an invalid accessor raises (400 'invalid accessor')."""
    try:
        vault_root(settings).auth.token.lookup_accessor(accessor)
    except hvac.exceptions.InvalidRequest as e:
        assert "invalid accessor" in str(e).lower(), e
        return True
    return False


def types(events: list[IdentityEvent]) -> list[str]:
    return [e.type for e in events]


def extension_steps(events: list[IdentityEvent]) -> list[str]:
    """The extension events' types, in order."""
    return [e.type for e in events if e.type.startswith("extension.")]


EXTENSION_APPLIED = ["extension.requested", "extension.approved", "extension.applied"]


def one(events: list[IdentityEvent], type_: str) -> IdentityEvent:
    found = [e for e in events if e.type == type_]
    assert len(found) == 1, f"expected exactly one {type_} event, got {len(found)}: {types(events)}"
    return found[0]


def signed_data(ev: IdentityEvent, action: str) -> dict:
    """A decision event's data without its command signature, after checking the signature is there:
    signed by the API, for this grant and this action."""
    data = dict(ev.data)
    cmd = data.pop("command")
    assert (cmd["target"], cmd["action"], cmd["role"]) == (ev.grant_id, action, "api"), cmd
    assert cmd["signature"] and cmd["key_id"].startswith("ed25519:") and cmd["body"]["actor"]["id"] == ev.actor.id
    return data


def at(ev: IdentityEvent) -> datetime:
    return datetime.fromisoformat(ev.at.replace("Z", "+00:00"))


# secrets-admin's approval schedule (remind every 1h, escalate after 2h, expire after 4h) as
# `minutes_after` shows it: (event type, minutes after the approval was requested)
ADMIN_APPROVAL_TIMELINE = [
    ("approval.requested", 0),
    ("approval.reminder", 60),
    ("approval.escalated", 120),
    ("approval.reminder", 120),
    ("approval.reminder", 180),
    ("approval.expired", 240),
]


def minutes_after(first: IdentityEvent, events: list[IdentityEvent]) -> list[tuple[str, int]]:
    """Each event's type and whole minutes after `first`."""
    return [(e.type, round((at(e) - at(first)) / timedelta(minutes=1))) for e in events]


async def settled_history(handle: WorkflowHandle, timeout: float = 15):
    """History once the workflow is idle: every workflow task completed and two reads agree."""
    prev = None  # the previous read, when it was idle

    async def settled():
        nonlocal prev
        h = await handle.fetch_history()
        kinds = [e.event_type for e in h.events]
        idle = kinds.count(EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED) == kinds.count(
            EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        )
        agreed = idle and prev is not None and len(prev.events) == len(h.events)
        prev = h if idle else None
        return h if agreed else None

    return await eventually(settled, timeout, "workflow history settled", interval=0.2)


async def wait_state(handle: WorkflowHandle, *states: GrantState, timeout: float = 20, ledger: Ledger | None = None):
    """Until the grant is in one of `states`; with `ledger`, also until every event emitted so far is
    stored (the evidence is written by an activity scheduled when the workflow task commits)."""

    async def reached() -> Grant:
        g = await handle.query(GrantWorkflow.status)
        assert g.state in states, f"grant stayed {g.state}, expected {states}"
        assert ledger is None or len(ledger.events(handle.id)) >= g.events, f"{g.events} events not all stored yet"
        return g

    return await eventually(reached, timeout, f"grant {handle.id} in {[s.value for s in states]}")


# an auto-approved grant's chain when it expires and its revocation is confirmed
AUTO_LIFECYCLE = [
    "grant.requested",
    "policy.decided",
    "grant.approved",
    "credential.issued",
    "fulfilment.verified",
    "grant.expired",
    "revocation.confirmed",
]
# the same with an approval, and the credential fetched by the requester
FULL_LIFECYCLE = [
    "grant.requested",
    "policy.decided",
    "approval.requested",
    "approval.granted",
    "grant.approved",
    "credential.issued",
    "fulfilment.verified",
    "credential.delivered",
    "grant.expired",
    "revocation.confirmed",
]


async def full_lifecycle(
    client: Client,
    settings: Settings,
    ledger: Ledger,
    *,
    grant_id: str | None = None,
    duration: timedelta = timedelta(seconds=4),
) -> tuple[WorkflowHandle, Grant]:
    """secrets-admin end to end through a running worker: alice requests, bob approves (update),
    alice claims the wrapped credential (update) and unwraps it, the grant expires and revocation
    is confirmed by read-back. Checks the evidence chain; returns the handle and the result."""
    alice, bob = principal(settings, "alice"), principal(settings, "bob")
    inp = grant_input(settings, "alice", "secrets-admin", duration)
    if grant_id:
        inp = inp.model_copy(update={"grant_id": grant_id})
    handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
    await wait_state(handle, GrantState.awaiting_approval)
    await handle.execute_update(GrantWorkflow.approve, ActionInput(actor=bob, comment="on-call change, approved"))
    await wait_state(handle, GrantState.active)
    handover = await handle.execute_update(GrantWorkflow.claim_credential, ActionInput(actor=alice))
    unwrapped = vault_root(settings).sys.unwrap(token=handover.wrapping_token)["auth"]  # single use: now consumed
    result = await finish(handle)
    assert result.state is GrantState.revoked and result.end_reason == "expired", result
    assert result.credential is not None and unwrapped["accessor"] == result.credential.reference
    assert types(ledger.events(inp.grant_id)) == FULL_LIFECYCLE
    assert ledger.verify(inp.grant_id).ok
    assert token_is_dead(settings, result.credential.reference)
    return handle, result
