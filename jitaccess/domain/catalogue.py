"""The bounded catalogue of entitlements a requester may ask for.

Self-service is bounded by this catalogue: anything not in it is refused with
`not_in_catalogue`. The catalogue's content hash is the policy version every
decision records.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ApprovalRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    auto_approve: bool = False
    approver_groups: tuple[str, ...] = ()
    min_approvals: int = Field(default=1, ge=1, le=10)
    timeout: timedelta = timedelta(hours=24)

    @model_validator(mode="after")
    def _approvers_when_manual(self) -> ApprovalRule:
        if not self.auto_approve and not self.approver_groups:
            raise ValueError("an approval rule without auto_approve needs approver_groups")
        if self.timeout <= timedelta(0):
            raise ValueError("approval timeout must be positive")
        return self


class ProviderSpec(BaseModel):
    """Which provider fulfils the entitlement and its non-secret parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str = Field(min_length=1, description="provider id, e.g. vault_token")
    params: dict[str, Any] = Field(default_factory=dict)


class Entitlement(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,62}$")
    description: str
    provider: ProviderSpec
    default_duration: timedelta
    max_duration: timedelta
    requester_groups: tuple[str, ...] = Field(min_length=1)
    approval: ApprovalRule
    reason_required: bool = True

    @model_validator(mode="after")
    def _durations(self) -> Entitlement:
        if self.default_duration <= timedelta(0) or self.max_duration <= timedelta(0):
            raise ValueError(f"{self.id}: durations must be positive")
        if self.default_duration > self.max_duration:
            raise ValueError(f"{self.id}: default_duration exceeds max_duration")
        return self


class Catalogue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    entitlements: tuple[Entitlement, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> Catalogue:
        ids = [e.id for e in self.entitlements]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate entitlement ids: {', '.join(dupes)}")
        return self

    @property
    def version(self) -> str:
        """Content hash of the catalogue: the policy version recorded with every decision."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def get(self, entitlement_id: str) -> Entitlement | None:
        return next((e for e in self.entitlements if e.id == entitlement_id), None)

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.entitlements]
