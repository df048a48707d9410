"""Governance analytics over the ledger (`jitaccess report`): the drift an auditor looks for.

For the grants *requested* in the window [since, until):
- approval latency (request → grant.approved, approval-rule grants only) p50 / p90 / max per
  entitlement;
- outcomes (approved, denied by policy, denied by an approver, approval expired, cancelled,
  issue refused/failed) and denial reasons (policy reason codes; `approver` for a person's no);
- break-glass volume per entitlement, and review compliance: reviewed, reviewed by the deadline,
  overdue, not justified, still unreviewed;
- expiry → revocation lag (the scheduled expiry → the confirmed removal) p50 / p90 / max per provider;
- recurring requests: a requester asking for the same entitlement `recurring_threshold` times or
  more — a candidate for a standing role.

Percentiles are nearest-rank (the smallest value with at least p% of values at or below it), so
they are always values that occurred. Pure over events (`analyse`); `governance_report` reads them.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from jitaccess.domain.events import IdentityEvent, parse_at
from jitaccess.ledger import Ledger
from jitaccess.ledger.store import _event, identity_events


def percentile(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _stats(values: Sequence[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "max": max(values) if values else None,
    }


def _secs(a: str, b: str) -> float:
    return round((parse_at(b) - parse_at(a)).total_seconds(), 3)


def _outcome(first: dict[str, IdentityEvent]) -> tuple[str, list[str]]:
    """How a grant's request ended, and its denial reasons (policy reason codes; `approver` for a person's no)."""
    dec, approved = first.get("policy.decided"), first.get("grant.approved")
    if dec is not None and dec.data.get("outcome") == "deny":
        return "denied_by_policy", list(dec.data.get("reason_codes") or ["unspecified"])
    if "approval.denied" in first:
        return "denied_by_approver", ["approver"]
    if "approval.expired" in first:
        return "approval_expired", []
    if "grant.cancelled" in first and approved is None:
        return "cancelled", []
    for event_type, outcome in (
        ("credential.issue_refused", "issue_refused"),
        ("credential.issue_failed", "issue_failed"),
    ):
        if event_type in first:
            return outcome, []
    return ("approved" if approved is not None else "pending"), []


def _revocation_lag(first: dict[str, IdentityEvent]) -> tuple[str, float] | None:
    """The provider, and seconds from the scheduled expiry to the confirmed removal."""
    expired, confirmed, issued = (
        first.get("grant.expired"),
        first.get("revocation.confirmed"),
        first.get("credential.issued"),
    )
    if expired is None or confirmed is None:
        return None
    due = expired.data.get("expires_at")
    start = parse_at(due).isoformat() if due else expired.at
    provider = str((issued.data.get("provider") if issued else None) or "unknown")
    return provider, _secs(start, confirmed.at)


@dataclass
class _Tally:
    """What `analyse` counts over the grants in the window."""

    grants: int = 0
    latency: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    lag: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    asks: Counter[tuple[str, str]] = field(default_factory=Counter)
    bg_volume: Counter[str] = field(default_factory=Counter)
    review: Counter[str] = field(
        default_factory=lambda: Counter(
            {"break_glass": 0, "reviewed": 0, "on_time": 0, "overdue": 0, "not_justified": 0, "pending": 0}
        )
    )

    def add_review(self, first: dict[str, IdentityEvent]) -> None:
        """A break-glass grant's post-hoc review: done, on time, overdue, justified."""
        self.review["break_glass"] += 1
        done, asked = first.get("review.completed"), first.get("review.requested")
        if "review.overdue" in first:
            self.review["overdue"] += 1
        if done is None:
            self.review["pending"] += 1
            return
        self.review["reviewed"] += 1
        deadline = asked.data.get("deadline") if asked else None
        if deadline and parse_at(done.at) <= parse_at(deadline):
            self.review["on_time"] += 1
        if done.data.get("outcome") == "not_justified":
            self.review["not_justified"] += 1

    def add_grant(self, req: IdentityEvent, first: dict[str, IdentityEvent]) -> None:
        self.grants += 1
        ent = str(req.data.get("entitlement"))
        self.asks[(req.actor.id, ent)] += 1
        outcome, reasons = _outcome(first)
        self.outcomes[outcome] += 1
        self.reasons.update(reasons)
        approved = first.get("grant.approved")
        if approved is not None and not approved.data.get("auto_approved") and not approved.data.get("break_glass"):
            self.latency[ent].append(_secs(req.at, approved.at))
        if req.data.get("break_glass"):
            self.bg_volume[ent] += 1
            self.add_review(first)
        if lag := _revocation_lag(first):
            self.lag[lag[0]].append(lag[1])

    def report(self, since: str | None, until: str | None, recurring_threshold: int) -> dict[str, Any]:
        review = self.review
        return {
            "window": {"since": since, "until": until},
            "grants": self.grants,
            "approval_latency_seconds": {k: _stats(v) for k, v in sorted(self.latency.items())},
            "outcomes": dict(sorted(self.outcomes.items())),
            "denial_reasons": dict(self.reasons.most_common()),
            "break_glass": {
                "volume": sum(self.bg_volume.values()),
                "by_entitlement": dict(sorted(self.bg_volume.items())),
                "reviews": dict(review),
                "review_compliance": round(review["on_time"] / review["break_glass"], 3)
                if review["break_glass"]
                else None,
            },
            "expiry_to_revocation_seconds": {k: _stats(v) for k, v in sorted(self.lag.items())},
            "recurring_requests": [
                {"requester": who, "entitlement": ent, "requests": n}
                for (who, ent), n in sorted(self.asks.items(), key=lambda kv: (-kv[1], kv[0]))
                if n >= recurring_threshold
            ],
        }


def analyse(
    events: Iterable[IdentityEvent], since: str | None = None, until: str | None = None, recurring_threshold: int = 3
) -> dict[str, Any]:
    chains: dict[str, list[IdentityEvent]] = defaultdict(list)
    for ev in events:
        chains[ev.grant_id].append(ev)
    tally = _Tally()
    for evs in chains.values():
        evs.sort(key=lambda e: e.seq)
        first: dict[str, IdentityEvent] = {}
        for ev in evs:
            first.setdefault(ev.type, ev)
        req = first.get("grant.requested")
        if req is None or (since and req.at < since) or (until and req.at >= until):
            continue  # not a grant (delegation, reconciliation, onboarding) or outside the window
        tally.add_grant(req, first)
    return tally.report(since, until, recurring_threshold)


def governance_report(
    ledger: Ledger, since: str | None = None, until: str | None = None, recurring_threshold: int = 3
) -> dict[str, Any]:
    """Reads every chain with a grant.requested in the window (whole chains: a grant requested in
    the window may end after it)."""
    with ledger.engine.connect() as conn:
        q = select(identity_events.c.grant_id).where(identity_events.c.type == "grant.requested")
        if since:
            q = q.where(identity_events.c.at >= since)
        if until:
            q = q.where(identity_events.c.at < until)
        ids = sorted({r[0] for r in conn.execute(q)})
        events: list[IdentityEvent] = []
        for i in range(0, len(ids), 500):
            rows = conn.execute(select(identity_events).where(identity_events.c.grant_id.in_(ids[i : i + 500])))
            events += [_event(r) for r in rows]
    return analyse(events, since, until, recurring_threshold)


def _stats_table(stats: dict[str, dict[str, Any]], title: str, key: str, count: str) -> Table:
    t = Table(key, count, "p50 s", "p90 s", "max s", title=title)
    for k, s in stats.items():
        t.add_row(k, str(s["count"]), str(s["p50"]), str(s["p90"]), str(s["max"]))
    return t


def render_text(rep: dict[str, Any], console: Console) -> None:
    w = rep["window"]
    console.print(f"[bold]{rep['grants']} grant(s)[/bold] requested {w['since'] or 'ever'} → {w['until'] or 'now'}")
    console.print(_stats_table(rep["approval_latency_seconds"], "approval latency", "entitlement", "approvals"))
    console.print("outcomes: " + ", ".join(f"{k} {v}" for k, v in rep["outcomes"].items()))
    if rep["denial_reasons"]:
        console.print("denial reasons: " + ", ".join(f"{k} {v}" for k, v in rep["denial_reasons"].items()))
    bg = rep["break_glass"]
    r = bg["reviews"]
    console.print(
        f"break-glass: {bg['volume']} ({', '.join(f'{k} {v}' for k, v in bg['by_entitlement'].items()) or 'none'}); "
        f"reviewed {r['reviewed']}, on time {r['on_time']}, overdue {r['overdue']}, not justified "
        f"{r['not_justified']}, unreviewed {r['pending']}"
    )
    lag = rep["expiry_to_revocation_seconds"]
    console.print(_stats_table(lag, "expiry → revocation confirmed", "provider", "revocations"))
    for x in rep["recurring_requests"]:
        console.print(
            f"[yellow]recurring:[/yellow] {x['requester']} asked for {x['entitlement']} {x['requests']} times "
            "— a standing role?"
        )
