"""The contract between workflows and activities: activity names and their payloads.

Workflows refer to activities by these names (they import nothing but the
domain), and the worker registers implementations under the same names.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from jitaccess.domain.credentials import IssuedCredential
from jitaccess.domain.events import IdentityEvent

ISSUE_CREDENTIAL = "issue_credential"  # provider.issue + provider.verify_active (read-back)
REVOKE_CREDENTIAL = "revoke_credential"  # provider.revoke + provider.verify_revoked (read-back)
CLEAN_UP_GRANT = "clean_up_grant"  # revoke and confirm everything tagged with a grant ID
EXTEND_CREDENTIAL = "extend_credential"  # provider.extend: move the provider-side TTL backstop
RECORD_EVENTS = "record_events"  # ledger append (idempotent) + SIEM log line
DELIVER_NOTIFICATION = "deliver_notification"  # POST one notification to one notifier; never raises on delivery failure
# reconciliation (ReconciliationWorkflow; jitaccess.activities.reconcile)
RECONCILE_SCAN = "reconcile_scan"  # every provider's list_managed + the ledger's live grants + read-backs -> findings
RECONCILE_REVOKE = "reconcile_revoke"  # provider.revoke + provider.verify_revoked of an object no grant holds
RECONCILE_STORE_REPORT = "reconcile_store_report"  # the run's report into the ledger (the "last run" query)
REPORT_DRIFT_SIGNAL = "report_drift"  # GrantWorkflow signal: reconciliation found the grant's access gone

PROVIDER_ERROR = "ProviderError"  # ApplicationError type for a provider failure
REFUSAL = "Refusal"  # ApplicationError type for a rule refusing an update


CHILD_UPDATE_SIGNAL = "child_update"  # GrantWorkflow -> its parent (ServiceOnboardingWorkflow)
PARENT_REVOKE_SIGNAL = "parent_revoke"  # ServiceOnboardingWorkflow -> a child GrantWorkflow


class ChildUpdate(BaseModel):
    """A child grant telling its onboarding where it stands (never a secret)."""

    grant_id: str
    state: str
    reference: str | None = None
    expires_at: datetime | None = None


class ExtendRequest(BaseModel):
    credential: IssuedCredential
    ttl_seconds: int  # new remaining lifetime from now


class EventBatch(BaseModel):
    events: list[IdentityEvent]
    summary: dict[str, object] = Field(default_factory=dict)


class GrantOptions(BaseModel):
    """Operational knobs the workflow needs but cannot read from settings itself."""

    issue_timeout: timedelta = timedelta(minutes=2)
    revocation_backoff_cap: timedelta = timedelta(minutes=5)
    revocation_failing_after: int = 3
    # audience (approvers / requester / security / reviewers) -> notifier names configured on the worker
    notifiers: dict[str, list[str]] = Field(default_factory=dict)
    notification_attempts: int = 4  # then notification.abandoned; a dead notifier never blocks a grant
    # a grant whose revocation keeps failing (or whose review keeps waiting) continues as new past
    # this many history events (or when Temporal suggests it), carrying its state and chain
    history_budget: int = 10_000
    expiry_warning_lead: timedelta | None = None
