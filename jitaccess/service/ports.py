"""The small ports the use cases work over. Adapters: Temporal and the ledger (jitaccess.api.gateway,
jitaccess.api.stores, wired by jitaccess.api.wiring); in-memory fakes: tests/unit/service_fakes.py.

Every port is async: an adapter over blocking I/O (the SQLAlchemy ledger) runs it in a worker
thread, so a use case never blocks the event loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from jitaccess.domain.approval import Delegation
from jitaccess.domain.credentials import WrappedHandover
from jitaccess.domain.events import ChainVerification, IdentityEvent
from jitaccess.domain.grant import ActionInput, ExtendInput, Grant, GrantInput, ReviewInput
from jitaccess.domain.onboarding import Onboarding, OnboardingInput
from jitaccess.domain.principals import Principal
from jitaccess.domain.reconciliation import ReconcileInput, ReconciliationReport

Row = dict[str, Any]  # a grant's summary row in the ledger
GrantAction = Literal["approve", "deny", "revoke", "extend", "review"]
OnboardingAction = Literal["approve", "deny", "offboard"]
Directory = Callable[[str], Principal | None]  # a user ID -> that user as configured now (None: unknown)


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class WorkflowGateway(Protocol):
    """The workflows: grants, onboardings, reconciliation runs. Lookups of an unknown ID raise
    `NotFound`; an update a rule refuses raises `RequestRefused` (the validator's rule), one on a
    workflow that has ended `RequestRefused(conflict, "wrong_state")`, any other `UpdateFailed`."""

    async def start_grant(self, inp: GrantInput) -> None:
        """Start the grant's workflow; an existing workflow with this ID is left as it is."""

    async def grant(self, grant_id: str) -> Grant:
        """The grant's live state."""

    async def update_grant(
        self, grant_id: str, action: GrantAction, arg: ActionInput | ExtendInput | ReviewInput
    ) -> Grant: ...

    async def claim_credential(self, grant_id: str, arg: ActionInput) -> WrappedHandover: ...

    async def onboarding_running(self, oid: str) -> bool | None:
        """True: a run with this ID is going; False: it ended; None: no run ever had this ID."""

    async def start_onboarding(self, inp: OnboardingInput) -> None: ...

    async def onboarding(self, oid: str) -> Onboarding: ...

    async def update_onboarding(self, oid: str, action: OnboardingAction, arg: ActionInput) -> Onboarding: ...

    async def reconcile(self, inp: ReconcileInput) -> ReconciliationReport:
        """Run reconciliation to its end; `RunFailed` when the run fails."""


@dataclass(frozen=True)
class GrantQuery:
    """A filter on the ledger's grant summaries (requested in [since, until), newest first)."""

    state: str | None = None
    requester: str | None = None
    break_glass: bool | None = None
    entitlement: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 200


class EvidenceStore(Protocol):
    """The ledger's evidence: chains of identity events, grant summaries, verification."""

    async def events(self, chain: str) -> list[IdentityEvent]: ...

    async def grant_row(self, grant_id: str) -> Row | None: ...

    async def grant_rows(self, query: GrantQuery, visible: Callable[[Row], bool] | None) -> list[Row]:
        """The first `query.limit` rows `visible` accepts (all rows when it is None)."""

    async def verify(self, chain: str) -> ChainVerification: ...

    async def verify_all(self) -> list[ChainVerification]: ...

    async def log_proof(self, grant_id: str) -> dict[str, Any] | None:
        """The chain's inclusion in the newest signed checkpoint (None: no checkpoint yet)."""

    async def log_evidence(self) -> dict[str, Any]:
        """The offline verifier's report on the whole log (checkpoints, signed commands); has `ok`."""

    async def last_reconciliation_report(self) -> dict[str, Any] | None: ...


class DelegationStore(Protocol):
    async def add_delegation(self, d: Delegation, event: IdentityEvent) -> None:
        """Store the delegation and its evidence event together."""

    async def delegations(self, delegate: str | None = None, delegator: str | None = None) -> list[Delegation]: ...
