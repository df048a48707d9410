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
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from jitaccess.domain.events import IdentityEvent
from jitaccess.domain.evidence import parse_at
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


def analyse(
    events: Iterable[IdentityEvent], since: str | None = None, until: str | None = None, recurring_threshold: int = 3
) -> dict[str, Any]:
    chains: dict[str, list[IdentityEvent]] = defaultdict(list)
    for ev in events:
        chains[ev.grant_id].append(ev)
    latency: dict[str, list[float]] = defaultdict(list)
    lag: dict[str, list[float]] = defaultdict(list)
    outcomes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    asks: Counter[tuple[str, str]] = Counter()
    bg_volume: Counter[str] = Counter()
    review = Counter({"break_glass": 0, "reviewed": 0, "on_time": 0, "overdue": 0, "not_justified": 0, "pending": 0})
    grants = 0
    for evs in chains.values():
        evs.sort(key=lambda e: e.seq)
        first: dict[str, IdentityEvent] = {}
        for ev in evs:
            first.setdefault(ev.type, ev)
        req = first.get("grant.requested")
        if req is None or (since and req.at < since) or (until and req.at >= until):
            continue  # not a grant (delegation, reconciliation, onboarding) or outside the window
        grants += 1
        ent = str(req.data.get("entitlement"))
        asks[(req.actor.id, ent)] += 1
        dec = first.get("policy.decided")
        approved = first.get("grant.approved")
        if dec is not None and dec.data.get("outcome") == "deny":
            outcomes["denied_by_policy"] += 1
            reasons.update(dec.data.get("reason_codes") or ["unspecified"])
        elif "approval.denied" in first:
            outcomes["denied_by_approver"] += 1
            reasons["approver"] += 1
        elif "approval.expired" in first:
            outcomes["approval_expired"] += 1
        elif "grant.cancelled" in first and approved is None:
            outcomes["cancelled"] += 1
        elif "credential.issue_refused" in first:
            outcomes["issue_refused"] += 1
        elif "credential.issue_failed" in first:
            outcomes["issue_failed"] += 1
        elif approved is not None:
            outcomes["approved"] += 1
        else:
            outcomes["pending"] += 1
        if approved is not None and not approved.data.get("auto_approved") and not approved.data.get("break_glass"):
            latency[ent].append(_secs(req.at, approved.at))
        if req.data.get("break_glass"):
            bg_volume[ent] += 1
            review["break_glass"] += 1
            done, asked = first.get("review.completed"), first.get("review.requested")
            if "review.overdue" in first:
                review["overdue"] += 1
            if done is None:
                review["pending"] += 1
            else:
                review["reviewed"] += 1
                deadline = asked.data.get("deadline") if asked else None
                if deadline and parse_at(done.at) <= parse_at(deadline):
                    review["on_time"] += 1
                if done.data.get("outcome") == "not_justified":
                    review["not_justified"] += 1
        expired, confirmed, issued = (
            first.get("grant.expired"),
            first.get("revocation.confirmed"),
            first.get("credential.issued"),
        )
        if expired is not None and confirmed is not None:
            due = expired.data.get("expires_at")
            start = parse_at(due).isoformat() if due else expired.at
            provider = str((issued.data.get("provider") if issued else None) or "unknown")
            lag[provider].append(round((parse_at(confirmed.at) - parse_at(start)).total_seconds(), 3))
    return {
        "window": {"since": since, "until": until},
        "grants": grants,
        "approval_latency_seconds": {k: _stats(v) for k, v in sorted(latency.items())},
        "outcomes": dict(sorted(outcomes.items())),
        "denial_reasons": dict(reasons.most_common()),
        "break_glass": {
            "volume": sum(bg_volume.values()),
            "by_entitlement": dict(sorted(bg_volume.items())),
            "reviews": dict(review),
            "review_compliance": round(review["on_time"] / review["break_glass"], 3) if review["break_glass"] else None,
        },
        "expiry_to_revocation_seconds": {k: _stats(v) for k, v in sorted(lag.items())},
        "recurring_requests": [
            {"requester": who, "entitlement": ent, "requests": n}
            for (who, ent), n in sorted(asks.items(), key=lambda kv: (-kv[1], kv[0]))
            if n >= recurring_threshold
        ],
    }


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


def render_text(rep: dict[str, Any], console: Console) -> None:
    w = rep["window"]
    console.print(f"[bold]{rep['grants']} grant(s)[/bold] requested {w['since'] or 'ever'} → {w['until'] or 'now'}")
    t = Table("entitlement", "approvals", "p50 s", "p90 s", "max s", title="approval latency")
    for ent, s in rep["approval_latency_seconds"].items():
        t.add_row(ent, str(s["count"]), str(s["p50"]), str(s["p90"]), str(s["max"]))
    console.print(t)
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
    t = Table("provider", "revocations", "p50 s", "p90 s", "max s", title="expiry → revocation confirmed")
    for p, s in rep["expiry_to_revocation_seconds"].items():
        t.add_row(p, str(s["count"]), str(s["p50"]), str(s["p90"]), str(s["max"]))
    console.print(t)
    for x in rep["recurring_requests"]:
        console.print(
            f"[yellow]recurring:[/yellow] {x['requester']} asked for {x['entitlement']} {x['requests']} times "
            "— a standing role?"
        )
