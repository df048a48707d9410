"""In-memory fakes of the service layer's ports (jitaccess.service.ports): no Temporal, no ledger."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from jitaccess.config import load_catalogue
from jitaccess.config.settings import EXAMPLES
from jitaccess.domain.approval import Delegation
from jitaccess.domain.contracts import GrantOptions
from jitaccess.domain.credentials import WrappedHandover
from jitaccess.domain.events import ChainVerification, IdentityEvent, verify_chain
from jitaccess.domain.grant import Grant, GrantInput
from jitaccess.domain.onboarding import Onboarding, OnboardingInput, OnboardingState
from jitaccess.domain.principals import Principal
from jitaccess.domain.reconciliation import ReconcileInput, ReconciliationReport, chain_id
from jitaccess.domain.refusals import RefusalKind
from jitaccess.domain.states import GrantState
from jitaccess.service.errors import NotFound, RequestRefused, RunFailed
from jitaccess.service.ports import Directory, GrantQuery, Row
from jitaccess.service.use_cases import Config, UseCases, build_use_cases

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


class FixedClock:
    def __init__(self, now: datetime = NOW) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


class FakeWorkflows:
    """Workflows by ID, as Temporal keeps them: a second start of an existing ID starts nothing;
    an update is recorded, refused when told to (`refuse`), or refused as `wrong_state` once ended."""

    def __init__(self) -> None:
        self.grants: dict[str, Grant] = {}
        self.onboardings: dict[str, Onboarding] = {}
        self.ended: set[str] = set()  # onboarding runs that have ended
        self.starts = 0
        self.updates: list[tuple[str, str, Any]] = []
        self.refuse: dict[str, RequestRefused] = {}  # action -> the validator's refusal
        self.reconciled: list[ReconcileInput] = []
        self.reconcile_fails = False

    async def start_grant(self, inp: GrantInput) -> None:
        self.starts += 1
        if inp.grant_id not in self.grants:
            g = Grant.from_input(inp)
            g.state = GrantState.denied if not inp.decision.allowed else GrantState.requested
            self.grants[inp.grant_id] = g

    async def grant(self, grant_id: str) -> Grant:
        if grant_id not in self.grants:
            raise NotFound(f"no grant {grant_id[:80]}")
        return self.grants[grant_id]

    def _update(self, wid: str, action: str, arg: Any) -> None:
        if action in self.refuse:
            raise self.refuse[action]
        if wid in self.ended:
            raise RequestRefused(RefusalKind.conflict, "wrong_state", f"grant {wid} has ended", grant_id=wid)
        self.updates.append((wid, action, arg))

    async def update_grant(self, grant_id: str, action: str, arg: Any) -> Grant:
        g = await self.grant(grant_id)
        self._update(grant_id, action, arg)
        return g

    async def claim_credential(self, grant_id: str, arg: Any) -> WrappedHandover:
        await self.update_grant(grant_id, "claim_credential", arg)
        return WrappedHandover(wrapping_token="hvs.wrapped", expires_at=NOW)

    async def onboarding_running(self, oid: str) -> bool | None:
        if oid in self.ended:
            return False
        return True if oid in self.onboardings else None

    async def start_onboarding(self, inp: OnboardingInput) -> None:
        self.starts += 1
        self.onboardings[inp.onboarding_id] = Onboarding(
            onboarding_id=inp.onboarding_id,
            requester=inp.requester,
            workload=inp.request.workload,
            template=inp.request.template,
            state=OnboardingState.awaiting_approval,
        )

    async def onboarding(self, oid: str) -> Onboarding:
        if oid not in self.onboardings:
            raise NotFound(f"no grant {oid[:80]}")
        return self.onboardings[oid]

    async def update_onboarding(self, oid: str, action: str, arg: Any) -> Onboarding:
        o = await self.onboarding(oid)
        self._update(oid, action, arg)
        return o

    async def reconcile(self, inp: ReconcileInput) -> ReconciliationReport:
        if self.reconcile_fails:
            raise RunFailed(f"reconciliation run {inp.run_id} failed: boom")
        self.reconciled.append(inp)
        run = inp.run_id or "run"
        return ReconciliationReport(run_id=run, chain_id=chain_id(run), dry_run=inp.dry_run, started_at=NOW.isoformat())


class FakeLedger:
    """The evidence and delegation ports over dicts and lists."""

    def __init__(self) -> None:
        self.chains: dict[str, list[IdentityEvent]] = {}
        self.rows: dict[str, Row] = {}
        self.saved: list[tuple[Delegation, IdentityEvent]] = []
        self.report: dict[str, Any] | None = None
        self.log: dict[str, Any] = {"ok": True}

    async def events(self, chain: str) -> list[IdentityEvent]:
        return list(self.chains.get(chain, []))

    async def grant_row(self, grant_id: str) -> Row | None:
        return self.rows.get(grant_id)

    async def grant_rows(self, query: GrantQuery, visible: Callable[[Row], bool] | None) -> list[Row]:
        rows = [r for r in self.rows.values() if query.state is None or r.get("state") == query.state]
        return [r for r in rows if visible is None or visible(r)][: query.limit]

    async def verify(self, chain: str) -> ChainVerification:
        return verify_chain(chain, self.chains.get(chain, []))

    async def verify_all(self) -> list[ChainVerification]:
        return [verify_chain(c, evs) for c, evs in self.chains.items()]

    async def log_proof(self, grant_id: str) -> dict[str, Any] | None:
        return None

    async def log_evidence(self) -> dict[str, Any]:
        return self.log

    async def last_reconciliation_report(self) -> dict[str, Any] | None:
        return self.report

    async def add_delegation(self, d: Delegation, event: IdentityEvent) -> None:
        self.saved.append((d, event))
        self.chains[d.delegation_id] = [event]

    async def delegations(self, delegate: str | None = None, delegator: str | None = None) -> list[Delegation]:
        return [
            d
            for d, _ in self.saved
            if (delegate is None or d.delegate == delegate) and (delegator is None or d.delegator.id == delegator)
        ]


CATALOGUE = load_catalogue(EXAMPLES / "catalogue.yaml")
# the dev users (jitaccess/config/examples/users.yaml)
ALICE = Principal(id="alice", groups=("platform", "oncall"))
DAVE = Principal(id="dave", groups=("platform",))
BOB = Principal(id="bob", groups=("security",))
ERIN = Principal(id="erin", groups=("jitaccess-admins",))
FRANK = Principal(id="frank", groups=("platform-leads", "platform"))
IVAN = Principal(id="ivan", groups=("auditors",))
BOT = Principal(id="deploy-bot", kind="service", groups=("platform", "platform-automation"), owner="frank")
ADMINS, AUDITORS, RECONCILERS = ("jitaccess-admins",), ("auditors",), ("security",)


def build(
    workflows: FakeWorkflows | None = None,
    ledger: FakeLedger | None = None,
    clock: FixedClock | None = None,
    directory: Directory | None = None,
    known_users: tuple[str, ...] = (),
) -> UseCases:
    """Every use case over the fakes, with the example catalogue and the default groups."""
    cfg = Config(ADMINS, AUDITORS, RECONCILERS, GrantOptions(), known_users, directory)
    ledger = ledger or FakeLedger()
    return build_use_cases(CATALOGUE, cfg, workflows or FakeWorkflows(), ledger, ledger, clock or FixedClock())


def world(**kw: Any) -> tuple[UseCases, FakeWorkflows, FakeLedger]:
    """The use cases and the fakes behind them (keyword arguments as for `build`)."""
    workflows, ledger = FakeWorkflows(), FakeLedger()
    return build(workflows, ledger, **kw), workflows, ledger
