"""The story of one grant, read off its hash chain: the answers an auditor asks for (who asked and
why, which rule decided, who approved with what authority, what was granted, when it became usable,
how its removal was confirmed, any residual window). The evidence bundle's report.html shows it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from jitaccess.domain.events import IdentityEvent, parse_at


def _dur(a: str | None, b: str | None) -> float | None:
    if not a or not b:
        return None
    return round((_dt(b) - _dt(a)).total_seconds(), 3)


def _dt(text: str) -> datetime:
    return parse_at(text)


def _command(ev: IdentityEvent) -> dict[str, Any] | None:
    cmd = ev.data.get("command")
    if not isinstance(cmd, dict):
        return None
    return {k: cmd.get(k) for k in ("key_id", "role", "nonce", "issued_at", "signature", "action", "target")}


def _approval(ev: IdentityEvent, decision: dict[str, Any], stages: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    """One approval and the authority it was given with: a delegation, or membership of the
    stage's (or the rule's) approver groups."""
    cmd = ev.data.get("command") or {}
    actor = (cmd.get("body") or {}).get("actor") or {}
    groups = list(actor.get("groups") or [])
    stage = stages.get(ev.data.get("stage")) or {}
    allowed = set(stage.get("approver_groups") or decision.get("approver_groups") or [])
    via = sorted(allowed & set(groups))
    if ev.data.get("on_behalf_of"):
        authority = f"delegated by {ev.data['on_behalf_of']} (delegation {ev.data.get('delegation_id')})"
    elif via:
        authority = "member of " + ", ".join(via) + f" (stage {ev.data.get('stage')})"
    else:
        authority = f"stage {ev.data.get('stage')}; groups {', '.join(groups) or 'not recorded'}"
    return {
        "at": ev.at,
        "approver": ev.actor.id,
        "groups": groups,
        "authority": authority,
        "comment": ev.data.get("comment"),
        "stage": ev.data.get("stage"),
        "command": _command(ev),
    }


def _requested(req: IdentityEvent) -> dict[str, Any]:
    fields = ("entitlement", "duration_seconds", "reason", "ticket", "incident", "break_glass", "workload")
    who = {"at": req.at, "by": req.actor.id, "kind": req.actor.kind.value}
    return {**who, "groups": (req.data.get("requester") or {}).get("groups"), **{k: req.data.get(k) for k in fields}}


def _decided(dec: IdentityEvent) -> dict[str, Any]:
    d = dec.data
    return {
        "at": dec.at,
        "outcome": d.get("outcome"),
        "rule": d.get("rule"),
        "policy_version": d.get("policy_version"),
        "reason_codes": d.get("reason_codes") or [],
        "auto_rule": d.get("auto_rule"),
        "approver_groups": d.get("approver_groups") or [],
        "min_approvals": d.get("min_approvals"),
    }


def _ended(first: dict[str, IdentityEvent]) -> dict[str, Any] | None:
    """What ended the grant: an early revocation (by whom, why) or its timer."""
    if revoke_req := first.get("grant.revoke_requested"):
        return {
            "how": "revoked early",
            "at": revoke_req.at,
            "by": revoke_req.actor.id,
            "reason": revoke_req.data.get("reason"),
            "authority": revoke_req.data.get("authority"),
            "command": _command(revoke_req),
        }
    if expired := first.get("grant.expired"):
        return {"how": "expired (timer)", "at": expired.at, "by": "jitaccess", "reason": None}
    return None


def _removal(confirmed: IdentityEvent, ended: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "confirmed_at": confirmed.at,
        "read_back": confirmed.data.get("read_back"),
        "attempts": confirmed.data.get("attempts"),
        "already_gone": confirmed.data.get("already_gone"),
        "lag_seconds": _dur(ended["at"] if ended else None, confirmed.at),
    }


def _residual(issued: IdentityEvent | None, confirmed: IdentityEvent | None) -> list[str]:
    """What stayed valid after the grant ended: the provider's grace, or a credential that outlives
    its (confirmed) denial."""
    residual: list[str] = []
    if issued and (rw := issued.data.get("residual_window_seconds")):
        residual.append(f"the provider keeps the credential valid {rw}s past the grant's expiry")
    if confirmed:
        cred_exp = confirmed.data.get("credential_expires_at")
        if cred_exp and _dt(cred_exp) > _dt(confirmed.at):
            residual.append(f"the credential itself stays valid-but-denied until {cred_exp}")
    return residual


def _at_and_data(ev: IdentityEvent | None, *leave_out: str, by: bool = False) -> dict[str, Any] | None:
    """The event's time (and actor, with `by`) and its data, but for the `leave_out` fields."""
    if ev is None:
        return None
    who = {"by": ev.actor.id} if by else {}
    return {"at": ev.at, **who, **{k: v for k, v in ev.data.items() if k not in leave_out}}


def grant_story(events: Sequence[IdentityEvent]) -> dict[str, Any]:
    """The answers an auditor asks for, read off the chain."""
    first: dict[str, IdentityEvent] = {}
    for ev in events:
        first.setdefault(ev.type, ev)
    of = lambda t: [e for e in events if e.type == t]
    req, dec = first.get("grant.requested"), first.get("policy.decided")
    decision = dec.data if dec else {}
    stages = {s.get("name"): s for s in decision.get("stages", []) if isinstance(s, dict)}
    verified, confirmed = first.get("fulfilment.verified"), first.get("revocation.confirmed")
    ended = _ended(first)
    return {
        "grant_id": events[0].grant_id if events else None,
        "requested": _requested(req) if req else None,
        "decision": _decided(dec) if dec else None,
        "approvals": [_approval(ev, decision, stages) for ev in of("approval.granted")],
        "denials": [{"at": e.at, "by": e.actor.id, "reason": e.data.get("reason")} for e in of("approval.denied")],
        "approved": _at_and_data(first.get("grant.approved")),
        "issued": _at_and_data(first.get("credential.issued"), "handover"),
        "usable_at": verified.at if verified else None,
        "usable_read_back": verified.data.get("read_back") if verified else None,
        "delivered_at": first["credential.delivered"].at if "credential.delivered" in first else None,
        "extensions": [
            {"at": e.at, "type": e.type, "by": e.actor.id} for e in events if e.type.startswith("extension.")
        ],
        "ended": ended,
        "removal": _removal(confirmed, ended) if confirmed else None,
        "retries": len(of("revocation.retrying")),
        "residual": _residual(first.get("credential.issued"), confirmed),
        "review": _at_and_data(first.get("review.completed"), "command", by=True),
        "last_event": {"type": events[-1].type, "at": events[-1].at} if events else None,
    }
