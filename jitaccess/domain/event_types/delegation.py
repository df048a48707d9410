"""Delegations: an approver lets someone decide for them for a while (one event, its own chain
keyed by the delegation ID; written by jitaccess.service.delegations)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from jitaccess.domain.event_types.base import EventBody, IsoTime


class DelegationGranted(EventBody, type="delegation.granted"):
    """The actor (the delegator) lets `delegate` approve in their place from `starts_at` to `ends_at`."""

    delegate: str = Field(description="who may approve in the delegator's place")
    starts_at: IsoTime
    ends_at: IsoTime
    reason: str
    delegator_groups: list[str] = Field(description="the delegator's groups then")
    auth_context: dict[str, Any] | None = Field(None, description="how the delegator signed in")
