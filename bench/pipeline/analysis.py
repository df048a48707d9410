"""The figures: per grant from the ledger's identity events, Temporal's view from the workflow
histories, and what went wrong from the logs. Percentiles use the floor's method."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .sampling import Progress


def pct(xs, p):
    """The floor's percentile (nearest rank on the sorted list), so figures compare."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def summary(xs: list[float]) -> dict | None:
    if not xs:
        return None
    return {"n": len(xs), "p50": pct(xs, 50), "p99": pct(xs, 99), "max": max(xs), "min": min(xs)}


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


# --------------------------------------------------------------------------- per grant, from the ledger
@dataclass
class GrantFigures:
    per: list[dict] = field(default_factory=list)
    stragglers: list[dict] = field(default_factory=list)
    verify_fail: list[dict] = field(default_factory=list)
    all_ids: list[str] = field(default_factory=list)
    known: dict[str, dict] = field(default_factory=dict)


def grant_record(gid: str, rec: dict, evs: list[Any], known: bool) -> dict:
    """One grant's timings (epoch seconds) from the client's record and its identity events."""
    by: dict[str, Any] = {}
    for e in evs:
        by.setdefault(e.type, e)
    g: dict = {
        "grant_id": gid,
        "events": len(evs),
        "last_event": evs[-1].type if evs else None,
        "known_to_client": known,
    }
    for k in ("sent", "queued", "responded"):
        if k in rec:
            g[k] = rec[k]
    if "grant.requested" in by:
        g["requested_at"] = ts(by["grant.requested"].at)
    if "fulfilment.verified" in by:
        g["verified_at"] = ts(by["fulfilment.verified"].at)
    if "credential.issued" in by:
        g["expires_at"] = ts(by["credential.issued"].data["expires_at"])
    if "grant.expired" in by:
        g["expired_at"] = ts(by["grant.expired"].at)
    if "revocation.confirmed" in by:
        g["confirmed_at"] = ts(by["revocation.confirmed"].at)
        g["attempts"] = by["revocation.confirmed"].data.get("attempts")
        g["already_gone"] = bool(by["revocation.confirmed"].data.get("already_gone"))
    g["retrying_events"] = sum(1 for e in evs if e.type == "revocation.retrying")
    return g


async def grant_figures(ledger: Any, requests: list[dict], exclude: frozenset[str] = frozenset()) -> GrantFigures:
    """Every grant the client or the ledger knows, but for `exclude` (an earlier phase's): its timings,
    its chain verified, and the ones that never had their revocation confirmed (stragglers)."""
    out = GrantFigures(known={r["grant_id"]: r for r in requests if r.get("grant_id")})
    # chains of grants only: the stack's scheduled reconciliation and checkpoint runs have chains too
    in_ledger = [g for g in await asyncio.to_thread(ledger.grant_ids) if g.startswith("grant-") and g not in exclude]
    out.all_ids = list(dict.fromkeys(list(out.known) + in_ledger))
    for gid in out.all_ids:
        evs = await asyncio.to_thread(ledger.events, gid)
        g = grant_record(gid, out.known.get(gid, {}), evs, gid in out.known)
        v = await asyncio.to_thread(ledger.verify, gid)
        g["chain_ok"] = v.ok
        if not v.ok:
            out.verify_fail.append({"grant_id": gid, "problem": v.problem, "first_broken": v.first_broken})
        if "confirmed_at" not in g:
            row = await asyncio.to_thread(ledger.grant, gid)
            out.stragglers.append(
                {"grant_id": gid, "state": (row or {}).get("state"), "last_event": g["last_event"], "events": len(evs)}
            )
        out.per.append(g)
    return out


def http_figures(requests: list[dict], sent0: float) -> dict:
    errors = [r for r in requests if "error" in r]
    return {
        "accepted": sum(1 for r in requests if r.get("status") == 202),
        "errors": len(errors),
        "error_samples": [{"status": r.get("status"), "error": r["error"]} for r in errors[:5]],
        "error_kinds": dict(Counter(str(r.get("status") or r["error"].split(":")[0]) for r in errors)),
        "post_latency_ms": summary([(r["responded"] - r["sent"]) * 1000 for r in requests if "responded" in r]),
        "send_spread_ms": (max(r["sent"] for r in requests) - sent0) * 1000 if requests else None,
        "states_at_response": dict(Counter(r.get("state") for r in requests if r.get("grant_id"))),
    }


def pipeline_figures(
    n: int, ttl: int, requests: list[dict], grants: GrantFigures, progress: Progress, t0: float
) -> dict:
    """The pipeline's figures (throughput, latencies and their breakdown, revocations, chains)."""
    per = grants.per
    ms = lambda a, b: [(x[a] - x[b]) * 1000 for x in per if a in x and b in x]
    sent0 = min(r["sent"] for r in requests) if requests else t0
    confirmed = [x["confirmed_at"] for x in per if "confirmed_at" in x]
    wall = (max(confirmed) - sent0) if confirmed else None
    wall_observed = (progress.revoked_seen_at - sent0) if progress.revoked_seen_at else None
    errors = [r for r in requests if "error" in r]
    return {
        "n_requested": n,
        "http": http_figures(requests, sent0),
        "ledger_read_errors": dict(progress.read_errors),
        "grants_in_ledger": len(grants.all_ids),
        "grants_unknown_to_client": len(grants.all_ids) - len(grants.known),
        "revoked": len(confirmed),
        "revoked_already_gone": sum(1 for x in per if x.get("already_gone")),
        "stragglers": grants.stragglers,
        "wall_s": wall,
        "wall_observed_s": wall_observed,
        "lifecycles_per_s": n / max(wall - ttl, 1e-9) if wall and len(confirmed) == n and not errors else None,
        "lifecycles_per_s_completed": len(confirmed) / max(wall - ttl, 1e-9) if wall else None,
        "request_to_active_ms": summary(ms("verified_at", "sent")),
        "request_to_active_incl_client_queue_ms": summary(ms("verified_at", "queued")),
        "expiry_to_confirmed_ms": summary(ms("confirmed_at", "expires_at")),
        "breakdown_ms": {
            "send_to_grant_requested": summary(ms("requested_at", "sent")),
            "  send_to_workflow_started (API + StartWorkflowExecution)": summary(ms("wf_started_at", "sent")),
            "  workflow_started_to_first_task (grant.requested)": summary(ms("requested_at", "wf_started_at")),
            "grant_requested_to_verified": summary(ms("verified_at", "requested_at")),
            "expires_at_to_grant_expired (timer lateness)": summary(ms("expired_at", "expires_at")),
            "grant_expired_to_confirmed (revoke activity)": summary(ms("confirmed_at", "expired_at")),
            "evidence: expires_at_to_revocation.confirmed.at": summary(ms("confirmed_evidence_at", "expires_at")),
            "evidence: grant_requested_to_fulfilment.verified.at": summary(ms("verified_evidence_at", "requested_at")),
        },
        "revocation_attempts": dict(Counter(str(x.get("attempts")) for x in per if "attempts" in x)),
        "revocation_retrying_events": sum(x["retrying_events"] for x in per),
        "chains": {
            "verified": sum(1 for x in per if x["chain_ok"]),
            "total": len(per),
            "failures": grants.verify_fail[:10],
        },
    }


# --------------------------------------------------------------------------- Temporal's view
SPANS = (
    "wft_schedule_to_start",
    "wft_start_to_complete (first task: new workflow)",
    "wft_start_to_complete (with ledger-flush local activity)",
    "wft_start_to_complete (other)",
    "activity_schedule_to_start",
    "activity_start_to_close",
    "timer_started_after_its_task_began",
    "timer_fired_late_by_server",
)


@dataclass
class HistoryScan:
    spans: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in SPANS})
    bad: Counter = field(default_factory=Counter)
    bad_grants: dict[str, list[str]] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    # per grant, the start of the workflow task after the issue's / the (last) revoke's answer: the
    # workflow.now() the floor stamps its active / confirmed with, so the two compare step for step
    # (our evidence is stamped with the activity's own time, a workflow task earlier)
    task_after: dict[str, dict[str, float]] = field(default_factory=dict)
    sizes: dict[str, list[float]] = field(default_factory=lambda: {"events": [], "bytes": []})
    # per grant, its history from the first workflow task's start to the task after the issue's
    # answer (active): (ms since the first task began, event name), to split the slowest grants' time
    to_active: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    # per grant, when its first workflow task began (epoch s): where in the burst the slow ones fall
    first_task_at: dict[str, float] = field(default_factory=dict)
    # per grant, per activity type, its first attempt's (scheduled, started): what overtook what in matching
    activity_times: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    # the activities whose answers make a grant active / confirmed (the floor's: verify_active, verify_revoked)
    active_after: str = "issue_credential"
    confirmed_after: str = "revoke_credential"

    def add(self, gid: str, evs: Any) -> None:
        """One workflow history's task queueing and execution spans, timers and task failures."""
        from temporalio.api.enums.v1 import EventType as E

        # what Temporal stores and ships per grant (payloads as the codec left them)
        self.sizes["events"].append(len(evs))
        self.sizes["bytes"].append(sum(ev.ByteSize() for ev in evs))
        spans = self.spans
        t: dict[int, float] = {}
        timers: dict[int, float] = {}
        first, last_wft_started = True, None
        kinds: dict[int, str] = {}  # scheduled event id -> activity type
        answered: str | None = None  # the activity whose answer the next workflow task takes
        after = self.task_after.setdefault(gid, {})
        path: list[tuple[float, str]] = []
        began: float | None = None
        for i, ev in enumerate(evs):
            at = ev.event_time.ToDatetime().timestamp()
            name = E.Name(ev.event_type).removeprefix("EVENT_TYPE_")
            t[ev.event_id] = at
            if self.active_after not in after:
                began = at if began is None and name == "WORKFLOW_TASK_STARTED" else began
                if began is not None:
                    path.append(((at - began) * 1000, name))
            if name == "WORKFLOW_EXECUTION_STARTED":
                self.started[gid] = at
            elif name == "WORKFLOW_TASK_STARTED":
                last_wft_started = at
                if answered is not None:
                    after[answered], answered = at, None
                spans["wft_schedule_to_start"].append(
                    (at - t[ev.workflow_task_started_event_attributes.scheduled_event_id]) * 1000
                )
            elif name == "WORKFLOW_TASK_COMPLETED":
                took = (at - t[ev.workflow_task_completed_event_attributes.started_event_id]) * 1000
                marker = i + 1 < len(evs) and evs[i + 1].event_type == E.EVENT_TYPE_MARKER_RECORDED
                kind = (
                    "first task: new workflow" if first else "with ledger-flush local activity" if marker else "other"
                )
                spans[f"wft_start_to_complete ({kind})"].append(took)
                first = False
            elif name == "ACTIVITY_TASK_STARTED":
                scheduled = ev.activity_task_started_event_attributes.scheduled_event_id
                spans["activity_schedule_to_start"].append((at - t[scheduled]) * 1000)
                self.activity_times.setdefault(gid, {}).setdefault(kinds.get(scheduled, "?"), (t[scheduled], at))
            elif name == "ACTIVITY_TASK_SCHEDULED":
                kinds[ev.event_id] = ev.activity_task_scheduled_event_attributes.activity_type.name
            elif name == "ACTIVITY_TASK_COMPLETED":
                kind = kinds.get(ev.activity_task_completed_event_attributes.scheduled_event_id)
                answered = kind if kind in (self.active_after, self.confirmed_after) else answered
                spans["activity_start_to_close"].append(
                    (at - t[ev.activity_task_completed_event_attributes.started_event_id]) * 1000
                )
            elif name == "TIMER_STARTED":
                timers[ev.event_id] = (
                    at + ev.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta().total_seconds()
                )
                if last_wft_started is not None:  # workflow.now() is the task's start: the timer runs late by this much
                    spans["timer_started_after_its_task_began"].append((at - last_wft_started) * 1000)
            elif name == "TIMER_FIRED" and ev.timer_fired_event_attributes.started_event_id in timers:
                spans["timer_fired_late_by_server"].append(
                    (at - timers[ev.timer_fired_event_attributes.started_event_id]) * 1000
                )
            if name.endswith(("_TIMED_OUT", "_FAILED")):
                self.bad[name] += 1
                self.bad_grants.setdefault(gid, []).append(name)
        self.to_active[gid] = path if self.active_after in after else []
        if began is not None:
            self.first_task_at[gid] = began


def path_segments(path: list[tuple[float, str]]) -> dict[str, float]:
    """A grant's way to active split into spans, each named by the event that ends it, numbered in
    order (the same path gives the same names, so grants compare span by span)."""
    return {f"{i:02d} → {name}": b - a for i, ((a, _), (b, name)) in enumerate(zip(path, path[1:]), 1)}


def slowest_to_active(
    to_active: dict[str, list[tuple[float, str]]], first_task_at: dict[str, float], share: float = 0.05
) -> dict:
    """Where the slowest `share` of grants' first task → active goes: the mean of each span over
    the slowest, and over the rest; and when in the burst their first tasks began, with first task →
    active per second of the burst (by when each grant's first task began)."""
    done = {g: p for g, p in to_active.items() if p and p[-1][1] == "WORKFLOW_TASK_STARTED"}
    if not done:
        return {}
    order = sorted(done, key=lambda g: done[g][-1][0])
    k = max(1, round(len(order) * share))
    mean = lambda gs: {
        name: sum(path_segments(done[g]).get(name, 0.0) for g in gs) / len(gs) for name in path_segments(done[gs[-1]])
    }
    out = {
        "grants": len(order),
        "slowest": k,
        "slowest_mean_ms": mean(order[-k:]),
        "rest_mean_ms": mean(order[:-k]),
    }
    began = {g: first_task_at[g] for g in order if g in first_task_at}
    if began:
        zero = min(began.values())
        out["slowest_began_s"] = sorted(round(began[g] - zero, 2) for g in order[-k:] if g in began)
        by_second: dict[int, list[float]] = {}
        for g, at in began.items():
            by_second.setdefault(int(at - zero), []).append(done[g][-1][0])
        out["by_second"] = {s: summary(v) for s, v in sorted(by_second.items())}
    return out


async def scan_histories(address: str, grant_ids: list[str] | None = None, scan: HistoryScan | None = None) -> dict:
    """Temporal's view: task queueing (schedule->start) and execution (start->complete) of workflow
    tasks, activities and timers, and any task time-outs/failures (each one is a retried workflow task).
    Also, per grant, when the server accepted the start (to split the API's share from the worker's)."""
    from temporalio.client import Client

    client = await Client.connect(address)
    sem = asyncio.Semaphore(16)
    scan = scan or HistoryScan()
    if grant_ids is None:  # every workflow the server has (the floor's)
        grant_ids = [w.id async for w in client.list_workflows()]

    async def one(gid: str) -> None:
        async with sem:
            hist = await client.get_workflow_handle(gid).fetch_history()
        scan.add(gid, hist.events)

    await asyncio.gather(*[one(g) for g in grant_ids])
    return {
        "spans_ms": {k: summary(v) for k, v in scan.spans.items()},
        "history_size": {k: summary(v) for k, v in scan.sizes.items()},
        "task_failures": dict(scan.bad),
        "grants_with_task_failures": len(scan.bad_grants),
        "examples": dict(list(scan.bad_grants.items())[:5]),
        "_started": scan.started,
        "_task_after": scan.task_after,
        "slowest_to_active": slowest_to_active(scan.to_active, scan.first_task_at),
    }


# --------------------------------------------------------------------------- logs
def scan_logs(workdir: Path) -> dict:
    """What went wrong, and where: warnings/errors in the worker's log feed and the servers' logs."""
    found: dict = {}
    lvl = Counter()
    samples: list[str] = []
    ev = workdir / "events.jsonl"
    if ev.exists():
        for line in ev.read_text(errors="replace").splitlines():
            low = line.lower()
            if (
                '"level": "warning"' in low
                or '"level": "error"' in low
                or low.startswith(("warning", "error", "traceback"))
                or (not line.startswith("{") and ("error" in low or "warn" in low or "exception" in low))
            ):
                lvl["events.jsonl"] += 1
                if len(samples) < 8:
                    samples.append(line[:300])
    for p in sorted(workdir.glob("*.log")):
        txt = p.read_text(errors="replace")
        name = re.sub(r"-\d+\.log$", ".log", p.name)
        locked = txt.lower().count("database is locked") + txt.lower().count("sqlite_busy")
        tb = txt.count("Traceback")
        errs = sum(1 for line in txt.splitlines() if re.search(r'"level":"error"|\berror\b', line, re.I))
        if locked or tb or errs:
            found[name] = {
                "database_locked": locked,
                "tracebacks": tb,
                "error_lines": errs,
                "sample": [line[:300] for line in txt.splitlines() if re.search(r"error|locked|Traceback", line, re.I)][
                    :5
                ],
            }
    ev_locked = ev.read_text(errors="replace").lower().count("database is locked") if ev.exists() else 0
    return {
        "worker_log_warnings": lvl["events.jsonl"],
        "worker_log_database_locked": ev_locked,
        "worker_log_samples": samples,
        "server_logs": found,
    }
