"""What providers are asked for and what they hand back; nothing here is a secret
except `WrappedHandover.wrapping_token`, the single-use, short-lived Vault
response-wrapping token that is the only credential material allowed into
workflow history."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ProviderGrant(BaseModel):
    """A provider's view of a grant: who gets what, for how long."""

    model_config = ConfigDict(frozen=True)

    grant_id: str
    provider: str
    params: dict[str, Any] = Field(default_factory=dict)
    principal: str
    ttl_seconds: int = Field(ge=1)
    max_ttl_seconds: int | None = None  # the cumulative cap extensions may reach (entitlement max)
    # The grant's window, fixed by the workflow before it issues (None in workflows started before
    # this existed). A provider sets its own TTL from `expires_at` at the moment of its call
    # (ttl_at), so its backstop never ends later than the grant, however late the call runs.
    issued_at: datetime | None = None
    expires_at: datetime | None = None

    def ttl_at(self, now: datetime) -> int:
        """Whole seconds from `now` to the grant's expiry, rounded down, never more than
        `ttl_seconds` (the duration the issuer checked); `ttl_seconds` without a fixed expiry.
        Zero or less: the grant's expiry has passed."""
        if self.expires_at is None:
            return self.ttl_seconds
        return min(self.ttl_seconds, math.floor((self.expires_at - now).total_seconds()))

    def max_ttl_at(self, now: datetime) -> int | None:
        """The cumulative cap (`max_ttl_seconds` counted from `issued_at`) as seconds from `now`,
        rounded down; None when there is no cap."""
        if self.max_ttl_seconds is None or self.issued_at is None:
            return self.max_ttl_seconds
        left = (self.issued_at + timedelta(seconds=self.max_ttl_seconds) - now).total_seconds()
        return min(self.max_ttl_seconds, math.floor(left))


class IssuedCredential(BaseModel):
    """The non-secret reference to what was issued (e.g. a Vault token accessor).

    Also what `list_managed` returns, so reconciliation and clean-up speak the same type.
    """

    model_config = ConfigDict(frozen=True)

    provider: str
    grant_id: str
    reference: str
    details: dict[str, Any] = Field(default_factory=dict)
    expires_at: datetime | None = None  # when the provider itself ends it (TTL backstop / residual window)
    shared_target: str | None = None  # set when several grants can hold this same access (see ledger.holds)


class WrappedHandover(BaseModel):
    model_config = ConfigDict(frozen=True)

    wrapping_token: str = Field(repr=False)
    expires_at: datetime


class IssueResult(BaseModel):
    credential: IssuedCredential
    handover: WrappedHandover | None = None
    verified: bool
    verification: str  # what the read-back saw, recorded as evidence
    # when the activity had this answer (its read-back done), on Temporal's clock: the time of the
    # events made from it, so that a retried workflow task rebuilds them byte for byte (None: from
    # before this field)
    observed_at: datetime | None = None


class RevocationResult(BaseModel):
    confirmed: bool
    already_gone: bool = False
    verification: str
    observed_at: datetime | None = None  # as IssueResult's
    # shared access still held by these other grants: this grant's hold was released,
    # the access itself stays until the last holder ends (revocation.deferred)
    deferred_to: list[str] = Field(default_factory=list)
