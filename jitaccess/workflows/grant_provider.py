"""The grant's provider calls (issue, clean up, revoke, extend): one activity each, whose answer
goes back to the lifecycle as an outcome message. Deterministic like the workflow that runs them."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from jitaccess.domain import contracts as c
    from jitaccess.domain.credentials import IssuedCredential, IssueResult, RevocationResult
    from jitaccess.domain.grant import GrantInput, IssueRequest
    from jitaccess.domain.lifecycle import Lifecycle
    from jitaccess.domain.lifecycle_effects import (
        ApplyExtension,
        CleanedUp,
        CleanUp,
        ExtensionApplied,
        ExtensionFailed,
        IssueCredential,
        Issued,
        IssueFailed,
        IssueRefused,
        Outcome,
        RevokeAttempted,
        RevokeCredential,
    )
    from jitaccess.workflows.common import failure_message
    from jitaccess.workflows.patches import PROVIDER_EXPIRY_FROM_GRANT, patched
    from jitaccess.workflows.priority import REMOVAL_PRIORITY

PROVIDER_CALL_TIMEOUT = timedelta(seconds=30)

ProviderCall = IssueCredential | CleanUp | RevokeCredential | ApplyExtension


async def call_provider(call: ProviderCall, life: Lifecycle, inp: GrantInput) -> Outcome:
    match call:
        case IssueCredential():
            return await _issue(life, inp)
        case CleanUp():
            return await _clean_up(life)
        case RevokeCredential():
            return await _revoke(life)
        case ApplyExtension():
            return await _extend(life, call)


async def _issue(life: Lifecycle, inp: GrantInput) -> Outcome:
    if patched(PROVIDER_EXPIRY_FROM_GRANT):
        # the grant's window is fixed first; every provider ends its own TTL at `expires_at`,
        # counted at the moment of its call (however late the issue runs), never later
        life.fix_window()
    request = IssueRequest(grant=life.provider_request(), request=inp, approvals=life.approvals)
    try:
        res: IssueResult = await workflow.execute_activity(
            c.ISSUE_CREDENTIAL,
            request,
            result_type=IssueResult,
            start_to_close_timeout=PROVIDER_CALL_TIMEOUT,
            schedule_to_close_timeout=life.options.issue_timeout,
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10)),
        )
    except ActivityError as e:
        if isinstance(e.cause, ApplicationError) and e.cause.type == c.ISSUE_REFUSED:
            rule = str(e.cause.details[0]) if e.cause.details else "issue_refused"
            return IssueRefused(rule, e.cause.message)
        return IssueFailed(failure_message(e))
    return Issued(res)


async def _clean_up(life: Lifecycle) -> Outcome:
    """Whatever a failed issue left behind is removed and confirmed absent (retried until it is)."""
    res: RevocationResult = await workflow.execute_activity(
        c.CLEAN_UP_GRANT,
        life.provider_request(),
        result_type=RevocationResult,
        start_to_close_timeout=PROVIDER_CALL_TIMEOUT,
        priority=REMOVAL_PRIORITY,
        retry_policy=RetryPolicy(
            initial_interval=timedelta(seconds=1), maximum_interval=life.options.revocation_backoff_cap
        ),
    )
    return CleanedUp(res)


async def _revoke(life: Lifecycle) -> Outcome:
    """One attempt with read-back: the lifecycle retries, with an event per failed attempt."""
    try:
        res: RevocationResult = await workflow.execute_activity(
            c.REVOKE_CREDENTIAL,
            life.grant.credential,
            result_type=RevocationResult,
            start_to_close_timeout=PROVIDER_CALL_TIMEOUT,
            priority=REMOVAL_PRIORITY,
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
    except ActivityError as e:
        return RevokeAttempted(error=failure_message(e))
    return RevokeAttempted(res)


async def _extend(life: Lifecycle, call: ApplyExtension) -> Outcome:
    """Move the provider's TTL backstop first; only then the expiry timer (failed: untouched)."""
    assert life.grant.credential is not None
    try:
        cred: IssuedCredential = await workflow.execute_activity(
            c.EXTEND_CREDENTIAL,
            c.ExtendRequest(credential=life.grant.credential, ttl_seconds=call.ttl_seconds, expires_at=call.expires_at),
            result_type=IssuedCredential,
            start_to_close_timeout=PROVIDER_CALL_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1)),
        )
    except ActivityError as e:
        return ExtensionFailed(failure_message(e))
    return ExtensionApplied(cred)
