"""Thin side-effecting adapters behind the contract in jitaccess.domain.contracts."""

from jitaccess.activities.grant import GrantActivities

__all__ = ["GrantActivities"]
