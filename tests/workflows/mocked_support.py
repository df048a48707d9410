"""GrantWorkflow with its activities replaced BY NAME, as temporalio's samples do: fakes declared with
`@activity.defn(name=...)` under the contract's names (jitaccess.domain.contracts) are registered on
the worker instead of the real activities, so the workflow runs on the time-skipping test server with
no OpenBao, no ledger and no provider. The fakes keep what they were called with (`calls`), what is
live at their pretend target (`live`) and every evidence event the workflow flushed (`events`), and
fail on request (`issue_*`, `revoke_plan`, `extend_fails`).

Inputs are built as the API builds them (evaluate() on the example catalogue and directory), and
commands reach the workflow signed by the time-skipping client (tests/workflows/conftest.py)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Literal

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from jitaccess.config import load_catalogue, load_users
from jitaccess.config.settings import EXAMPLES
from jitaccess.domain import contracts as c
from jitaccess.domain.catalogue import Catalogue
from jitaccess.domain.commands import CommandSigner, CommandVerifier, SignableT, SignerRole
from jitaccess.domain.contracts import GrantOptions
from jitaccess.domain.credentials import (
    IssuedCredential,
    IssueResult,
    ProviderGrant,
    RevocationResult,
    WrappedHandover,
)
from jitaccess.domain.events import IdentityEvent, verify_chain
from jitaccess.domain.grant import ActionInput, Grant, GrantInput, IssueRequest
from jitaccess.domain.notifications import DeliveryRequest, DeliveryResult
from jitaccess.domain.policy import AccessRequest
from jitaccess.domain.principals import Principal
from jitaccess.workers.factory import SANDBOXED_RUNNER
from jitaccess.workflows import trust
from jitaccess.workflows.grant import GrantWorkflow
from tests.workflows.support import input_for

FAKED = (
    c.ISSUE_CREDENTIAL,
    c.REVOKE_CREDENTIAL,
    c.CLEAN_UP_GRANT,
    c.EXTEND_CREDENTIAL,
    c.RECORD_EVENTS,
    c.DELIVER_NOTIFICATION,
)
RevokeOutcome = Literal["error", "still_present"]


@cache
def catalogue() -> Catalogue:
    return load_catalogue(EXAMPLES / "catalogue.yaml")


def person(name: str) -> Principal:
    """A dev user (users.yaml) as the API's sign-in makes them."""
    return load_users(EXAMPLES / "users.yaml")[name].principal(name)


def request_input(
    requester: str, entitlement: str, duration: timedelta, *, options: GrantOptions | None = None, **req: Any
) -> GrantInput:
    """A GrantInput as the API builds it (evaluate() at request time) from the example catalogue."""
    request = AccessRequest(entitlement=entitlement, duration=duration, reason="mocked workflow test", **req)
    return input_for(catalogue(), person(requester), request, ("jitaccess-admins",), options, datetime.now(UTC))


def action(name: str, comment: str = "") -> ActionInput:
    return ActionInput(actor=person(name), comment=comment)


def install_trust(command_keys: dict[str, str]) -> None:
    """What build_worker installs: the verifier trusting the session's API and worker keys, and the
    worker's signer (the time-skipping client signs with the same API key)."""
    api = CommandSigner.from_text(command_keys["command_signing_key"], SignerRole.api)
    worker = CommandSigner.from_text(command_keys["worker_signing_key"], SignerRole.worker)
    verifier = CommandVerifier([(api.public_key, SignerRole.api), (worker.public_key, SignerRole.worker)])
    trust.install(verifier, worker)


def worker_signed(command_keys: dict[str, str], cmd: SignableT, target: str, action: str) -> SignableT:
    """A command (a signal) as another workflow's worker signs it."""
    signer = CommandSigner.from_text(command_keys["worker_signing_key"], SignerRole.worker)
    return signer.sign(cmd, target, action, datetime.now(UTC), uuid.uuid4().hex)


def _provider_error(message: str, retryable: bool = True) -> ApplicationError:
    """What the real activities raise for a ProviderError."""
    return ApplicationError(message, type=c.PROVIDER_ERROR, non_retryable=not retryable)


@dataclass
class FakeActivities:
    """The grant activities by name, against a pretend target (`live`: reference -> credential).

    issue_fails: every issue attempt fails (after creating the credential: `issue_leaves_partial`);
    issue_verified: what the read-back after issuing says; issue_refused: the issuer's refusal rule;
    revoke_plan: the outcomes of the first revoke attempts, then revocations succeed;
    extend_fails: the provider refuses to move the TTL."""

    issue_fails: bool = False
    issue_leaves_partial: bool = True
    issue_verified: bool = True
    issue_refused: str | None = None
    revoke_plan: list[RevokeOutcome] = field(default_factory=list)
    extend_fails: bool = False
    live: dict[str, IssuedCredential] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    events: dict[str, IdentityEvent] = field(default_factory=dict)  # event_id -> event (stored idempotently)
    delivered: list[DeliveryRequest] = field(default_factory=list)

    def all(self) -> list:
        """The fakes to register: each method is named as the activity it replaces."""
        return [getattr(self, name) for name in FAKED]

    # -- what the tests read ---------------------------------------------------------------
    def inputs(self, name: str) -> list[Any]:
        """What the activity `name` was called with, one entry per attempt."""
        return [arg for n, arg in self.calls if n == name]

    def chain(self, grant_id: str) -> list[IdentityEvent]:
        return sorted((e for e in self.events.values() if e.grant_id == grant_id), key=lambda e: e.seq)

    def types(self, grant_id: str) -> list[str]:
        """The grant's evidence event types in chain order (notification deliveries left out)."""
        return [e.type for e in self.chain(grant_id) if not e.type.startswith("notification.")]

    def live_for(self, grant_id: str) -> list[IssuedCredential]:
        return [cr for cr in self.live.values() if cr.grant_id == grant_id]

    # -- the activities ----------------------------------------------------------------------
    @activity.defn(name=c.ISSUE_CREDENTIAL)
    async def issue_credential(self, req: IssueRequest) -> IssueResult:
        self.calls.append((c.ISSUE_CREDENTIAL, req))
        if self.issue_refused:
            raise ApplicationError("not provable", self.issue_refused, type=c.ISSUE_REFUSED, non_retryable=True)
        grant = req.grant
        cred = IssuedCredential(
            provider=grant.provider,
            grant_id=grant.grant_id,
            reference=f"fake-{grant.grant_id}-{activity.info().attempt}",
            details={"policies": ["fake"]},
            expires_at=grant.expires_at,
        )
        if self.issue_fails:
            if self.issue_leaves_partial:
                self.live[cred.reference] = cred  # created, but the reply is lost
            raise _provider_error("injected: the provider's reply was lost")
        self.live[cred.reference] = cred
        handover = WrappedHandover(
            wrapping_token=f"wrap-{cred.reference}", expires_at=datetime.now(UTC) + timedelta(minutes=5)
        )
        seen = "policies as issued" if self.issue_verified else "injected: policies differ from the entitlement's"
        return IssueResult(credential=cred, handover=handover, verified=self.issue_verified, verification=seen)

    @activity.defn(name=c.REVOKE_CREDENTIAL)
    async def revoke_credential(self, cred: IssuedCredential) -> RevocationResult:
        self.calls.append((c.REVOKE_CREDENTIAL, cred))
        outcome = self.revoke_plan.pop(0) if self.revoke_plan else None
        if outcome == "error":
            raise _provider_error("injected: target unavailable")
        if outcome == "still_present":
            return RevocationResult(confirmed=False, verification="injected: still present at the target")
        removed = self.live.pop(cred.reference, None) is not None
        return RevocationResult(confirmed=True, already_gone=not removed, verification="read-back: gone")

    @activity.defn(name=c.CLEAN_UP_GRANT)
    async def clean_up_grant(self, grant: ProviderGrant) -> RevocationResult:
        self.calls.append((c.CLEAN_UP_GRANT, grant))
        leftovers = self.live_for(grant.grant_id)
        for cr in leftovers:
            del self.live[cr.reference]
        return RevocationResult(
            confirmed=True, already_gone=not leftovers, verification=f"removed {len(leftovers)} leftover(s)"
        )

    @activity.defn(name=c.EXTEND_CREDENTIAL)
    async def extend_credential(self, req: c.ExtendRequest) -> IssuedCredential:
        self.calls.append((c.EXTEND_CREDENTIAL, req))
        if self.extend_fails:
            raise _provider_error("injected: the TTL cannot be moved", retryable=False)
        moved = req.credential.model_copy(update={"expires_at": req.expires_at})
        self.live[moved.reference] = moved
        return moved

    @activity.defn(name=c.RECORD_EVENTS)
    async def record_events(self, batch: c.EventBatch) -> int:
        self.calls.append((c.RECORD_EVENTS, batch))
        new = [e for e in batch.events if e.event_id not in self.events]
        self.events.update((e.event_id, e) for e in new)
        return len(new)

    @activity.defn(name=c.DELIVER_NOTIFICATION)
    async def deliver_notification(self, req: DeliveryRequest) -> DeliveryResult:
        self.calls.append((c.DELIVER_NOTIFICATION, req))
        self.delivered.append(req)
        return DeliveryResult(notifier=req.notifier, ok=True, status_code=200, attempt=req.attempt)


@dataclass
class MockedRun:
    """A worker with fake activities on a time-skipping environment; starts grants on it."""

    env: WorkflowEnvironment
    fakes: FakeActivities
    task_queue: str

    async def start(self, inp: GrantInput) -> WorkflowHandle[Any, Grant]:
        return await self.env.client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=self.task_queue)

    def chain_ok(self, grant: Grant) -> bool:
        """The stored chain is whole and ends where the grant says it does."""
        v = verify_chain(grant.grant_id, self.fakes.chain(grant.grant_id))
        assert v.ok, v.problem
        return v.events == grant.events and v.last_hash == grant.last_hash


@contextlib.asynccontextmanager
async def mocked_worker(
    env: WorkflowEnvironment, command_keys: dict[str, str], fakes: FakeActivities | None = None
) -> AsyncIterator[MockedRun]:
    """GrantWorkflow on its own task queue with `fakes` registered under the real activity names."""
    install_trust(command_keys)
    fakes = fakes or FakeActivities()
    queue = f"mocked-{uuid.uuid4().hex[:8]}"
    worker = Worker(
        env.client,
        task_queue=queue,
        workflows=[GrantWorkflow],
        activities=fakes.all(),
        workflow_runner=SANDBOXED_RUNNER,
    )
    async with worker:
        yield MockedRun(env, fakes, queue)
