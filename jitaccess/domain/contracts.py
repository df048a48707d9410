"""The contract between workflows and activities: activity names and their payloads.

Workflows refer to activities by these names (they import nothing but the
domain), and the worker registers implementations under the same names.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from jitaccess.domain.commands import CommandAuth
from jitaccess.domain.credentials import IssuedCredential
from jitaccess.domain.events import IdentityEvent
from jitaccess.domain.principals import Principal

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
ISSUE_REFUSED = "IssueRefused"  # ApplicationError type: the issuer could not prove the grant (details: [rule])


CHILD_UPDATE_SIGNAL = "child_update"  # GrantWorkflow -> its parent (ServiceOnboardingWorkflow)
PARENT_REVOKE_SIGNAL = "parent_revoke"  # ServiceOnboardingWorkflow -> a child GrantWorkflow


class ChildUpdate(BaseModel):
    """A child grant telling its onboarding where it stands (never a secret)."""

    grant_id: str
    state: str
    reference: str | None = None
    expires_at: datetime | None = None
    auth: CommandAuth | None = None  # signed by the child's worker (verified by the parent)


class ParentRevoke(BaseModel):
    """An onboarding ending one of its child grants (offboarding, rotation, all-or-nothing)."""

    reason: str
    auth: CommandAuth | None = None  # signed by the parent's worker (verified by the child)


class ExtendRequest(BaseModel):
    credential: IssuedCredential
    ttl_seconds: int  # new remaining lifetime from now
    # the new expiry: the activity sets the TTL to the time left until it at the moment of the call
    # (rounded down, never more than ttl_seconds); None from workflows started before this field
    expires_at: datetime | None = None

    def ttl_at(self, now: datetime) -> int:
        if self.expires_at is None:
            return self.ttl_seconds
        return min(self.ttl_seconds, math.floor((self.expires_at - now).total_seconds()))


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


class WorkflowStart(BaseModel):
    """What every grant or onboarding workflow starts from, besides its own request and decision:
    who asked, the admin groups, the operational options, and the signature of whoever sent it."""

    requester: Principal
    admin_groups: tuple[str, ...] = ()
    options: GrantOptions = GrantOptions()
    auth: CommandAuth | None = None  # the API's (or, for an onboarding's child grant, a worker's) signature
