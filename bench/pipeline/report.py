"""The printed report of a lifecycle bench run (the same figures go to bench/results/*.json)."""

from __future__ import annotations

from . import log

NAME_WIDTH = 52  # the pipeline-vs-floor table's first column


def fmt(s: dict | None, keys=("p50", "p99", "max")) -> str:
    if not s:
        return "n/a"
    return " ".join(f"{k}={s[k]:.0f}" for k in keys if k in s)


def ratio(a, b) -> float | None:
    return a / b if a is not None and b else None


def first_task_to_active(p: dict) -> dict:
    """The floor's request->active: from the first workflow task's start (`grant.requested.at`, its
    `workflow.now()`) to verified; it leaves out the API and the wait for that first task."""
    return p["breakdown_ms"].get("grant_requested_to_verified") or {}


def report(res: dict) -> None:
    p, n, ttl = res["pipeline"], res["n"], res["ttl_s"]
    log(
        f"\n== jitaccess lifecycle bench  N={n} TTL={ttl}s  concurrency={res['concurrency']}"
        f"  ({res['machine']['platform']}, {res['machine']['cores']} cores)"
    )
    if seq := res.get("sequential"):
        log(f"request->active ms, one at a time (K={seq['k']}, before the burst)  {fmt(seq['request_to_active_ms'])}")
    report_pipeline(p, n)
    report_resources(p, res["bare"])
    report_comparisons(res)
    report_floor(res)


def report_pipeline(p: dict, n: int) -> None:
    """HTTP, throughput, latencies and their breakdown, revocations, chains."""
    h = p["http"]
    log(
        f"HTTP POST /v1/grants      accepted {h['accepted']}/{n}  errors {h['errors']} {h['error_kinds'] or ''}"
        f"  latency ms {fmt(h['post_latency_ms'])}"
    )
    lps = p["lifecycles_per_s"]
    log(
        f"pipeline lifecycles/s     {lps:.1f}"
        if lps
        else f"pipeline lifecycles/s     n/a (only {p['revoked']}/{n} revoked; completed-only rate "
        f"{(p['lifecycles_per_s_completed'] or 0):.1f})"
    )
    log(
        f"  wall (send -> last revocation.confirmed) {p['wall_s'] or 0:.1f}s, observed by polling {p['wall_observed_s'] or 0:.1f}s"
    )
    log(
        f"request->active ms        {fmt(p['request_to_active_ms'], ('p50', 'p99', 'max'))}"
        f"   (incl. client connection-pool wait: {fmt(p['request_to_active_incl_client_queue_ms'], ('p50', 'p99'))})"
    )
    log(f"expiry->confirmed ms      {fmt(p['expiry_to_confirmed_ms'])}")
    for k, v in p["breakdown_ms"].items():
        log(f"  {k:<60} {fmt(v)}")
    log(
        f"grants in ledger          {p['grants_in_ledger']} ({p['grants_unknown_to_client']} started although the client got an error)"
    )
    log(
        f"revoked                   {p['revoked']}/{p['grants_in_ledger']}  (token already gone by its own TTL: "
        f"{p['revoked_already_gone']})   stragglers {len(p['stragglers'])}"
        f"   revocation attempts {p['revocation_attempts']}  retrying events {p['revocation_retrying_events']}"
    )
    if o := p.get("outlive"):
        log(
            f"tokens stretched          {o['renewed']} to end {o['outlive_s']}s after their grant "
            f"(--outlive; ended before the bench reached them: {o['late']}, errors {o['error_count']} {o['errors'][:1]})"
        )
    if (b := p.get("break_glass_probe")) and "first_task_wait_ms" in b:
        log(
            f"break-glass probe         sent after {b['after_answered']} answers: its first task waited "
            f"{b['first_task_wait_ms']:.0f} ms; the {b['routine_started_in_the_second_before']} routine grants started "
            f"in the second before it waited {fmt(b['their_first_task_wait_ms'])}, {b['of_them_first_task_after_it']} "
            "of them got their first task after it"
        )
    elif b:
        log(f"break-glass probe         failed: {b.get('status')} {b.get('error')}")
    for s in p["stragglers"][:10]:
        log(f"  straggler {s['grant_id']} state={s['state']} last_event={s['last_event']} events={s['events']}")
    c = p["chains"]
    log(f"chains verified           {c['verified']}/{c['total']}")
    for f in c["failures"]:
        log(f"  broken {f['grant_id']}: {f['problem']} at {f['first_broken']}")


def report_resources(p: dict, b: dict) -> None:
    """Memory, Temporal's histories, CPU (ours and other sessions'), the bare provider calls."""
    r = p["worker_rss_mb"]
    log(
        f"worker RSS MB             peak(VmHWM) {r['peak_VmHWM']:.0f}  sampled max {r['max_sampled_VmRSS']:.0f}  end {r['end_VmRSS']:.0f}"
        f"   (others: {', '.join(f'{k} {v:.0f}' for k, v in p['other_processes_rss_mb'].items())})"
    )
    tp = p["temporal"]
    if "spans_ms" in tp:
        log("temporal histories (ms)")
        for k, v in tp["spans_ms"].items():
            log(f"  {k:<60} {fmt(v)}")
        log(f"  task time-outs/failures {tp['task_failures'] or 'none'} in {tp['grants_with_task_failures']} grants")
        for k, v in tp.get("history_size", {}).items():
            log(f"  {'history ' + k + ' per grant':<60} {fmt(v)}")
        report_slowest(tp.get("slowest_to_active"), "  ")
    else:
        log(f"temporal histories: {tp.get('error')}")
    cu = p["cpu"]
    log(
        f"CPU during the pipeline   {cu['elapsed_s']:.1f}s x {cu['cores']} cores; busy {cu['machine_busy_cpu_s']:.1f} cpu-s: "
        + ", ".join(f"{k} {v:.1f}" for k, v in cu["ours_cpu_s"].items())
        + f", foreign (other sessions) {cu['foreign_cpu_s']:.1f}"
    )
    for f in cu.get("foreign_top", [])[:3]:
        log(f"  foreign: {f['cpu_s']:.1f} cpu-s {f['process']}")
    if busy := p.get("cores_busy_each_second"):
        log(
            f"cores busy each second (machine / worker+api, of {cu['cores']}): "
            + "  ".join(f"{s['machine']:.1f}/{s['worker+api']:.1f}" for s in busy[:12])
            + (" ..." if len(busy) > 12 else "")
        )
    log(
        f"bare provider lifecycles/s  hvac {b['hvac']['calls_per_lifecycle']} calls {b['hvac']['lifecycles_per_s']:.1f}   "
        f"VaultTokenProvider {b['provider']['calls_per_lifecycle']} calls {b['provider']['lifecycles_per_s']:.1f}"
    )


def report_comparisons(res: dict) -> None:
    """Pipeline over the bare provider calls, and what the logs say went wrong."""
    rr = res["ratios"]
    if rr.get("pipeline_over_bare_provider") is not None:
        log(
            f"pipeline / bare           {rr['pipeline_over_bare_provider']:.2f} (provider)  {rr['pipeline_over_bare_hvac']:.2f} (hvac)"
        )
    lg = res["logs"]
    if lg["worker_log_warnings"] or lg["server_logs"] or lg["worker_log_database_locked"]:
        log(
            f"logs: {lg['worker_log_warnings']} warning/error lines in the worker feed, "
            f"'database is locked' {lg['worker_log_database_locked']}; servers: "
            + ", ".join(
                f"{k}: {v['error_lines']} error lines, {v['database_locked']} locked, {v['tracebacks']} tracebacks"
                for k, v in lg["server_logs"].items()
            )
        )
        for s in lg["worker_log_samples"][:3]:
            log(f"  {s}")


def report_slowest(sl: dict | None, prefix: str) -> None:
    """Where the slowest grants' first task → active went (HistoryScan.to_active), span by span."""
    if not sl:
        return
    log(
        f"{prefix}first task → active, the slowest {sl['slowest']} of {sl['grants']} against the rest (mean ms per span)"
    )
    for k, v in sl["slowest_mean_ms"].items():
        log(f"    {k:<58} {v:7.1f}  {sl['rest_mean_ms'].get(k, 0.0):7.1f}")
    if sl.get("slowest_began_s"):
        log(f"    the slowest's first tasks began at (s into the burst): {sl['slowest_began_s']}")
        for second, f in sl["by_second"].items():
            log(
                f"    second {second:>3}: {f['n']:4d} grants, first task → active p50 {f['p50']:.0f} max {f['max']:.0f} ms"
            )


def report_floor(res: dict) -> None:
    """The pipeline against the floor, and against the floor with the pipeline's arrival (--burst-floor)."""
    report_against(res, res.get("floor"), "floor (same session)")
    if "floor_same_arrival" in res:
        report_against(
            res,
            res["floor_same_arrival"],
            f"the floor with the pipeline's arrival ({res['concurrency']} starts in flight, same session)",
        )


def report_against(res: dict, fl: dict | None, title: str) -> None:
    """The pipeline against one run of the floor."""
    p, b = res["pipeline"], res["bare"]
    lps = p["lifecycles_per_s"]
    if fl and "lifecycles_per_s" in fl:
        log(f"\n== pipeline vs {title}")
        log(f"{'':{NAME_WIDTH}}{'pipeline':>10}{'floor':>10}{'ratio':>8}")
        first_task = first_task_to_active(p)
        rows = [
            ("lifecycles/s", lps, fl["lifecycles_per_s"]),
            ("request->active p50 ms", (p["request_to_active_ms"] or {}).get("p50"), fl["request_to_active_ms"]["p50"]),
            ("request->active p99 ms", (p["request_to_active_ms"] or {}).get("p99"), fl["request_to_active_ms"]["p99"]),
            (
                "first task->active p50 ms (the floor's definition)",
                first_task.get("p50"),
                fl["request_to_active_ms"]["p50"],
            ),
            (
                "first task->active p99 ms (the floor's definition)",
                first_task.get("p99"),
                fl["request_to_active_ms"]["p99"],
            ),
            (
                "expiry->confirmed p50 ms",
                (p["expiry_to_confirmed_ms"] or {}).get("p50"),
                fl["expiry_to_confirmed_ms"]["p50"],
            ),
            (
                "expiry->confirmed p99 ms",
                (p["expiry_to_confirmed_ms"] or {}).get("p99"),
                fl["expiry_to_confirmed_ms"]["p99"],
            ),
            (
                "expiry->confirmed max ms",
                (p["expiry_to_confirmed_ms"] or {}).get("max"),
                fl["expiry_to_confirmed_ms"]["max"],
            ),
            ("bare lifecycles/s", b["hvac"]["lifecycles_per_s"], fl.get("bare_lifecycles_per_s")),
        ]
        for name, a, f_ in rows:
            rt = ratio(a, f_)
            log(
                f"{name:<{NAME_WIDTH}}{(f'{a:.1f}' if a is not None else 'n/a'):>10}{(f'{f_:.1f}' if f_ is not None else 'n/a'):>10}"
                f"{(f'{rt:.2f}' if rt is not None else 'n/a'):>8}"
            )
        fc = fl["cpu"]
        log(
            f"floor run: {fl['seconds']:.1f}s, floor processes {fc['floor_cpu_s']:.1f} cpu-s, "
            f"foreign (other sessions) {fc['foreign_cpu_s']:.1f} cpu-s"
        )
        report_slowest(fl.get("temporal", {}).get("slowest_to_active"), "floor's histories: ")
    elif fl:
        log(f"\n{title}: the floor did not report figures (returncode {fl.get('returncode')})")
