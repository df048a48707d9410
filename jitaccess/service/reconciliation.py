"""Use cases: run reconciliation now (admins and the reconciliation groups) and read the last
run's report (those, and auditors)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ulid import ULID

from jitaccess.domain.principals import Principal
from jitaccess.domain.reconciliation import ReconcileInput, ReconciliationReport
from jitaccess.domain.refusals import RefusalKind
from jitaccess.service.authority import Authority
from jitaccess.service.errors import NotFound, RequestRefused
from jitaccess.service.ports import EvidenceStore, WorkflowGateway


def new_run_id() -> str:
    return str(ULID()).lower()


@dataclass(frozen=True)
class Reconciliations:
    workflows: WorkflowGateway
    evidence: EvidenceStore
    authority: Authority
    reconciliation_groups: tuple[str, ...]
    run_id: Callable[[], str] = field(default=new_run_id)

    def _may_reconcile(self, me: Principal) -> None:
        allowed = self.authority.admin_groups + self.reconciliation_groups
        if not me.in_any(allowed):
            raise RequestRefused(
                RefusalKind.forbidden,
                "not_reconciler",
                f"reconciliation is for members of {', '.join(allowed)}; {me.id} is in none of them",
            )

    async def run(self, me: Principal, dry_run: bool = False) -> ReconciliationReport:
        """Run it to its end and return its report (`dry_run`: report only, change nothing)."""
        self._may_reconcile(me)
        inp = ReconcileInput(dry_run=dry_run, run_id=self.run_id(), requested_by=me.id, requested_by_kind=me.kind.value)
        return await self.workflows.reconcile(inp)

    async def last(self, me: Principal) -> dict[str, Any]:
        """The last completed run's report: findings and what was done about each."""
        if not (await self.authority.viewer(me)).auditor:
            self._may_reconcile(me)
        report = await self.evidence.last_reconciliation_report()
        if report is None:
            raise NotFound("no reconciliation run has completed yet")
        return report
