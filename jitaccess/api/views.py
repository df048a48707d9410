"""How the API renders what the use cases return (the JSON shapes clients rely on)."""

from __future__ import annotations

from typing import Any

from jitaccess.domain.grant import Grant


def grant_view(g: Grant) -> dict[str, Any]:
    view = g.model_dump(mode="json", exclude={"decision", "admin_groups"})
    d = g.decision
    view["decision"] = {
        "outcome": d.outcome.value,
        "rule": d.rule,
        "policy_version": d.policy_version,
        "reason_codes": list(d.reason_codes),
        "messages": list(d.messages),
        "approver_groups": list(d.approver_groups),
        "min_approvals": d.min_approvals,
    }
    view["approvals_required"] = g.approvals_required
    view["approvals"] = [v.model_dump(mode="json") for v in g.approvals]
    rnd = g.pending_round()
    view["pending_approval"] = rnd.pending() if rnd else []
    return view


def archived_grant_view(row: dict[str, Any]) -> dict[str, Any]:
    """A grant Temporal no longer retains: its ledger summary, saying so."""
    return {**row, "source": "ledger", "note": "workflow history no longer retained; summary from the ledger"}
