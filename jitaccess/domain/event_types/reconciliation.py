"""A reconciliation run's own chain (ReconciliationWorkflow): what the targets hold compared with
the grants, and what was done about each difference. `reconciliation.drift_detected` is also
written on the drifted grant's own chain (with the signed report as `command`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from jitaccess.domain.event_types.base import Command, EventBody, ReadBack


class ReconciliationStarted(EventBody, type="reconciliation.started"):
    """A run began, on request or by the schedule (`trigger`)."""

    run_id: str
    workflow_id: str
    dry_run: bool
    trigger: Literal["request", "schedule"] = Field(description="on request or by the schedule")


class ReconciliationFailed(EventBody, type="reconciliation.failed", severity="warning"):
    """The scan failed; the run ends with no findings."""

    error: str
    dry_run: bool


class ReconciliationCompleted(EventBody, type="reconciliation.completed"):
    """The run ended: finding counts and each provider's scan status."""

    counts: dict[str, int] = Field(description="findings by kind, remediated and failed")
    dry_run: bool
    error: str | None = None
    providers: list[dict[str, Any]] = Field(description="each provider's scan status")


class _FindingEvent(EventBody):
    """A finding (jitaccess.domain.reconciliation.Finding without its credential object)."""

    kind: Literal["orphan", "drift", "mismatch"] = Field(
        description="orphan: access no grant holds; drift: a grant's access gone; mismatch: access differs from what was approved"
    )
    provider: str
    grant_id: str
    reference: str | None = Field(None, description="the object at the target")
    detail: str
    remedy: Literal["revoke", "signal_grant", "alert"] = Field(description="what the finding calls for")
    grant_state: str | None = Field(None, description="the state reconciliation saw (null: no such grant)")
    issued_reference: str | None = Field(None, description="the grant's own credential, when it has one")
    expected: dict[str, Any] | None = Field(None, description="the approved details")
    observed: dict[str, Any] | None = Field(None, description="what the target shows")
    run_id: str | None = None
    remediation: dict[str, Any] | None = Field(None, description="action, confirmed, already_gone, detail")
    dry_run: bool | None = Field(None, description="true: reported only, nothing changed")
    read_back: ReadBack | None = None
    severity: Literal["high"] | None = None
    alert: str | None = None


class ReconciliationOrphanDetected(_FindingEvent, type="reconciliation.orphan_detected"):
    """Dry run: access at a target that no live grant holds."""


class ReconciliationDriftDetected(_FindingEvent, type="reconciliation.drift_detected", severity="warning"):
    """An active grant's access was removed at the target by someone else."""

    command: Command | None = Field(None, description="on the grant's chain: the run's signed report")


class ReconciliationMismatchDetected(_FindingEvent, type="reconciliation.mismatch_detected", severity="high"):
    """Access at a target differs from what was approved (alerted; an extra object is revoked)."""


class ReconciliationOrphanRevoked(_FindingEvent, type="reconciliation.orphan_revoked", severity="warning"):
    """Access nobody holds a grant for was revoked, confirmed by read-back."""


class ReconciliationOrphanRevokeFailed(_FindingEvent, type="reconciliation.orphan_revoke_failed", severity="high"):
    """Orphaned access is still there; the next run tries again."""


# a dry run's finding, by its kind (FindingKind value): reported only, nothing changed
DETECTED: dict[str, type[_FindingEvent]] = {
    "orphan": ReconciliationOrphanDetected,
    "drift": ReconciliationDriftDetected,
    "mismatch": ReconciliationMismatchDetected,
}
