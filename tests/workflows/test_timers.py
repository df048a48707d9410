"""GrantWorkflow timer paths on the time-skipping test server, with the real OpenBao.

Approval deadlines, 4-hour expiries, revocation backoff and issue retry windows
pass in workflow time; the provider calls and the ledger are real. No updates
here (unreliable on the time-skipping server): these paths need no human.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.converter import PayloadCodec
from temporalio.testing import WorkflowEnvironment

from jitaccess.domain.contracts import GrantOptions
from jitaccess.domain.credentials import IssuedCredential, ProviderGrant
from jitaccess.domain.events import IdentityEvent
from jitaccess.domain.lifecycle_schedule import ARM_AHEAD
from jitaccess.domain.states import GrantState
from jitaccess.ledger import Ledger
from jitaccess.providers.base import ProviderError, ProviderRegistry
from jitaccess.providers.vault_token import VaultTokenProvider
from jitaccess.workflows.grant import GrantWorkflow
from tests.support import Delegating
from tests.workflows.support import (
    AUTO_LIFECYCLE,
    at,
    finish,
    grant_input,
    one,
    token_is_dead,
    types,
    vault_provider,
    worker_on,
)


class FlakyRevoke(Delegating):
    """revoke raises a retryable ProviderError for the first `failures` calls (an outage), then works."""

    def __init__(self, real: VaultTokenProvider, failures: int) -> None:
        super().__init__(real)
        self._lock = threading.Lock()  # activities run on a thread pool
        self.failures = failures
        self.revoke_calls = 0

    def revoke(self, cred: IssuedCredential) -> bool:
        with self._lock:
            self.revoke_calls += 1
            n = self.revoke_calls
        if n <= self.failures:
            raise ProviderError("injected outage")
        return self.real.revoke(cred)


class IssueAlwaysFails(Delegating):
    """issue fails with a retryable error on every attempt; with `create_first` it really creates the
    token in Vault first (the reply is "lost"), so each attempt leaves a partial issue behind."""

    def __init__(self, real: VaultTokenProvider, *, create_first: bool) -> None:
        super().__init__(real)
        self._lock = threading.Lock()
        self.create_first = create_first
        self.issue_calls = 0

    def issue(self, grant: ProviderGrant, *, wrap_ttl: timedelta, first_attempt: bool = True):
        with self._lock:
            self.issue_calls += 1
        if self.create_first:
            self.real.issue(grant, wrap_ttl=wrap_ttl, first_attempt=first_attempt)
            raise ProviderError("injected: token created but the reply was lost")
        raise ProviderError("injected: vault unavailable")


class ReadBackDisagrees(Delegating):
    """issue really creates the token, but the read-back says it is not as issued."""

    def __init__(self, real: VaultTokenProvider) -> None:
        super().__init__(real)
        self.issued: list[IssuedCredential] = []

    def issue(self, grant: ProviderGrant, *, wrap_ttl: timedelta, first_attempt: bool = True):
        cred, handover = self.real.issue(grant, wrap_ttl=wrap_ttl, first_attempt=first_attempt)
        self.issued.append(cred)
        return cred, handover

    def verify_active(self, cred: IssuedCredential) -> tuple[bool, str]:
        return False, "injected: token policies differ from the entitlement's"


class SlowTask(PayloadCodec):
    """Once `slow_next` is set, the next activation the worker decodes waits `delay` first: the
    workflow task that handles it runs that much longer, as on a busy worker."""

    def __init__(self, delay: timedelta) -> None:
        self.delay = delay
        self.slow_next = False
        self.slowed = 0

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if self.slow_next:
            self.slow_next, self.slowed = False, self.slowed + 1
            await asyncio.sleep(self.delay.total_seconds())
        return list(payloads)


class SlowsTheArmingTask(Ledger):
    """Once the issue's evidence (fulfilment.verified) is stored, the task that handles that
    activity's completion, the one arming the expiry, runs slow (SlowTask)."""

    def __init__(self, url: str, codec: SlowTask) -> None:
        super().__init__(url)
        self.codec = codec

    def append(self, events: Iterable[IdentityEvent], summary: dict | None = None) -> int:
        batch = list(events)
        inserted = super().append(batch, summary)
        if any(e.type == "fulfilment.verified" for e in batch):
            self.codec.slow_next = True
        return inserted


async def _run(env: WorkflowEnvironment, settings, inp, client: Client | None = None, **worker_kw):
    client = client or env.client
    async with worker_on(client, settings, **worker_kw) as ledger:
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        result = await finish(handle)
        events = ledger.events(inp.grant_id)
        verification = ledger.verify(inp.grant_id)
        summary = ledger.grant(inp.grant_id)
    return result, events, verification, summary


async def test_approval_deadline_passes_without_a_decision(time_env, settings):
    inp = grant_input(settings, "alice", "secrets-admin", timedelta(minutes=30))
    assert inp.decision.approval_timeout == timedelta(hours=4) and not inp.decision.auto_approved

    result, events, verification, summary = await _run(time_env, settings, inp)

    assert result.state is GrantState.approval_expired
    assert result.end_reason == "no decision before the approval deadline"
    kinds = types(events)
    assert kinds[:3] == ["grant.requested", "policy.decided", "approval.requested"]
    assert kinds[-1] == "approval.expired"  # the last event: nothing happens after the deadline
    # in between only the waiting itself (reminders / escalation, if the catalogue asks for them)
    assert set(kinds[3:-1]) <= {"approval.reminder", "approval.escalated"}, kinds
    requested, expired = one(events, "approval.requested"), one(events, "approval.expired")
    assert at(expired) - at(requested) >= timedelta(hours=4)
    assert expired.data == {"deadline": requested.data["deadline"], "votes": 0}
    assert at(expired) >= datetime.fromisoformat(requested.data["deadline"])
    assert all(at(e) < at(expired) for e in events[3:-1])
    assert verification.ok and verification.events == len(events) and verification.last_hash == result.last_hash
    assert summary["state"] == "approval_expired"
    # nothing was issued: no credential event, no credential, nothing in Vault tagged with the grant
    assert not [t for t in kinds if t.startswith("credential.")]
    assert result.credential is None and result.issued_at is None
    assert vault_provider(settings).list_managed(inp.grant_id) == []


async def test_four_hour_grant_expires_and_revocation_is_confirmed(time_env, settings):
    inp = grant_input(settings, "alice", "secrets-readonly", timedelta(hours=4))
    assert inp.decision.auto_approved

    result, events, verification, _ = await _run(time_env, settings, inp)

    assert result.state is GrantState.revoked and result.end_reason == "expired"
    assert types(events) == AUTO_LIFECYCLE
    issued, verified = one(events, "credential.issued"), one(events, "fulfilment.verified")
    expired, confirmed = one(events, "grant.expired"), one(events, "revocation.confirmed")
    # The 4 hours count from the start of issuance (the instant before the token was created), so the
    # workflow's expiry never falls after Vault's own TTL backstop and access never outlives the approved
    # duration. Measured from fulfilment.verified, expiry is therefore 4h minus the issue call's latency.
    assert at(expired) >= result.expires_at == result.issued_at + timedelta(hours=4)
    assert expired.data["expires_at"] == issued.data["expires_at"] == result.expires_at.isoformat()
    issue_latency = at(verified) - result.issued_at
    assert timedelta(0) <= issue_latency < timedelta(seconds=30)
    assert at(expired) - at(verified) >= timedelta(hours=4) - issue_latency
    assert at(confirmed) >= at(expired)
    assert confirmed.data["attempts"] == 1 and confirmed.data["already_gone"] is False
    assert verification.ok and verification.events == 7

    accessor = issued.data["reference"]
    assert confirmed.data["reference"] == accessor == result.credential.reference
    assert token_is_dead(settings, accessor)
    assert vault_provider(settings).list_managed(inp.grant_id) == []


async def test_expiry_is_not_late_by_the_run_of_the_task_that_armed_it(time_env, settings):
    """The task that records the issue also arms the expiry, and Temporal starts a timer only when
    its task completes: here that task runs 1.5 s long (its activation waits in the codec). The
    expiry is armed ahead (ARM_AHEAD) and the remainder from a short task, so the grant still
    expires within a fraction of that, not 1.5 s after its time."""
    slow = timedelta(seconds=1.5)
    assert slow < ARM_AHEAD  # the first timer, late by `slow`, still ends before the expiry
    codec = SlowTask(slow)
    client = Client(
        **{
            **time_env.client.config(),
            "data_converter": dataclasses.replace(time_env.client.data_converter, payload_codec=codec),
        }
    )
    inp = grant_input(settings, "alice", "secrets-readonly", timedelta(hours=4))
    ledger = SlowsTheArmingTask(settings.ledger_url, codec)

    result, events, verification, _ = await _run(time_env, settings, inp, client, ledger=ledger)

    assert codec.slowed == 1 and types(events) == AUTO_LIFECYCLE and verification.ok
    late = at(one(events, "grant.expired")) - result.expires_at
    assert timedelta(0) <= late < slow * 2 / 3, late  # one timer: late by all of `slow` (1.52 s seen)
    history = await client.get_workflow_handle(inp.grant_id).fetch_history()
    timers = [
        e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]
    assert len(timers) == 2 and timers[0] > timedelta(hours=3) and timers[1] <= ARM_AHEAD, timers


async def test_revocation_is_retried_through_a_provider_outage(time_env, settings):
    flaky = FlakyRevoke(vault_provider(settings), failures=4)
    inp = grant_input(settings, "alice", "secrets-readonly", timedelta(minutes=15))
    assert inp.options.revocation_failing_after == 3

    result, events, verification, summary = await _run(
        time_env, settings, inp, providers=ProviderRegistry({"vault_token": flaky})
    )

    assert result.state is GrantState.revoked and result.revocation_attempts == 5
    assert flaky.revoke_calls == 5
    tail = types(events)[types(events).index("grant.expired") :]
    assert tail == [
        "grant.expired",
        "revocation.retrying",
        "revocation.retrying",
        "revocation.retrying",
        "revocation.failing",
        "revocation.retrying",
        "revocation.confirmed",
    ]
    retrying = [e for e in events if e.type == "revocation.retrying"]
    assert [e.data["attempt"] for e in retrying] == [1, 2, 3, 4]
    assert all(e.data["problem"].endswith("injected outage") for e in retrying), retrying
    delays = [e.data["retry_in_seconds"] for e in retrying]
    assert delays == sorted(delays) and len(set(delays)) == 4, delays  # strictly increasing backoff
    # each retry waited (in workflow time) at least the announced delay
    for ev, nxt in zip(retrying, retrying[1:] + [one(events, "revocation.confirmed")]):
        assert at(nxt) - at(ev) >= timedelta(seconds=ev.data["retry_in_seconds"])
    failing = one(events, "revocation.failing")
    assert failing.data["attempts"] == 3 and failing.actor.role == "system"
    confirmed = one(events, "revocation.confirmed")
    assert confirmed.data["attempts"] == 5
    assert verification.ok
    assert summary["state"] == "revoked"
    assert token_is_dead(settings, confirmed.data["reference"])


async def test_issue_failure_with_a_partial_issue_is_cleaned_up(time_env, settings):
    # every attempt really creates a token in Vault and then "loses" the reply
    failing = IssueAlwaysFails(vault_provider(settings), create_first=True)
    inp = grant_input(
        settings,
        "alice",
        "secrets-readonly",
        timedelta(minutes=15),
        options=GrantOptions(issue_timeout=timedelta(seconds=30)),
    )

    result, events, verification, summary = await _run(
        time_env, settings, inp, providers=ProviderRegistry({"vault_token": failing})
    )

    assert result.state is GrantState.issue_failed
    assert failing.issue_calls >= 2  # retried within the 30 s window before giving up
    assert types(events)[-2:] == ["credential.issue_failed", "credential.cleanup_confirmed"]
    assert "credential.issued" not in types(events) and "fulfilment.verified" not in types(events)
    assert "token created but the reply was lost" in one(events, "credential.issue_failed").data["error"]
    cleanup = one(events, "credential.cleanup_confirmed")
    assert cleanup.data["read_back"].startswith("removed 1 leftover(s)")  # earlier attempts' tokens were swept on retry
    assert verification.ok and summary["state"] == "issue_failed"
    assert result.credential is None
    assert vault_provider(settings).list_managed(inp.grant_id) == []


async def test_issue_failure_before_anything_was_created(time_env, settings):
    failing = IssueAlwaysFails(vault_provider(settings), create_first=False)
    inp = grant_input(
        settings,
        "alice",
        "secrets-readonly",
        timedelta(minutes=15),
        options=GrantOptions(issue_timeout=timedelta(seconds=30)),
    )

    result, events, verification, _ = await _run(
        time_env, settings, inp, providers=ProviderRegistry({"vault_token": failing})
    )

    assert result.state is GrantState.issue_failed
    assert types(events)[-2:] == ["credential.issue_failed", "credential.cleanup_confirmed"]
    assert "vault unavailable" in one(events, "credential.issue_failed").data["error"]
    assert one(events, "credential.cleanup_confirmed").data["read_back"].startswith("removed 0 leftover(s)")
    assert verification.ok
    assert vault_provider(settings).list_managed(inp.grant_id) == []


async def test_failed_read_back_after_issue_removes_the_token(time_env, settings):
    disagrees = ReadBackDisagrees(vault_provider(settings))
    inp = grant_input(settings, "alice", "secrets-readonly", timedelta(minutes=15))

    result, events, verification, _ = await _run(
        time_env, settings, inp, providers=ProviderRegistry({"vault_token": disagrees})
    )

    assert result.state is GrantState.issue_failed
    assert types(events)[-3:] == ["credential.issued", "fulfilment.verification_failed", "credential.cleanup_confirmed"]
    assert "fulfilment.verified" not in types(events)
    assert one(events, "fulfilment.verification_failed").data["read_back"].startswith("injected")
    assert one(events, "credential.cleanup_confirmed").data["read_back"].startswith("removed 1 leftover(s)")
    assert verification.ok
    assert result.credential is None
    # the token Vault really created is gone, and nothing else tagged with the grant remains
    assert len(disagrees.issued) == 1
    assert one(events, "credential.issued").data["reference"] == disagrees.issued[0].reference
    assert token_is_dead(settings, disagrees.issued[0].reference)
    assert vault_provider(settings).list_managed(inp.grant_id) == []


async def test_a_long_revocation_outage_continues_as_new_and_keeps_one_chain(time_env, settings):
    """Revocation never gives up; past the history budget the grant continues as new, carrying its
    state and the end of its chain, so weeks of retries never hit Temporal's history limits."""
    flaky = FlakyRevoke(vault_provider(settings), failures=12)
    inp = grant_input(
        settings,
        "alice",
        "secrets-readonly",
        timedelta(minutes=15),
        options=GrantOptions(history_budget=60, revocation_backoff_cap=timedelta(seconds=30)),
    )
    async with worker_on(time_env.client, settings, providers=ProviderRegistry({"vault_token": flaky})) as ledger:
        handle = await time_env.client.start_workflow(
            GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue
        )
        result = await finish(handle)  # follows the continue-as-new chain of runs to the end
        first_run = await time_env.client.get_workflow_handle(
            inp.grant_id, run_id=handle.first_execution_run_id
        ).fetch_history()
        events, verification = ledger.events(inp.grant_id), ledger.verify(inp.grant_id)

    assert first_run.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    assert result.state is GrantState.revoked and result.revocation_attempts == 13 and flaky.revoke_calls == 13
    assert verification.ok and [e.seq for e in events] == list(range(1, len(events) + 1))  # one unbroken chain
    assert types(events).count("revocation.retrying") == 12 and types(events).count("revocation.failing") == 1
    assert types(events)[-1] == "revocation.confirmed" and result.end_reason == "expired"
    assert token_is_dead(settings, one(events, "credential.issued").data["reference"])
