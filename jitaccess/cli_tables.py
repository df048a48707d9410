"""Tables for the CLI that never cut an identifier.

A grant, onboarding or reconciliation ID (and other machine words: states, entitlement IDs,
users, hashes) is copied and pasted from the CLI's output, so it is never truncated ("grant-01m8…")
and never folded: such columns are `no_wrap`. Only free text (descriptions, reasons, details)
wraps. On a terminal the table takes the terminal's width, or more when the identifiers need more
(the terminal then wraps the long lines, nothing is lost); piped into another program, each row is
one whole line at the table's natural width, whatever COLUMNS says."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.measure import Measurement
from rich.table import Column, Table

_TD = TypeAdapter(timedelta)


def ident(header: str, **kw: Any) -> Column:
    """A column of identifiers: never truncated, never wrapped."""
    return Column(header, no_wrap=True, overflow="ignore", **kw)


def text(header: str, **kw: Any) -> Column:
    """A column of free text: wraps (long words fold) when the table is narrow."""
    return Column(header, overflow="fold", **kw)


def print_table(console: Console, table: Table) -> None:
    natural = Measurement.get(console, console.options.update_width(100_000), table)
    width = console.width if console.is_terminal else max(console.width, natural.maximum)
    width = max(width, natural.minimum)  # identifiers first: wider than the terminal if they need it
    saved = console.width
    try:
        console.width = width
        console.print(table, crop=False)
    finally:
        console.width = saved


def duration(v: Any) -> str:
    """`PT1H30M` (or seconds) as `1h 30m`; anything else as given."""
    try:
        td = v if isinstance(v, timedelta) else _TD.validate_python(v)
    except ValidationError:
        return "" if v is None else str(v)
    secs, parts = int(td.total_seconds()), []
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if secs >= n:
            parts.append(f"{secs // n}{unit}")
            secs %= n
    return " ".join(parts) or "0s"


def approval_rule(e: dict[str, Any]) -> str:
    """Who approves a catalogue entry, staged rules included (e.g. `1 of platform-leads, then 1 of
    security`), with its auto-approval rules."""
    a = e.get("approval") or {}
    if a.get("auto_approve"):
        return "auto"
    stages = a.get("stages") or []
    if not stages and a.get("approver_groups"):
        stages = [{"approver_groups": a["approver_groups"], "min_approvals": a.get("min_approvals", 1)}]
    joiner = ", then " if a.get("stage_order", "sequential") == "sequential" else " and "
    out = joiner.join(f"{s.get('min_approvals', 1)} of {', '.join(s.get('approver_groups', []))}" for s in stages)
    for r in a.get("auto_rules") or []:
        cond = f" up to {duration(r['max_duration'])}" if r.get("max_duration") else ""
        who = f" for {', '.join(r['requester_groups'])}" if r.get("requester_groups") else ""
        out += f"; auto{who}{cond}"
    if e.get("approver_auth"):
        out += "; approvers step up"
    return out or "approval"


def break_glass(e: dict[str, Any]) -> str:
    bg = e.get("break_glass")
    if not bg:
        return "no"
    return f"up to {duration(bg.get('max_duration'))} ({', '.join(bg.get('groups', []))})"
