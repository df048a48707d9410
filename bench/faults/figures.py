"""What a chaos run found, per provider: credentials seen alive past their grant's expiry (and by
how much), revocation.confirmed lateness from the ledger, double issuance, chains verified, missing
and duplicated events, what the workers' expiry backstops did; and which checks failed."""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from datetime import datetime
from pathlib import Path

from jitaccess.ledger import Ledger

from . import ENDED
from .inject import Window
from .poller import Poller

# event types a grant's chain holds at most once (a second one is a duplicated event)
ONCE = (
    "grant.requested",
    "policy.decided",
    "grant.approved",
    "credential.issued",
    "fulfilment.verified",
    "grant.expired",
    "revocation.confirmed",
)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def checks(r: dict) -> dict[str, bool]:
    """What fails a run, per provider (STS included: alive = not yet denied)."""
    return {
        "alive_over_2s_past_expiry": bool(r["alive_past_expiry_over_2s"]),
        "not_issued": r["issued"] < r["grants"],
        "not_revoked": r["states"].get("revoked", 0) < r["grants"],
        "chain_not_verified": r["chains_verified"] < r["grants"],
        "double_issuance": bool(r["double_issuance"]),
        "missing_events": bool(r["missing_events"]),
        "duplicated_events": bool(r["duplicated_events"]),
    }


def failed_checks(by_provider: dict[str, dict]) -> dict[str, list[str]]:
    return {
        p: [k for k, failed in checks(r).items() if failed] for p, r in by_provider.items() if any(checks(r).values())
    }


def nondeterminism(workdir: Path) -> dict[str, int]:
    """Workflow runs a worker could not replay (SDK `Nondeterminism error` log lines, by run ID)."""
    runs: Counter[str] = Counter()
    for path in workdir.glob("worker-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if "Nondeterminism" in line and (
                m := re.search(r"run_id.{0,30}?([0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12})", line)
            ):
                runs[m.group(1)] += 1
    return dict(runs)


def backstop_log(workdir: Path) -> list[dict]:
    """The workers' `backstop.revoked` lines (JSON lines in their logs)."""
    found = []
    for path in workdir.glob("worker-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if '"backstop.revoked"' in line:
                with contextlib.suppress(ValueError):
                    found.append(json.loads(line))
    return found


def _evidence(ledger: Ledger, poller: Poller, grants: dict[str, dict], ids: list[str]) -> dict[str, int]:
    """Chains verified, double issuance, missing and duplicated events, revocations found already gone."""
    ev = {"chains_verified": 0, "double_issuance": 0, "missing_events": 0, "duplicated_events": 0}
    already_gone = 0
    for gid in ids:
        events = ledger.events(gid)
        ev["chains_verified"] += ledger.verify(gid).ok
        counts = Counter(e.type for e in events)
        ev["double_issuance"] += counts["credential.issued"] > 1 or poller.vault_tokens_max.get(gid, 0) > 1
        holes = [e.seq for i, e in enumerate(events, 1) if e.seq != i]
        emitted = grants[gid].get("events")
        ev["missing_events"] += bool(holes) or (emitted is not None and len(events) < emitted)
        ev["duplicated_events"] += any(counts[t] > 1 for t in ONCE)
        already_gone += any(e.type == "revocation.confirmed" and e.data.get("already_gone") for e in events)
    return {**ev, "revocations_found_already_gone": already_gone}


def _lateness(ledger: Ledger, poller: Poller, grants: dict[str, dict], ids: list[str]) -> tuple[list, list]:
    """Per issued grant: last seen alive - expires_at; each revocation.confirmed - expires_at."""
    past, confirmed = [], []
    for gid in ids:
        exp = grants[gid].get("expires_at")
        if exp is None:
            continue
        last = poller.last_alive.get(gid)
        past.append((last - exp).total_seconds() if last else float("-inf"))
        for ev in ledger.events(gid):
            if ev.type == "revocation.confirmed":
                at = datetime.fromisoformat(ev.at.replace("Z", "+00:00"))
                confirmed.append((at - exp).total_seconds())
    return past, confirmed


def _seconds(xs: list[float], p: float | None = None) -> float | None:
    if not xs:
        return None
    return round(pct(xs, p) if p is not None else max(xs), 3)


def provider_figures(
    ledger: Ledger, poller: Poller, grants: dict[str, dict], provider: str, windows: list[Window], backstop: list[dict]
) -> dict:
    ids = [g for g, v in grants.items() if v["provider"] == provider]
    evidence = _evidence(ledger, poller, grants, ids)
    past, confirmed = _lateness(ledger, poller, grants, ids)
    acted = [b for b in backstop if b.get("provider") == provider]
    alive_past = [x for x in past if x > 0]
    in_fault = sum(
        1
        for gid in ids
        if (exp := grants[gid].get("expires_at")) is not None and any(a <= exp <= b for _f, a, b in windows)
    )
    states = {s: sum(grants[g].get("state") == s for g in ids) for s in ENDED | {None}}
    return {
        "grants": len(ids),
        "issued": len(past),
        "expired_during_a_fault": in_fault,
        "states": dict(sorted(states.items(), key=str)),
        "alive_past_expiry": len(alive_past),
        "alive_past_expiry_over_2s": sum(x > 2 for x in alive_past),
        "worst_lateness_s": round(max(past), 3) if past and max(past) != float("-inf") else None,
        "revocation_confirmed_lateness_p50_s": _seconds(confirmed, 50),
        "revocation_confirmed_lateness_p99_s": _seconds(confirmed, 99),
        "revocation_confirmed_lateness_max_s": _seconds(confirmed),
        "revocations_found_already_gone": evidence.pop("revocations_found_already_gone"),
        "backstop_actions": len(acted),
        "backstop_lateness_max_s": max((b["lateness_seconds"] for b in acted), default=None),
        **evidence,
        "poll_errors": poller.errors.get(provider, 0),
    }
