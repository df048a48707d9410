"""The lifecycle bench: N concurrent auto-approved grants through the real stack, end to end.

    python bench/lifecycle.py [N] [TTL_SECONDS] [--floor] [--provider vault|iam] [--ledger sqlite|postgres] [--sequential K] [--concurrency 32] [--timeout S] [--keep]
    python bench/lifecycle.py --active N [--active-ttl 3600] [--hold 30] [--expire] [--expiry-spread S] [--reconcile]

Starts the embedded stack exactly as a user does (`jitaccess dev up --random-ports`),
fires N concurrent `POST /v1/grants` (secrets-readonly, duration TTL) as alice,
waits until every grant is revoked, and computes from the ledger's identity events and the
workflow histories:

  * lifecycles/s            N / (wall - TTL), wall = first request sent -> last confirmed
  * request -> active       active - client send time (p50/p99)
  * expiry -> confirmed     confirmed - credential.issued.data.expires_at (p50/p99/max)

where active and confirmed are, as the floor stamps them, the start of the workflow task that took
the issue's / the revoke's answer (from each history; `fulfilment.verified.at` and
`revocation.confirmed.at` are the activity's own time, one task earlier, and are reported beside as
"evidence: ..."; without a history, the bench falls back to them). Also:
  * chains verified         Ledger.verify(grant_id).ok for every grant
  * worker peak RSS         VmHWM of the `jitaccess dev up` process (worker + API live there)

and, against the same OpenBao, the bare provider calls (no Temporal, no ledger) as
lifecycles/s. With --floor it then runs ../shared/bench/floor.py N TTL (after the
stack is stopped, so the two never share the CPUs) and reports pipeline/floor ratios.

Not run by CI. Results: printed, and written to bench/results/lifecycle-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from pipeline import ROOT, log
from pipeline.active import run_active
from pipeline.analysis import scan_logs
from pipeline.catalogue import VAULT_ENTITLEMENT, create_iam_groups, iam_entitlement, write_catalogue
from pipeline.expiring import EXPIRING_TTL, expiring_figures, start_expiring, wait_until_burst
from pipeline.load import FLOOR_SCRIPT, bare_hvac, bare_provider, floor_with_arrival, run_floor, run_pipeline
from pipeline.report import first_task_to_active, fmt, ratio, report
from pipeline.sampling import proc_status, wait_quiet
from pipeline.sequential import run_sequential
from pipeline.stack import Stack
from pipeline.stalls import summarise

RESULTS = ROOT / "bench" / "results"


def git_rev() -> str:
    try:
        rev = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "jitaccess"], capture_output=True, text=True
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except OSError:
        return "?"


def jitaccess_source() -> str:
    """Where `import jitaccess` resolves (PYTHONPATH=<an exported commit> measures that commit, not the work tree)."""
    import jitaccess

    path = Path(jitaccess.__file__).resolve().parent.parent
    return str(path) if path == ROOT else f"{path} (PYTHONPATH; not the work tree {ROOT})"


def arguments() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", nargs="?", type=int, default=200, help="concurrent grants (default 200)")
    ap.add_argument("ttl", nargs="?", type=int, default=5, help="grant duration in seconds (default 5)")
    ap.add_argument("--floor", action="store_true", help=f"also run {FLOOR_SCRIPT} N TTL after the stack is stopped")
    ap.add_argument(
        "--burst-floor",
        action="store_true",
        help="also run the floor with the pipeline's arrival (implies --floor): its starts --concurrency at a "
        "time, as the pipeline's requests come, instead of one after another (only that line of floor.py changed)",
    )
    ap.add_argument(
        "--provider",
        choices=["vault", "iam"],
        default="vault",
        help=f"vault: {VAULT_ENTITLEMENT} (Vault token); iam: one IAM group per grant (aws_iam_group, moto)",
    )
    ap.add_argument(
        "--active",
        type=int,
        metavar="N",
        help="hold N grants active at once (TTL --active-ttl) and report the worker's RSS and workflow cache",
    )
    ap.add_argument("--active-ttl", type=int, default=3600, help="grant duration for --active (default 3600 s)")
    ap.add_argument("--hold", type=float, default=30, help="seconds to keep sampling once all are active")
    ap.add_argument(
        "--expire",
        action="store_true",
        help="--active: then wait until every grant has expired and been revoked, and report expiry -> confirmed",
    )
    ap.add_argument(
        "--expiry-spread",
        type=int,
        default=0,
        metavar="S",
        help="--active: the expiries arrive evenly over S seconds from --active-ttl after the start "
        "(grant i expires at start + TTL + S*i/N; TTL must outlast bringing all N to active)",
    )
    ap.add_argument(
        "--reconcile",
        type=int,
        nargs="?",
        const=1,
        default=0,
        metavar="K",
        help="--active: once all are active, run K reconciliations one after the other (default 1); "
        "report each one's duration and CPU",
    )
    ap.add_argument(
        "--reconcile-delay",
        type=float,
        default=0,
        metavar="S",
        help="--reconcile: start them S seconds after all are active (e.g. into the expiries)",
    )
    ap.add_argument(
        "--no-bytecode-cache",
        dest="bytecode",
        action="store_false",
        help="run the stack with the environment's PYTHONDONTWRITEBYTECODE as is (default: bytecode cached)",
    )
    ap.add_argument(
        "--sequential",
        type=int,
        default=0,
        metavar="K",
        help="before the burst, K requests one at a time, each once the previous is active (default 0: none)",
    )
    ap.add_argument(
        "--ledger",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="sqlite: dev up's default; postgres: a fresh database on 127.0.0.1:5432, as production runs",
    )
    ap.add_argument(
        "--watch-stalls",
        action="store_true",
        help="record the stack process's full GC passes, interpreter stalls and slow loop callbacks, "
        "with the stacks running meanwhile (bench/pipeline/stallwatch; summary under 'stalls')",
    )
    ap.add_argument(
        "--break-glass-at",
        type=int,
        default=0,
        metavar="K",
        help="once K of the burst's requests are answered, one break-glass request (alice, on call: "
        "secrets-admin): how long its first task waited against the routine grants started about then "
        "(pipeline/load.py break_glass_probe; it is left out of every other figure; default 0: none)",
    )
    ap.add_argument(
        "--outlive",
        type=int,
        default=0,
        metavar="S",
        help="vault: stretch every token to end S s after its grant, so the revoke at expiry removes a live "
        "token, as the floor's does (pipeline/outlive.py; default 0: tokens end with their grant)",
    )
    ap.add_argument(
        "--expiring",
        type=int,
        default=0,
        metavar="K",
        help="K grants sent before the burst that expire --expiring-at s into it, while its issues queue for "
        "activity slots: their expiry -> confirmed, and what their revokes waited behind (pipeline/expiring.py; "
        "left out of every other figure; default 0: none)",
    )
    ap.add_argument("--expiring-at", type=float, default=1.0, metavar="S", help="--expiring: seconds into the burst")
    ap.add_argument(
        "--activity-slots",
        type=int,
        default=0,
        metavar="S",
        help="the worker's activity slots (JITACCESS_MAX_CONCURRENT_ACTIVITIES; default 0: the product's, 64): "
        "few slots queue a burst's issues as a slow provider would",
    )
    ap.add_argument("--concurrency", type=int, default=32, help="HTTP connection limit for the requests")
    ap.add_argument(
        "--timeout", type=float, default=None, help="max seconds to wait for all revocations (default TTL+60+N)"
    )
    ap.add_argument("--tick", type=float, default=3, help="seconds between progress lines")
    ap.add_argument(
        "--quiet", type=float, default=0.25, help="wait for the machine to be less busy than this (fraction)"
    )
    ap.add_argument("--quiet-wait", type=float, default=180, help="max seconds to wait for that (0: don't wait)")
    ap.add_argument(
        "--keep", action="store_true", help="keep the stack's directory (kept anyway when something failed)"
    )
    args = ap.parse_args()
    if args.outlive and (args.provider != "vault" or args.active):
        ap.error("--outlive stretches Vault tokens of the lifecycle run: not with --provider iam or --active")
    return args


def measure(stack: Stack, args: argparse.Namespace, res: dict, timeout: float) -> bool:
    """Start the stack, run the bare provider calls and the pipeline on it; True when every grant
    was accepted, revoked and its chain verifies. The stack is stopped whatever happens."""
    n, ttl, workdir = args.n, args.ttl, stack.workdir
    try:
        log(f"== starting `jitaccess dev up --random-ports --dir {workdir}`")
        t = time.monotonic()
        dev = stack.start()
        assert stack.proc is not None
        res["stack_start_s"] = time.monotonic() - t
        res["worker_rss_mb_idle"] = proc_status(stack.proc.pid).get("VmRSS", 0) / 1024
        log(
            f"   up in {res['stack_start_s']:.1f}s: API {dev['api_url']}, OpenBao {dev['vault_addr']}, "
            f"dev-up pid {stack.proc.pid}, idle RSS {res['worker_rss_mb_idle']:.0f} MB"
        )

        res["machine_busy_before_pipeline"] = wait_quiet(args.quiet, args.quiet_wait, "the pipeline")
        log(f"== bare provider calls: {n} sequential lifecycles against the same OpenBao")
        res["bare"] = {
            "hvac": bare_hvac(dev["vault_addr"], dev["vault_root_token"], n, ttl),
            "provider": bare_provider(dev["vault_addr"], dev["vault_root_token"], n, ttl),
        }
        log(
            f"   hvac {res['bare']['hvac']['lifecycles_per_s']:.1f}/s, VaultTokenProvider "
            f"{res['bare']['provider']['lifecycles_per_s']:.1f}/s"
        )

        entitlement = iam_entitlement if args.provider == "iam" else (lambda i: VAULT_ENTITLEMENT)
        if args.provider == "iam":
            create_iam_groups(dev, max(n + args.expiring, args.sequential))
        earlier: frozenset[str] = frozenset()
        if args.sequential:
            log(f"== one at a time: {args.sequential} requests, each once the previous one is active")
            res["sequential"] = asyncio.run(run_sequential(stack, args.sequential, ttl, entitlement))
            earlier = frozenset(res["sequential"]["grant_ids"])
            log(f"   request->active ms {fmt(res['sequential']['request_to_active_ms'])}")
        expiring = None
        if args.expiring:
            log(
                f"== expiring: {args.expiring} grants of {EXPIRING_TTL}s, the burst sent {args.expiring_at:g}s before they end"
            )
            expiring = asyncio.run(start_expiring(stack, args.expiring, lambda i: entitlement(n + i)))
            earlier |= frozenset(expiring["grant_ids"])
            asyncio.run(wait_until_burst(expiring, args.expiring_at))
        log(
            f"== pipeline: {n} concurrent POST /v1/grants ({entitlement(0)}, duration {ttl}s) as alice; "
            f"waiting for revocation (at most {timeout:.0f}s)"
        )
        res["pipeline"] = asyncio.run(
            run_pipeline(
                stack,
                n,
                ttl,
                args.concurrency,
                timeout,
                args.tick,
                entitlement,
                earlier,
                args.outlive,
                args.break_glass_at,
            )
        )
        if expiring:
            res["expiring"] = x = asyncio.run(expiring_figures(stack, expiring))
            waiting = x["issues_waiting_when_the_revoke_was_queued"]
            log(
                f"   expiring: expiry->confirmed ms {fmt(x['expiry_to_confirmed_ms'])}; revoke queued ms "
                f"{fmt(x['revoke_schedule_to_start_ms'])}; burst issues waiting then, started after it "
                f"{fmt(waiting['started_after_it'])}, before it {fmt(waiting['started_before_it'])}"
            )
        p = res["pipeline"]
        return p["revoked"] == p["grants_in_ledger"] == n and p["chains"]["verified"] == n and p["http"]["errors"] == 0
    finally:
        log("== stopping the stack (SIGINT to its process group)")
        stack.stop()
        log(f"   {stack.stop_how or 'not running'}")
        res["stack_stop"] = stack.stop_how
        if "pipeline" not in res:
            log(f"   stack directory kept: {workdir}\n--- devup.log tail ---\n{stack.log_tail()}")


def measure_active(stack: Stack, args: argparse.Namespace, res: dict) -> bool:
    """--active N: start the stack, bring N grants to active, hold them, sample; stop the stack."""
    try:
        log(f"== starting `jitaccess dev up --random-ports --dir {stack.workdir}`")
        dev = stack.start()
        entitlement = iam_entitlement if args.provider == "iam" else (lambda i: VAULT_ENTITLEMENT)
        if args.provider == "iam":
            create_iam_groups(dev, args.n)
        spread = f", expiring evenly over {args.expiry_spread}s from" if args.expiry_spread else ", duration"
        log(f"== active: {args.n} grants ({entitlement(0)}{spread} {args.ttl}s) held {args.hold:.0f}s")
        res["active"] = a = asyncio.run(
            run_active(
                stack,
                args.n,
                args.ttl,
                args.concurrency,
                args.hold,
                args.tick,
                entitlement,
                args.expire,
                args.expiry_spread,
                args.reconcile,
                args.reconcile_delay,
            )
        )
        r = a["rss_mb"]
        log(
            f"\nactive {a['active']}/{args.n} (HTTP errors {a['http_errors']}) in {a['seconds_to_all_active']}s; "
            f"RSS MB idle {r['idle']:.0f}, held {r['held_min']}..{r['held_max']}, peak {r['peak_VmHWM']:.0f} "
            f"(background worker peak {r.get('background_worker_peak_VmHWM', 0):.0f}); "
            f"per active grant {r['per_active_grant_kb']} KB; last cache sample "
            f"{ {k: v for k, v in a['samples'][-1].items() if k.startswith('temporal')} if a['samples'] else {} }"
            + (f"; expiry -> confirmed ms {a['expiry_to_confirmed_ms']}" if args.expire else "")
        )
        return a["active"] == args.n and a["http_errors"] == 0
    finally:
        stack.stop()
        res["stack_stop"] = stack.stop_how


def ratios(res: dict) -> dict:
    p, b = res["pipeline"], res["bare"]
    out = {
        "pipeline_over_bare_provider": ratio(p["lifecycles_per_s"], b["provider"]["lifecycles_per_s"]),
        "pipeline_over_bare_hvac": ratio(p["lifecycles_per_s"], b["hvac"]["lifecycles_per_s"]),
    }
    for name in ("floor", "floor_same_arrival"):
        fl = res.get(name) or {}
        if "lifecycles_per_s" in fl:
            out |= {
                f"throughput_pipeline_over_{name}": ratio(p["lifecycles_per_s"], fl["lifecycles_per_s"]),
                f"request_to_active_p50_pipeline_over_{name}": ratio(
                    (p["request_to_active_ms"] or {}).get("p50"), fl["request_to_active_ms"]["p50"]
                ),
                f"first_task_to_active_p50_pipeline_over_{name}": ratio(
                    first_task_to_active(p).get("p50"), fl["request_to_active_ms"]["p50"]
                ),
                f"first_task_to_active_p99_pipeline_over_{name}": ratio(
                    first_task_to_active(p).get("p99"), fl["request_to_active_ms"]["p99"]
                ),
                f"expiry_to_confirmed_p99_pipeline_over_{name}": ratio(
                    (p["expiry_to_confirmed_ms"] or {}).get("p99"), fl["expiry_to_confirmed_ms"]["p99"]
                ),
            }
    return out


def main() -> int:
    args = arguments()
    args.floor = args.floor or args.burst_floor
    if args.active:
        args.n, args.ttl, args.floor = args.active, args.active_ttl, False
    n, ttl = args.n, args.ttl
    timeout = args.timeout or ttl + 60 + n
    workdir = Path(tempfile.mkdtemp(prefix="jitaccess-bench-"))
    started = datetime.now(UTC)
    res: dict = {
        "n": n,
        "ttl_s": ttl,
        "concurrency": args.concurrency,
        "activity_slots": args.activity_slots or None,
        "started": started.isoformat(),
        "git": git_rev(),
        "jitaccess_imported_from": jitaccess_source(),
        "machine": {
            "platform": platform.platform(terse=True),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "workdir": str(workdir),
    }
    res["provider"] = args.provider
    res["ledger"] = args.ledger
    res["bytecode_cache"] = args.bytecode
    res["max_cached_workflows_env"] = os.environ.get("JITACCESS_MAX_CACHED_WORKFLOWS")
    catalogue = write_catalogue(workdir / "bench-catalogue.yaml", args.provider, n + args.expiring)
    if args.activity_slots:  # dev up's worker reads it (the Stack passes this environment on)
        os.environ["JITACCESS_MAX_CONCURRENT_ACTIVITIES"] = str(args.activity_slots)
    if args.active:
        stack = Stack(workdir, catalogue, args.bytecode, args.ledger, args.watch_stalls)
        try:
            ok = measure_active(stack, args, res)
        finally:
            stack.drop_ledger()
        res["stalls"] = summarise(stack.stall_log)
        out = RESULTS / f"active-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
        RESULTS.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2, default=str))
        log(f"results: {out}")
        if args.keep:
            log(f"stack directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        return 0 if ok else 1
    stack = Stack(workdir, catalogue, args.bytecode, args.ledger, args.watch_stalls)
    try:
        ok = measure(stack, args, res, timeout)
    finally:
        stack.drop_ledger()
    res["logs"] = scan_logs(workdir)
    res["stalls"] = summarise(stack.stall_log)
    if args.floor:
        res["machine_busy_before_floor"] = wait_quiet(args.quiet, args.quiet_wait, "the floor")
        res["floor"] = run_floor(n, ttl)
        if args.burst_floor:
            res["machine_busy_before_floor_same_arrival"] = wait_quiet(args.quiet, args.quiet_wait, "the floor")
            res["floor_same_arrival"] = run_floor(n, ttl, floor_with_arrival(args.concurrency, workdir))
    res["ratios"] = ratios(res)
    report(res)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"lifecycle-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(res, indent=2, default=str))
    log(f"\nresults: {out}")
    if ok and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        log(f"stack directory kept: {workdir} (devup.log, events.jsonl, temporal/openbao logs, ledger.db)")
    return 0 if ok else 1


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    # started in the background SIGINT may be ignored: make both signals unwind, so the stack is stopped
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    code = 2
    try:
        code = main()
    except SystemExit as e:  # argparse (--help, bad arguments)
        code = e.code if isinstance(e.code, int) else 2
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        os._exit(code)  # temporalio sdk-python #300
