"""The contract between workflows and activities: activity names and their payloads.

Workflows refer to activities by these names (they import nothing but the
domain), and the worker registers implementations under the same names.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field

from jitaccess.domain.events import IdentityEvent

ISSUE_CREDENTIAL = "issue_credential"  # provider.issue + provider.verify_active (read-back)
REVOKE_CREDENTIAL = "revoke_credential"  # provider.revoke + provider.verify_revoked (read-back)
CLEAN_UP_GRANT = "clean_up_grant"  # revoke and confirm everything tagged with a grant ID
RECORD_EVENTS = "record_events"  # ledger append (idempotent) + SIEM log line

PROVIDER_ERROR = "ProviderError"  # ApplicationError type for a provider failure
REFUSAL = "Refusal"  # ApplicationError type for a rule refusing an update


class EventBatch(BaseModel):
    events: list[IdentityEvent]
    summary: dict[str, object] = Field(default_factory=dict)


class GrantOptions(BaseModel):
    """Operational knobs the workflow needs but cannot read from settings itself."""

    issue_timeout: timedelta = timedelta(minutes=2)
    revocation_backoff_cap: timedelta = timedelta(minutes=5)
    revocation_failing_after: int = 3
