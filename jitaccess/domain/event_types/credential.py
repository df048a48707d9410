"""Issuing, handing over and revoking a grant's credential (GrantWorkflow, as the executor).
No secret is ever in these events: references and non-secret details only."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from jitaccess.domain.event_types.base import Command, EventBody, IsoTime, Severity, event_type


@event_type
class CredentialIssued(EventBody):
    """The provider issued access; `expires_at` is the grant's end, `provider_expires_at` the
    provider's own TTL backstop and `residual_window_seconds` how far past the grant it lies."""

    TYPE: ClassVar[str] = "credential.issued"

    provider: str
    reference: str
    details: dict[str, Any]
    expires_at: IsoTime
    provider_expires_at: IsoTime | None = None
    residual_window_seconds: int | None = None
    handover: dict[str, Any] | None = None  # kind, single_use, expires_at of the wrapped handover


@event_type
class CredentialIssueRefused(EventBody):
    """The issuer could not prove the grant from signed evidence: nothing was issued."""

    TYPE: ClassVar[str] = "credential.issue_refused"
    SEVERITY: ClassVar[Severity] = "high"

    rule: str
    message: str


@event_type
class CredentialIssueFailed(EventBody):
    """The provider failed to issue; whatever it left behind is cleaned up next."""

    TYPE: ClassVar[str] = "credential.issue_failed"
    SEVERITY: ClassVar[Severity] = "warning"

    provider: str | None = None
    error: str


@event_type
class CredentialCleanupConfirmed(EventBody):
    """What a failed issue left behind was removed, confirmed by reading the target back."""

    TYPE: ClassVar[str] = "credential.cleanup_confirmed"

    read_back: str
    held_by: list[str] | None = None


@event_type
class CredentialDelivered(EventBody):
    """The requester claimed the single-use wrapped handover."""

    TYPE: ClassVar[str] = "credential.delivered"

    kind: Literal["response-wrapped"]
    single_use: bool
    wrap_expires_at: IsoTime
    command: Command | None = None


@event_type
class FulfilmentVerified(EventBody):
    """Reading the target back shows the access the grant approved."""

    TYPE: ClassVar[str] = "fulfilment.verified"

    read_back: str


@event_type
class FulfilmentVerificationFailed(EventBody):
    """Reading the target back does not show the approved access; it is cleaned up."""

    TYPE: ClassVar[str] = "fulfilment.verification_failed"
    SEVERITY: ClassVar[Severity] = "warning"

    read_back: str


@event_type
class RevocationDeferred(EventBody):
    """Shared access: this grant's hold is released, other grants (`held_by`) still hold it."""

    TYPE: ClassVar[str] = "revocation.deferred"

    held_by: list[str]
    reference: str
    read_back: str


@event_type
class RevocationConfirmed(EventBody):
    """The access is gone, confirmed by reading the target back."""

    TYPE: ClassVar[str] = "revocation.confirmed"

    attempts: int
    reference: str
    already_gone: bool
    read_back: str
    credential_expires_at: IsoTime | None = None  # when the provider would have ended it anyway


@event_type
class RevocationRetrying(EventBody):
    """A revocation attempt failed or the read-back still shows access: retried after a backoff."""

    TYPE: ClassVar[str] = "revocation.retrying"
    SEVERITY: ClassVar[Severity] = "warning"

    attempt: int
    problem: str
    retry_in_seconds: float


@event_type
class RevocationFailing(EventBody):
    """Access past its end that the pipeline cannot remove yet (it keeps retrying): an alert."""

    TYPE: ClassVar[str] = "revocation.failing"
    SEVERITY: ClassVar[Severity] = "high"

    attempts: int
    problem: str
    alert: str
