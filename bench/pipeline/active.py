"""`--active N`: N grants held active at once (long TTL) on the one worker `dev up` runs, and what
that costs it: RSS over time while they are requested and while they are held, and the Temporal
SDK's workflow cache (sticky cache size and evictions, from /metrics), since a held grant is
resident only while its workflow is cached."""

from __future__ import annotations

import asyncio
import re
import time

import httpx

from . import log
from .analysis import grant_record, pct, scan_histories
from .analysis import summary as distribution
from .load import alice_token, fire
from .reconcile import run_reconciliations
from .sampling import Progress, background_worker_pid, ledger_states, proc_status, stack_gone, tally
from .stack import Stack

CACHE_METRICS = (
    "temporal_sticky_cache_size",
    "temporal_sticky_cache_total_forced_eviction",
    "temporal_workflow_active_thread_count",
)


async def sdk_cache(api: str) -> dict[str, float]:
    """The SDK's cache figures as /metrics serves them (absent when SDK metrics are off)."""
    try:
        async with httpx.AsyncClient(timeout=5) as c:
            text = (await c.get(api + "/metrics")).text
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    for name in CACHE_METRICS:
        vals = [float(m[1]) for m in re.finditer(rf"^{name}(?:_total)?(?:{{[^}}]*}})? ([\d.e+-]+)$", text, re.M)]
        if vals:
            out[name] = sum(vals)
    return out


async def _sample(
    dev: dict, pid: int, background: int | None, ledger, n: int, done: list[dict], progress: Progress, now: float
) -> dict:
    st = proc_status(pid)
    ours = await ledger_states(ledger, n, progress)
    _, counts = tally(done, ours)
    return {
        "t": round(now, 1),
        "requested": len(done),
        "active": counts["active"],
        "revoked": counts["revoked"],
        "failed": counts["failed"],
        "http_errors": sum(1 for d in done if "error" in d),  # never started: nothing to wait for
        "rss_mb": st.get("VmRSS", 0) / 1024,
        "background_worker_rss_mb": proc_status(background).get("VmRSS", 0) / 1024 if background else None,
        **await sdk_cache(dev["api_url"]),
    }


def _print(s: dict, n: int) -> None:
    log(
        f"  t={s['t']:6.1f}s requested {s['requested']}/{n} active {s['active']} revoked {s['revoked']} "
        f"failed {s['failed']} HTTP errors {s['http_errors']} "
        f"RSS {s['rss_mb']:.0f} MB (background {s['background_worker_rss_mb'] or 0:.0f}) cache {s.get('temporal_sticky_cache_size', '?')} "
        f"evictions {s.get('temporal_sticky_cache_total_forced_eviction', '?')}"
    )


def _summary(n: int, ttl: int, done: list[dict], samples: list[dict], all_active_at, idle: dict, end: dict) -> dict:
    held = [s for s in samples if all_active_at is not None and s["t"] >= all_active_at]
    idle_mb = idle.get("VmRSS", 0) / 1024
    rss_end = end.get("VmRSS", 0) / 1024
    active = max((s["active"] for s in samples), default=0)  # held at once (with --expire, none are at the end)
    held_max = max((s["rss_mb"] for s in held), default=None)
    return {
        "n": n,
        "ttl_s": ttl,
        "active": active,
        "http_errors": sum(1 for d in done if "error" in d),
        "seconds_to_all_active": all_active_at,
        "rss_mb": {
            "idle": idle_mb,
            "peak_VmHWM": end.get("VmHWM", 0) / 1024,
            "end": rss_end,
            "held_min": min((s["rss_mb"] for s in held), default=None),
            "held_max": held_max,
            "per_active_grant_kb": (held_max - idle_mb) * 1024 / active if active and held_max else None,
        },
        "samples": samples,
    }


def _lag_figures(lags: list[float]) -> dict:
    lags = sorted(lags)
    at = {f"p{p}": round(pct(lags, p)) for p in (50, 90, 99)} if lags else {}
    return {"confirmed": len(lags), **at, "max": round(lags[-1]) if lags else None}


async def expiry_lags(ledger, done: list[dict], windows: list[list[float]] = (), by_grant: dict | None = None) -> dict:
    """expiry -> confirmed (ms) of every grant the client started, from the ledger's events; with
    `windows` (epoch [start, end] of each reconciliation), also of those whose expiry fell inside one.
    Each grant's lag also goes into `by_grant` when given."""
    lags, inside, unconfirmed = [], [], 0
    for d in done:
        if not d.get("grant_id"):
            continue
        g = grant_record(d["grant_id"], {}, await asyncio.to_thread(ledger.events, d["grant_id"]), True)
        if "confirmed_at" in g and "expires_at" in g:
            lag = 1000 * (g["confirmed_at"] - g["expires_at"])
            lags.append(lag)
            if by_grant is not None:
                by_grant[d["grant_id"]] = lag
            if any(a <= g["expires_at"] <= b for a, b in windows):
                inside.append(lag)
        else:
            unconfirmed += 1
    out = {**_lag_figures(lags), "unconfirmed": unconfirmed}
    if windows:
        out["expiring_during_reconciliation"] = _lag_figures(inside)
    return out


async def slowest_expiries(address: str, lag_of: dict[str, float], k: int = 50) -> dict:
    """Where the tail's time went: the histories of the `k` grants confirmed latest after expiry,
    and how late Temporal fired their timers (TIMER_FIRED against its start + duration)."""
    slowest = sorted(lag_of, key=lag_of.__getitem__)[-k:]
    if not slowest:
        return {}
    scan = await scan_histories(address, slowest)
    return {
        "grants": len(slowest),
        "expiry_to_confirmed_ms": distribution([lag_of[g] for g in slowest]),
        "timer_fired_late_by_server_ms": scan["spans_ms"]["timer_fired_late_by_server"],
        "wft_schedule_to_start_ms": scan["spans_ms"]["wft_schedule_to_start"],
        "activity_schedule_to_start_ms": scan["spans_ms"]["activity_schedule_to_start"],
    }


async def run_active(
    stack: Stack,
    n: int,
    ttl: int,
    conc: int,
    hold: float,
    tick: float,
    entitlement,
    expire: bool = False,
    spread: int = 0,
    reconcile: int = 0,
    reconcile_delay: float = 0,
) -> dict:
    """With `expire`, keep sampling after the hold until every grant is revoked (TTL short enough
    that they expire in this run), then read each one's expiry -> confirmed lag. With `reconcile`,
    run that many reconciliations one after the other, `reconcile_delay` seconds after all are
    active (the sampling goes on meanwhile)."""
    from jitaccess.ledger import Ledger

    dev = stack.dev
    assert stack.proc is not None
    pid = stack.proc.pid
    ledger = Ledger(dev["ledger_url"])
    alice = await alice_token(dev)
    idle = proc_status(pid)
    background = background_worker_pid(stack.children)  # dev up's background worker process
    samples: list[dict] = []
    done: list[dict] = []
    progress = Progress()
    t0 = time.time()
    fire_task = asyncio.create_task(fire(dev["api_url"], alice, n, ttl, conc, done, entitlement, spread))
    all_active_at: float | None = None
    reconciling: asyncio.Task | None = None
    last_print = 0.0
    while True:
        await asyncio.sleep(1.0)
        now = time.time() - t0
        s = await _sample(dev, pid, background, ledger, n, done, progress, now)
        samples.append(s)
        if stack_gone(pid, now):
            break
        if time.monotonic() - last_print >= tick:
            last_print = time.monotonic()
            _print(s, n)
        if (
            all_active_at is None
            and fire_task.done()
            and s["active"] + s["revoked"] + s["failed"] + s["http_errors"] >= n
        ):
            all_active_at = now
            log(f"  all {n} active (or failed) at t={now:.1f}s; holding {hold:.0f}s")
        if reconcile and reconciling is None and all_active_at is not None and now - all_active_at >= reconcile_delay:
            log(f"  {reconcile} reconciliation run(s) started at t={now:.1f}s")
            reconciling = asyncio.create_task(run_reconciliations(reconcile, dev, pid, stack.children))
        if reconcile and (reconciling is None or not reconciling.done()) and all_active_at is not None:
            continue
        if all_active_at is not None and now - all_active_at >= hold:
            if not expire or s["revoked"] + s["failed"] + s["http_errors"] >= n:
                break
            if now > ttl + spread + 300 + n:
                log("  TIMEOUT before all were revoked")
                break
        if all_active_at is None and now > 120 + n:  # give up: report what was reached
            log("  TIMEOUT before all were active")
            break
    if not fire_task.done():
        fire_task.cancel()
    summary = _summary(n, ttl, done, samples, all_active_at, idle, proc_status(pid))
    if background is not None:  # its peak: the heap a scan of every held grant needs, off the grant worker
        summary["rss_mb"]["background_worker_peak_VmHWM"] = proc_status(background).get("VmHWM", 0) / 1024
    runs: list[dict] = []
    if reconciling is not None:
        summary["reconciliations"] = runs = reconciling.result()
        for i, rec in enumerate(runs, 1):
            log(
                f"  reconciliation {i}: {rec['seconds']}s, findings {rec.get('findings')}, CPU {rec['cpu']['ours_cpu_s']}"
            )
    if expire:
        lag_of: dict[str, float] = {}
        summary["expiry_to_confirmed_ms"] = await expiry_lags(ledger, done, [r["window"] for r in runs], lag_of)
        summary["slowest_expiries"] = await slowest_expiries(dev["temporal_address"], lag_of)
    ledger.close()
    return summary
