"""Delegations: an approver lets someone decide for them for a while (one event, its own chain
keyed by the delegation ID; written by jitaccess.service.delegations)."""

from __future__ import annotations

from typing import Any, ClassVar

from jitaccess.domain.event_types.base import EventBody, IsoTime, event_type


@event_type
class DelegationGranted(EventBody):
    """The actor (the delegator) lets `delegate` approve in their place from `starts_at` to `ends_at`."""

    TYPE: ClassVar[str] = "delegation.granted"

    delegate: str
    starts_at: IsoTime
    ends_at: IsoTime
    reason: str
    delegator_groups: list[str]
    auth_context: dict[str, Any] | None = None
