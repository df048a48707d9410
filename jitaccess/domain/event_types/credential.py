"""Issuing, handing over and revoking a grant's credential (GrantWorkflow, as the executor).
No secret is ever in these events: references and non-secret details only."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from jitaccess.domain.event_types.base import Command, EventBody, IsoTime, ReadBack


class CredentialIssued(EventBody, type="credential.issued"):
    """The provider issued access; `expires_at` is the grant's end, `provider_expires_at` the
    provider's own TTL backstop and `residual_window_seconds` how far past the grant it lies."""

    provider: str
    reference: str = Field(description="the provider's non-secret handle of what was issued")
    details: dict[str, Any] = Field(description="non-secret facts of it (policies, role, account...)")
    expires_at: IsoTime
    provider_expires_at: IsoTime | None = None
    residual_window_seconds: int | None = None
    handover: dict[str, Any] | None = Field(None, description="kind, single_use, expires_at of the wrapped handover")


class CredentialIssueRefused(EventBody, type="credential.issue_refused", severity="high"):
    """The issuer could not prove the grant from signed evidence: nothing was issued."""

    rule: str
    message: str


class CredentialIssueFailed(EventBody, type="credential.issue_failed", severity="warning"):
    """The provider failed to issue; whatever it left behind is cleaned up next."""

    provider: str | None = None
    error: str


class CredentialCleanupConfirmed(EventBody, type="credential.cleanup_confirmed"):
    """What a failed issue left behind was removed, confirmed by reading the target back."""

    read_back: ReadBack
    held_by: list[str] | None = Field(None, description="other grants still holding shared access")


class CredentialDelivered(EventBody, type="credential.delivered"):
    """The requester claimed the single-use wrapped handover."""

    kind: Literal["response-wrapped"]
    single_use: bool
    wrap_expires_at: IsoTime = Field(description="when the wrapping token would have expired unclaimed")
    command: Command | None = None


class FulfilmentVerified(EventBody, type="fulfilment.verified"):
    """Reading the target back shows the access the grant approved."""

    read_back: ReadBack


class FulfilmentVerificationFailed(EventBody, type="fulfilment.verification_failed", severity="warning"):
    """Reading the target back does not show the approved access; it is cleaned up."""

    read_back: ReadBack


class RevocationDeferred(EventBody, type="revocation.deferred"):
    """Shared access: this grant's hold is released, other grants (`held_by`) still hold it."""

    held_by: list[str] = Field(description="the grants still holding the shared access")
    reference: str
    read_back: ReadBack


class RevocationConfirmed(EventBody, type="revocation.confirmed"):
    """The access is gone, confirmed by reading the target back."""

    attempts: int = Field(description="attempts it took")
    reference: str
    already_gone: bool = Field(description="the access was already absent")
    read_back: ReadBack
    credential_expires_at: IsoTime | None = Field(None, description="when the provider would have ended it anyway")


class RevocationRetrying(EventBody, type="revocation.retrying", severity="warning"):
    """A revocation attempt failed or the read-back still shows access: retried after a backoff."""

    attempt: int
    problem: str
    retry_in_seconds: float = Field(description="the backoff before the next attempt")


class RevocationFailing(EventBody, type="revocation.failing", severity="high"):
    """Access past its end that the pipeline cannot remove yet (it keeps retrying): an alert."""

    attempts: int
    problem: str
    alert: str
