"""Grant activities: provider calls with read-back, and evidence recording.

Sync functions (hvac, boto3 and SQLAlchemy are blocking) run on the worker's
thread pool. A ProviderError becomes an ApplicationError of type ProviderError;
`retryable=False` errors are non-retryable so a misconfiguration fails fast.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from jitaccess.domain import contracts as c
from jitaccess.domain.credentials import IssuedCredential, IssueResult, ProviderGrant, RevocationResult
from jitaccess.ledger import Ledger
from jitaccess.providers.base import ProviderError, ProviderRegistry

siem = structlog.get_logger("jitaccess.identity_events")


def _app_error(e: ProviderError) -> ApplicationError:
    return ApplicationError(str(e), type=c.PROVIDER_ERROR, non_retryable=not e.retryable)


class GrantActivities:
    def __init__(self, providers: ProviderRegistry, ledger: Ledger, wrap_ttl: timedelta) -> None:
        self.providers = providers
        self.ledger = ledger
        self.wrap_ttl = wrap_ttl

    def all(self) -> list:
        return [self.issue_credential, self.revoke_credential, self.clean_up_grant, self.record_events]

    @activity.defn(name=c.ISSUE_CREDENTIAL)
    def issue_credential(self, grant: ProviderGrant) -> IssueResult:
        try:
            provider = self.providers.get(grant.provider)
            cred, handover = provider.issue(grant, wrap_ttl=self.wrap_ttl, first_attempt=activity.info().attempt == 1)
            verified, seen = provider.verify_active(cred)
        except ProviderError as e:
            raise _app_error(e) from e
        return IssueResult(credential=cred, handover=handover, verified=verified, verification=seen)

    @activity.defn(name=c.REVOKE_CREDENTIAL)
    def revoke_credential(self, cred: IssuedCredential) -> RevocationResult:
        try:
            provider = self.providers.get(cred.provider)
            removed = provider.revoke(cred)
            gone, seen = provider.verify_revoked(cred)
        except ProviderError as e:
            raise _app_error(e) from e
        return RevocationResult(confirmed=gone, already_gone=not removed, verification=seen)

    @activity.defn(name=c.CLEAN_UP_GRANT)
    def clean_up_grant(self, req: c.CleanUpRequest) -> RevocationResult:
        try:
            provider = self.providers.get(req.provider)
            leftovers = provider.list_managed(req.grant_id)
            for cred in leftovers:
                provider.revoke(cred)
            still = [cred.reference for cred in leftovers if not provider.verify_revoked(cred)[0]]
            remaining = provider.list_managed(req.grant_id)
        except ProviderError as e:
            raise _app_error(e) from e
        if still or remaining:
            raise ApplicationError(f"clean-up of {req.grant_id} not confirmed; still present: {still or [r.reference for r in remaining]}")
        return RevocationResult(
            confirmed=True,
            already_gone=not leftovers,
            verification=f"removed {len(leftovers)} leftover(s); list_managed(grant_id) now empty",
        )

    @activity.defn(name=c.RECORD_EVENTS)
    def record_events(self, batch: c.EventBatch) -> int:
        inserted = self.ledger.append(batch.events, batch.summary)
        for ev in batch.events:  # the SIEM feed: one JSON line per event (consumers dedupe on event_id)
            siem.info("identity_event", **ev.model_dump(mode="json"))
        return inserted
