"""Delegations: an approver lets someone decide for them for a while (one event, its own chain
keyed by the delegation ID; written by jitaccess.service.delegations)."""

from __future__ import annotations

from typing import Any

from jitaccess.domain.event_types.base import EventBody, IsoTime


class DelegationGranted(EventBody, type="delegation.granted"):
    """The actor (the delegator) lets `delegate` approve in their place from `starts_at` to `ends_at`."""

    delegate: str
    starts_at: IsoTime
    ends_at: IsoTime
    reason: str
    delegator_groups: list[str]
    auth_context: dict[str, Any] | None = None
