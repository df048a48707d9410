"""ReconciliationWorkflow: compare every target with the grants, and act on the difference.

Started by the Temporal Schedule `jitaccess-reconciliation` (workers.schedules.
ensure_reconciliation_schedule) or on demand (API `POST /v1/reconciliation/runs`, CLI
`jitaccess reconcile`). One run:

1. `reconciliation.started` on the run's own hash chain (ID `reconciliation-<run_id>`,
   equal to the workflow ID), built here (jitaccess.domain.event_types.reconciliation) and stored by `record_events`;
2. `reconcile_scan`: every provider's list_managed, the ledger's live grants and their
   issued credentials read back, compared (jitaccess.domain.reconciliation.compare);
3. unless `dry_run`, per finding:
   - orphan (and an extra object a live grant never issued): `reconcile_revoke` revokes it
     and reads the target back → `reconciliation.orphan_revoked` (or `.orphan_revoke_failed`;
     the next run tries again); a mismatching extra object → `reconciliation.mismatch_detected`
     with that remediation;
   - drift: the grant's own workflow gets the `report_drift` signal, so it records
     `reconciliation.drift_detected` on ITS chain and marks the grant (only a grant's workflow
     may extend its chain); this run records `reconciliation.drift_detected` on its own;
   - mismatch of the issued credential itself: `reconciliation.mismatch_detected` with an
     alert (the event is on the SIEM feed); nothing is revoked — a person decides;
   with `dry_run`, each finding is recorded (`.orphan_detected`, `.drift_detected`,
   `.mismatch_detected`, all `dry_run: true`) and nothing is changed;
4. `reconciliation.completed` with the counts, and the report (findings + remediation) into
   the ledger for "last run" queries.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, FailureError

with workflow.unsafe.imports_passed_through():
    from jitaccess.domain import contracts as c
    from jitaccess.domain.credentials import RevocationResult
    from jitaccess.domain.event_types import (
        EventBody,
        ReconciliationCompleted,
        ReconciliationDriftDetected,
        ReconciliationFailed,
        ReconciliationMismatchDetected,
        ReconciliationOrphanRevoked,
        ReconciliationOrphanRevokeFailed,
        ReconciliationStarted,
    )
    from jitaccess.domain.event_types.reconciliation import DETECTED
    from jitaccess.domain.events import format_at
    from jitaccess.domain.grant import EXECUTOR
    from jitaccess.domain.principals import SYSTEM_ACTOR, Actor, ActorKind, ActorRole
    from jitaccess.domain.reconciliation import (
        CHAIN_PREFIX,
        Comparison,
        DriftReport,
        Finding,
        FindingKind,
        ReconcileInput,
        ReconciliationReport,
        Remediation,
        Remedy,
        chain_id,
    )
    from jitaccess.workflows import trust
    from jitaccess.workflows.common import EvidenceChain, failure_message
    from jitaccess.workflows.priority import REMOVAL_PRIORITY

SCAN_TIMEOUT = timedelta(minutes=10)
REVOKE_TIMEOUT = timedelta(seconds=60)


@workflow.defn(name="ReconciliationWorkflow")
class ReconciliationWorkflow:
    def __init__(self) -> None:
        self._chain: EvidenceChain | None = None

    @workflow.run
    async def run(self, inp: ReconcileInput) -> ReconciliationReport:
        wid = workflow.info().workflow_id
        run_id = inp.run_id or wid.removeprefix(CHAIN_PREFIX)
        self._chain = EvidenceChain(chain_id(run_id))
        report = ReconciliationReport(
            run_id=run_id,
            chain_id=self._chain.key,
            dry_run=inp.dry_run,
            requested_by=inp.requested_by,
            started_at=format_at(workflow.now()),
        )
        who = (
            Actor(id=inp.requested_by, kind=ActorKind(inp.requested_by_kind or "human"), role=ActorRole.requester)
            if inp.requested_by
            else SYSTEM_ACTOR
        )
        trigger = "request" if inp.requested_by else "schedule"
        self._emit(ReconciliationStarted(run_id=run_id, workflow_id=wid, dry_run=inp.dry_run, trigger=trigger), who)
        await self._flush()

        try:
            comp: Comparison = await workflow.execute_activity(
                c.RECONCILE_SCAN,
                result_type=Comparison,
                start_to_close_timeout=SCAN_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=2)),
            )
        except ActivityError as e:
            report.error = f"scan failed: {failure_message(e)}"
            self._emit(ReconciliationFailed(error=report.error, dry_run=inp.dry_run))
            return await self._finish(report)

        report.providers, report.notes = comp.providers, comp.notes
        for f in comp.findings:
            report.findings.append(await self._handle(f.model_copy(update={"run_id": run_id}), inp.dry_run))
            await self._flush()
        return await self._finish(report)

    async def _handle(self, f: Finding, dry_run: bool) -> Finding:
        if dry_run:
            done = f.model_copy(update={"remediation": Remediation(action="none", detail="dry run: reported only")})
            self._emit(DETECTED[f.kind.value](**done.evidence(), dry_run=True))
            return done
        if f.remedy is Remedy.revoke:
            return await self._revoke(f)
        if f.remedy is Remedy.signal_grant:
            return await self._signal_drift(f)
        done = f.model_copy(
            update={
                "remediation": Remediation(
                    action="alerted", detail="recorded and alerted; not revoked (it is the grant's approved credential)"
                )
            }
        )
        alert = f"access at {f.provider} for {f.grant_id} differs from what was approved"
        self._emit(ReconciliationMismatchDetected(**done.evidence(), severity="high", alert=alert))
        return done

    async def _revoke(self, f: Finding) -> Finding:
        assert f.credential is not None
        try:
            res: RevocationResult = await workflow.execute_activity(
                c.RECONCILE_REVOKE,
                f.credential,
                result_type=RevocationResult,
                start_to_close_timeout=REVOKE_TIMEOUT,
                priority=REMOVAL_PRIORITY,
                retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1)),
            )
            rem = Remediation(
                action="revoked" if res.confirmed else "revoke_failed",
                confirmed=res.confirmed,
                already_gone=res.already_gone,
                detail=res.verification,
            )
        except ActivityError as e:
            rem = Remediation(action="revoke_failed", confirmed=False, detail=failure_message(e))
        done = f.model_copy(update={"remediation": rem})
        data: dict[str, Any] = {**done.evidence(), "read_back": rem.detail}
        if f.kind is FindingKind.mismatch:
            alert = f"unapproved access tagged with {f.grant_id} at {f.provider}"
            self._emit(ReconciliationMismatchDetected(**data, severity="high", alert=alert))
        elif rem.confirmed:
            self._emit(ReconciliationOrphanRevoked(**data), EXECUTOR)
        else:
            alert = "orphaned access not confirmed revoked; the next run retries"
            self._emit(ReconciliationOrphanRevokeFailed(**data, severity="high", alert=alert), EXECUTOR)
        return done

    async def _signal_drift(self, f: Finding) -> Finding:
        try:
            report = trust.sign(DriftReport(finding=f), f.grant_id, c.REPORT_DRIFT_SIGNAL)
            await workflow.get_external_workflow_handle(f.grant_id).signal(c.REPORT_DRIFT_SIGNAL, report)
            rem = Remediation(
                action="signalled",
                detail=f"{f.grant_id}'s workflow told; it records the drift on its "
                "own chain while the grant is active (once)",
            )
        except FailureError as e:
            rem = Remediation(
                action="signal_failed", detail=f"the grant's workflow could not be signalled: {failure_message(e)}"
            )
        done = f.model_copy(update={"remediation": rem})
        self._emit(ReconciliationDriftDetected(**done.evidence()))
        return done

    async def _finish(self, report: ReconciliationReport) -> ReconciliationReport:
        report.counts = report.count()
        providers = [p.model_dump(mode="json") for p in report.providers]
        self._emit(
            ReconciliationCompleted(
                counts=report.counts, dry_run=report.dry_run, error=report.error, providers=providers
            )
        )
        await self._flush()
        assert self._chain is not None
        report.completed_at = self._chain.last.at
        report.events, report.last_hash = self._chain.count, self._chain.last.hash
        await workflow.execute_local_activity(
            c.RECONCILE_STORE_REPORT,
            report,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30)
            ),
        )
        return report

    # -- evidence (the run's own chain) ----------------------------------------------------
    def _emit(self, event: EventBody, actor: Actor = SYSTEM_ACTOR) -> None:
        assert self._chain is not None
        self._chain.emit(event, actor)

    async def _flush(self) -> None:
        assert self._chain is not None
        await self._chain.flush()  # no summary: a run is not a grant
