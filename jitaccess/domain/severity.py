"""How loud an identity event is in the SIEM feed: `info`, `warning` or `high`.

Pure (no I/O): the `record_events` activity tags every SIEM line with it, so a SIEM rule can
alert on `severity="high"` without knowing every event type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Severity = Literal["info", "warning", "high"]

# access someone may hold that nobody approved, or a control that was attacked or failed
HIGH: frozenset[str] = frozenset(
    {
        "revocation.failing",  # access past its end that the pipeline cannot remove
        "credential.issue_refused",  # the issuer could not prove the grant from signed evidence
        "review.finding",  # a break-glass use judged not justified
        "reconciliation.mismatch_detected",  # access differs from what was approved
        "reconciliation.orphan_revoke_failed",  # access nobody holds a grant for, still there
        "evidence.verification_failed",
    }
)
WARNING: frozenset[str] = frozenset(
    {
        "revocation.retrying",
        "reconciliation.drift_detected",  # an active grant's access was removed by hand
        "reconciliation.orphan_revoked",
        "reconciliation.failed",
        "review.overdue",
        "approval.escalated",
        "credential.issue_failed",
        "fulfilment.verification_failed",
        "extension.failed",
        "notification.failed",
        "notification.abandoned",
    }
)


def severity(event_type: str, data: Mapping[str, Any] | None = None) -> Severity:
    """The severity of one identity event (or SIEM line) of `event_type` carrying `data`."""
    d = data or {}
    if event_type in HIGH:
        return "high"
    if event_type == "policy.decided" and str(d.get("rule", "")).startswith("trust:"):
        return "high"  # a forged or unsigned start
    if d.get("break_glass") is True and event_type in ("grant.requested", "grant.approved"):
        return "high"  # break-glass: access at once, reviewed afterwards
    if event_type in WARNING:
        return "warning"
    return "info"
