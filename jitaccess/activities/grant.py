"""Grant activities: provider calls with read-back, and evidence recording.

Sync functions (hvac, boto3 and SQLAlchemy are blocking) run on the worker's
thread pool. A ProviderError becomes an ApplicationError of type ProviderError;
`retryable=False` errors are non-retryable so a misconfiguration fails fast.

Shared access (a provider's `shared_target`) is changed only under the
target's hold lock: issue adds this grant's hold, revoke releases it and
removes the access only when no other grant still holds it.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from jitaccess.domain import contracts as c
from jitaccess.domain.catalogue import Catalogue
from jitaccess.domain.commands import CommandVerifier
from jitaccess.domain.credentials import IssuedCredential, IssueResult, ProviderGrant, RevocationResult
from jitaccess.domain.event_types import CredentialIssueRefused
from jitaccess.domain.grant import IssueRequest
from jitaccess.domain.issuance import authorise_issue
from jitaccess.domain.refusals import Refusal
from jitaccess.domain.severity import severity
from jitaccess.ledger import Ledger
from jitaccess.ledger.backstop import WORKFLOW, BackstopStore
from jitaccess.ledger.holds import HoldStore
from jitaccess.ops import metrics
from jitaccess.providers.base import Provider, ProviderError, ProviderRegistry

siem = structlog.get_logger("jitaccess.identity_events")


def _app_error(e: ProviderError) -> ApplicationError:
    return ApplicationError(str(e), type=c.PROVIDER_ERROR, non_retryable=not e.retryable)


def temporal_now(began: float) -> datetime:
    """Now on Temporal's clock, the one workflow time runs on: this activity's start as the server
    recorded it, plus what this worker has measured since `began` (time.monotonic() at its start).
    The time of the events made from the activity's answer (IssueResult.observed_at), so that they
    agree with the workflow's own events whatever this host's clock says, time-skipping included."""
    return activity.info().started_time + timedelta(seconds=time.monotonic() - began)


class _NotConfirmed(Exception):
    """Raised inside a hold transaction so that it rolls back (the hold stays)."""


class GrantActivities:
    def __init__(
        self,
        providers: ProviderRegistry,
        ledger: Ledger,
        wrap_ttl: timedelta,
        catalogue: Catalogue,
        verifier: CommandVerifier,
        *,
        holds: HoldStore,
        backstop: BackstopStore,  # what the expiry backstop ends without Temporal (workers.backstop)
    ) -> None:
        self.providers = providers
        self.catalogue = catalogue
        self.verifier = verifier
        self.ledger = ledger
        self.holds = holds
        self.backstop = backstop
        self.wrap_ttl = wrap_ttl

    def all(self) -> list:
        return [
            self.issue_credential,
            self.revoke_credential,
            self.clean_up_grant,
            self.extend_credential,
            self.record_events,
        ]

    @activity.defn(name=c.ISSUE_CREDENTIAL)
    def issue_credential(self, req: IssueRequest) -> IssueResult:
        began = time.monotonic()
        try:
            grant = authorise_issue(req, self.catalogue, self.verifier)
        except Refusal as r:
            refused = CredentialIssueRefused(rule=r.rule, message=r.message)
            siem.warning(
                "issue_refused",
                type=refused.TYPE,
                severity=refused.SEVERITY,
                grant_id=req.grant.grant_id,
                **refused.data(),
            )
            raise ApplicationError(r.message, r.rule, type=c.ISSUE_REFUSED, non_retryable=True) from None
        try:
            provider = self.providers.get(grant.provider)
            if grant.expires_at is not None and datetime.now(UTC) >= grant.expires_at:
                # a retry that runs after the grant's window (e.g. Temporal was down) issues nothing
                raise ProviderError(
                    f"grant {grant.grant_id} expired before its credential could be issued", retryable=False
                )
            key = provider.shared_target(grant)
            with self.holds.locked(key) if key else nullcontext() as holds:
                if holds is not None:
                    holds.add(grant.grant_id)
                cred, handover = provider.issue(
                    grant, wrap_ttl=self.wrap_ttl, first_attempt=activity.info().attempt == 1
                )
                cred = cred.model_copy(update={"shared_target": key})
                verified, seen = provider.verify_active(cred)
                if holds is not None and len(others := [g for g in holds.holders() if g != grant.grant_id]):
                    seen += f"; shared with active grant(s) {', '.join(others)}"
        except ProviderError as e:
            raise _app_error(e) from e
        self.backstop.record_issue(cred, grant.expires_at)  # before the workflow knows: Temporal may be gone
        return IssueResult(
            credential=cred, handover=handover, verified=verified, verification=seen, observed_at=temporal_now(began)
        )

    @activity.defn(name=c.REVOKE_CREDENTIAL)
    def revoke_credential(self, cred: IssuedCredential) -> RevocationResult:
        began = time.monotonic()
        res = self._revoke_credential(cred)
        if res.confirmed:  # gone (or this grant's hold released): nothing left for the expiry backstop
            self.backstop.close(cred.grant_id, WORKFLOW)
        return res.model_copy(update={"observed_at": temporal_now(began)})

    def _revoke_credential(self, cred: IssuedCredential) -> RevocationResult:
        try:
            provider = self.providers.get(cred.provider)
            if not cred.shared_target:
                return self._revoke(provider, cred)
            try:
                with self.holds.locked(cred.shared_target) as holds:
                    holds.remove(cred.grant_id)
                    others = holds.holders()
                    if others:
                        return RevocationResult(
                            confirmed=True,
                            deferred_to=others,
                            verification=f"this grant's hold released; access kept for {', '.join(others)}",
                        )
                    result = self._revoke(provider, cred)
                    if not result.confirmed:
                        raise _NotConfirmed(result.verification)
                    return result
            except _NotConfirmed as e:
                return RevocationResult(confirmed=False, verification=str(e))
        except ProviderError as e:
            raise _app_error(e) from e

    @staticmethod
    def _revoke(provider: Provider, cred: IssuedCredential) -> RevocationResult:
        removed = provider.revoke(cred)
        gone, seen = provider.verify_revoked(cred)
        return RevocationResult(confirmed=gone, already_gone=not removed, verification=seen)

    @activity.defn(name=c.EXTEND_CREDENTIAL)
    def extend_credential(self, req: c.ExtendRequest) -> IssuedCredential:
        try:
            provider = self.providers.get(req.credential.provider)
            if req.credential.shared_target:
                # identity-based access has no provider-side TTL to move; the expiry backstop's does,
                # unless the backstop has already ended the access at the old expiry
                new_expiry = req.expires_at or datetime.now(UTC) + timedelta(seconds=req.ttl_seconds)
                if not self.backstop.extend(req.credential.grant_id, new_expiry):
                    raise ProviderError(
                        "the grant's access was already ended at its expiry (expiry backstop)", retryable=False
                    )
                return req.credential
            ttl = req.ttl_at(datetime.now(UTC))  # counted now, so the backstop never outlives the new expiry
            if ttl < 1:
                raise ProviderError("the grant expired before its extension could be applied", retryable=False)
            return provider.extend(req.credential, ttl)
        except ProviderError as e:
            raise _app_error(e) from e

    @activity.defn(name=c.CLEAN_UP_GRANT)
    def clean_up_grant(self, grant: ProviderGrant) -> RevocationResult:
        """After a failed issue: remove whatever it left behind and confirm it absent."""
        try:
            provider = self.providers.get(grant.provider)
            key = provider.shared_target(grant)
            with self.holds.locked(key) if key else nullcontext() as holds:
                if holds is not None:
                    holds.remove(grant.grant_id)
                    if others := holds.holders():
                        return RevocationResult(
                            confirmed=True,
                            deferred_to=others,
                            verification=f"nothing removed: the access is held by {', '.join(others)}",
                        )
                expected = provider.expected_credential(grant)
                leftovers = {cr.reference: cr for cr in provider.list_managed(grant.grant_id)}
                if expected is not None:
                    leftovers.setdefault(expected.reference, expected)
                removed = [ref for ref, cr in leftovers.items() if provider.revoke(cr)]
                still = [ref for ref, cr in leftovers.items() if not provider.verify_revoked(cr)[0]]
        except ProviderError as e:
            raise _app_error(e) from e
        if still:
            raise ApplicationError(f"clean-up of {grant.grant_id} not confirmed; still present: {still}")
        self.backstop.close(grant.grant_id, WORKFLOW)
        return RevocationResult(
            confirmed=True,
            already_gone=not removed,
            verification=f"removed {len(removed)} leftover(s); read-back shows none left for {grant.grant_id}",
        )

    @activity.defn(name=c.RECORD_EVENTS)
    def record_events(self, batch: c.EventBatch) -> int:
        inserted = self.ledger.append(batch.events, batch.summary)
        for ev in batch.events:  # the SIEM feed: one JSON line per event (consumers dedupe on event_id)
            sev = severity(ev.type, ev.data)
            (siem.info if sev == "info" else siem.warning)("identity_event", severity=sev, **ev.model_dump(mode="json"))
        metrics.observe_events(batch, inserted, self._requested_at)
        return inserted

    def _requested_at(self, grant_id: str) -> str | None:
        """When a grant was requested (its first event's time, kept on its ledger row)."""
        row = self.ledger.grant(grant_id)
        return str(row["created_at"]) if row and row.get("created_at") else None
