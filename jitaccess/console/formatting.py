"""How the console writes durations, times and approval rules for people (also its Jinja filters)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

_TD = TypeAdapter(timedelta)


def parse_duration(v: Any) -> timedelta | None:
    if v is None or v == "":
        return None
    if isinstance(v, int | float):
        return timedelta(seconds=v)
    try:
        return _TD.validate_python(v)
    except ValidationError:
        return None


def human_duration(v: Any) -> str:
    td = v if isinstance(v, timedelta) else parse_duration(v)
    if td is None:
        return "" if v in (None, "") else str(v)
    secs = int(td.total_seconds())
    if secs <= 0:
        return "0s"
    parts = []
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if secs >= n:
            parts.append(f"{secs // n}{unit}")
            secs %= n
    return " ".join(parts[:2])


def parse_time(v: Any) -> datetime | None:
    if not v:
        return None
    try:
        t = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def time_left(expires_at: Any, now: datetime | None = None) -> str:
    t = parse_time(expires_at)
    if t is None:
        return ""
    left = t - (now or datetime.now(UTC))
    return "expired" if left.total_seconds() <= 0 else human_duration(timedelta(seconds=int(left.total_seconds())))


def short_time(v: Any) -> str:
    t = parse_time(v)
    return t.strftime("%Y-%m-%d %H:%M:%S UTC") if t else ("" if v is None else str(v))


def approvers_of(e: dict[str, Any]) -> str:
    """Who approves an entitlement, in words (from the catalogue entry as the API shows it)."""
    a = e.get("approval") or {}
    if a.get("auto_approve"):
        return "auto-approved"
    parts = []
    stages = a.get("stages") or []
    if not stages and a.get("approver_groups"):
        stages = [{"approver_groups": a["approver_groups"], "min_approvals": a.get("min_approvals", 1)}]
    order = " then " if a.get("stage_order", "sequential") == "sequential" else " and "
    parts.append(
        order.join(f"{s.get('min_approvals', 1)} of {', '.join(s.get('approver_groups', []))}" for s in stages)
    )
    for r in a.get("auto_rules") or []:
        cond = f" up to {human_duration(r['max_duration'])}" if r.get("max_duration") else ""
        who = f" for {', '.join(r['requester_groups'])}" if r.get("requester_groups") else ""
        parts.append(f"auto-approved{who}{cond} ({r['name']})")
    if e.get("approver_auth"):
        parts.append("approvers need a step-up sign-in")
    return "; ".join(p for p in parts if p) or "approval"


def pretty_json(v: Any) -> str:
    return json.dumps(v, indent=2, sort_keys=True, default=str)


FILTERS = {
    "duration": human_duration,
    "left": time_left,
    "when": short_time,
    "approvers": approvers_of,
    "tojson_pretty": pretty_json,
}
