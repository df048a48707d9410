"""A reconciliation run's own chain (ReconciliationWorkflow): what the targets hold compared with
the grants, and what was done about each difference. `reconciliation.drift_detected` is also
written on the drifted grant's own chain (with the signed report as `command`)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from jitaccess.domain.event_types.base import Command, EventBody, Severity, event_type


@event_type
class ReconciliationStarted(EventBody):
    """A run began, on request or by the schedule (`trigger`)."""

    TYPE: ClassVar[str] = "reconciliation.started"

    run_id: str
    workflow_id: str
    dry_run: bool
    trigger: Literal["request", "schedule"]


@event_type
class ReconciliationFailed(EventBody):
    """The scan failed; the run ends with no findings."""

    TYPE: ClassVar[str] = "reconciliation.failed"
    SEVERITY: ClassVar[Severity] = "warning"

    error: str
    dry_run: bool


@event_type
class ReconciliationCompleted(EventBody):
    """The run ended: finding counts and each provider's scan status."""

    TYPE: ClassVar[str] = "reconciliation.completed"

    counts: dict[str, int]
    dry_run: bool
    error: str | None = None
    providers: list[dict[str, Any]]


class _FindingEvent(EventBody):
    """A finding (jitaccess.domain.reconciliation.Finding without its credential object)."""

    kind: Literal["orphan", "drift", "mismatch"]
    provider: str
    grant_id: str
    reference: str | None = None
    detail: str
    remedy: Literal["revoke", "signal_grant", "alert"]
    grant_state: str | None = None
    issued_reference: str | None = None
    expected: dict[str, Any] | None = None
    observed: dict[str, Any] | None = None
    run_id: str | None = None
    remediation: dict[str, Any] | None = None  # action, confirmed, already_gone, detail
    dry_run: bool | None = None  # true: reported only, nothing changed
    read_back: str | None = None
    severity: Literal["high"] | None = None
    alert: str | None = None


@event_type
class ReconciliationOrphanDetected(_FindingEvent):
    """Dry run: access at a target that no live grant holds."""

    TYPE: ClassVar[str] = "reconciliation.orphan_detected"


@event_type
class ReconciliationDriftDetected(_FindingEvent):
    """An active grant's access was removed at the target by someone else."""

    TYPE: ClassVar[str] = "reconciliation.drift_detected"
    SEVERITY: ClassVar[Severity] = "warning"

    command: Command | None = None  # on the grant's chain: the run's signed report


@event_type
class ReconciliationMismatchDetected(_FindingEvent):
    """Access at a target differs from what was approved (alerted; an extra object is revoked)."""

    TYPE: ClassVar[str] = "reconciliation.mismatch_detected"
    SEVERITY: ClassVar[Severity] = "high"


@event_type
class ReconciliationOrphanRevoked(_FindingEvent):
    """Access nobody holds a grant for was revoked, confirmed by read-back."""

    TYPE: ClassVar[str] = "reconciliation.orphan_revoked"
    SEVERITY: ClassVar[Severity] = "warning"


@event_type
class ReconciliationOrphanRevokeFailed(_FindingEvent):
    """Orphaned access is still there; the next run tries again."""

    TYPE: ClassVar[str] = "reconciliation.orphan_revoke_failed"
    SEVERITY: ClassVar[Severity] = "high"


# a dry run's finding, by its kind (FindingKind value): reported only, nothing changed
DETECTED: dict[str, type[_FindingEvent]] = {
    "orphan": ReconciliationOrphanDetected,
    "drift": ReconciliationDriftDetected,
    "mismatch": ReconciliationMismatchDetected,
}
