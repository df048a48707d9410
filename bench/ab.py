"""Interleaved A/B of two commits through the lifecycle bench, with the floor in every run.

One run's ratio to the floor moves by 2x between runs a minute apart on a shared 2-core machine
(bench/README.md), so a change is judged only by several runs of each variant, taken in turn.
This runs them: each commit is checked out into a git worktree and imported through PYTHONPATH
(the bench's own code is this checkout's), the order alternates A B B A ..., and the medians of the
figures that the issue's targets name are printed side by side.

  .venv/bin/python bench/ab.py 9a79838 HEAD --runs 5 -- 200 5 --outlive 60

Everything after `--` goes to bench/lifecycle.py (`--floor` and `--quiet-wait 0` are added).
Results: bench/results/ab-<timestamp>.json (and each run's lifecycle-*.json)."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"

# (label, how to read it from a lifecycle results file): the targets' figures, and where CPU went
FIGURES: list[tuple[str, Callable[[dict], float]]] = [
    ("lifecycles/s ratio", lambda r: r["ratios"]["throughput_pipeline_over_floor"]),
    ("first task->active p50 ratio", lambda r: _ratio(r, "p50", "grant_requested_to_verified", "request_to_active_ms")),
    ("first task->active p99 ratio", lambda r: _ratio(r, "p99", "grant_requested_to_verified", "request_to_active_ms")),
    # what a requester waits, from the HTTP request (the floor has no API: no ratio)
    ("request->active p50 ms", lambda r: r["pipeline"]["request_to_active_ms"]["p50"]),
    ("request->active p99 ms", lambda r: r["pipeline"]["request_to_active_ms"]["p99"]),
    ("expiry->confirmed p99 ratio", lambda r: _expiry(r, "p99")),
    ("expiry->confirmed max ratio", lambda r: _expiry(r, "max")),
    # --burst-floor: against the floor with the pipeline's arrival (its starts --concurrency at a time)
    ("same arrival: lifecycles/s ratio", lambda r: r["ratios"]["throughput_pipeline_over_floor_same_arrival"]),
    (
        "same arrival: first task->active p50 ratio",
        lambda r: r["ratios"]["first_task_to_active_p50_pipeline_over_floor_same_arrival"],
    ),
    (
        "same arrival: first task->active p99 ratio",
        lambda r: r["ratios"]["first_task_to_active_p99_pipeline_over_floor_same_arrival"],
    ),
    (
        "same arrival: expiry->confirmed p99 ratio",
        lambda r: r["ratios"]["expiry_to_confirmed_p99_pipeline_over_floor_same_arrival"],
    ),
    (
        "revoke step p50 ms",
        lambda r: r["pipeline"]["breakdown_ms"]["grant_expired_to_confirmed (revoke activity)"]["p50"],
    ),
    # --expiring K: grants that expire into the burst (their own figures, no floor)
    ("expiring: expiry->confirmed p50 ms", lambda r: r["expiring"]["expiry_to_confirmed_ms"]["p50"]),
    ("expiring: expiry->confirmed max ms", lambda r: r["expiring"]["expiry_to_confirmed_ms"]["max"]),
    ("expiring: revoke queued p50 ms", lambda r: r["expiring"]["revoke_schedule_to_start_ms"]["p50"]),
    ("temporal cpu-s", lambda r: r["pipeline"]["cpu"]["ours_cpu_s"]["temporal"]),
    ("worker+api cpu-s", lambda r: r["pipeline"]["cpu"]["ours_cpu_s"]["worker+api (dev up)"]),
    ("openbao cpu-s", lambda r: r["pipeline"]["cpu"]["ours_cpu_s"]["bao"]),
    ("foreign cpu-s", lambda r: r["pipeline"]["cpu"]["foreign_cpu_s"]),
]


def _ratio(r: dict, q: str, ours: str, floors: str) -> float:
    return r["pipeline"]["breakdown_ms"][ours][q] / r["floor"][floors][q]


def _expiry(r: dict, q: str) -> float:
    return r["pipeline"]["expiry_to_confirmed_ms"][q] / r["floor"]["expiry_to_confirmed_ms"][q]


def worktree(commit: str, into: Path) -> tuple[Path, str]:
    sha = subprocess.run(["git", "rev-parse", "--short", commit], cwd=ROOT, check=True, capture_output=True, text=True)
    path = into / sha.stdout.strip()
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(path), commit], cwd=ROOT, check=True)
    return path, sha.stdout.strip()


def run_once(tree: Path, args: list[str]) -> dict:
    """One lifecycle bench run importing jitaccess from `tree`; its results, or why there are none."""
    cmd = [sys.executable, str(HERE / "lifecycle.py"), *args, "--floor", "--quiet-wait", "0"]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    found = re.search(r"^results: (\S+\.json)", out.stdout, re.M)
    if out.returncode != 0 or not found:
        tail = (out.stdout + out.stderr).strip().splitlines()[-3:]
        return {"error": f"exit {out.returncode}: " + " | ".join(tail)}
    result = json.loads(Path(found[1]).read_text())
    row: dict = {"results": Path(found[1]).name}
    for label, read in FIGURES:
        try:
            row[label] = read(result)
        except (KeyError, TypeError, ZeroDivisionError):
            row[label] = None
    return row


def order(runs: int) -> list[str]:
    """A B B A A B ...: each variant as often first as second in a round, against drift."""
    return [v for i in range(runs) for v in (("A", "B") if i % 2 == 0 else ("B", "A"))]


def summary(rows: list[dict]) -> dict:
    out = {}
    for label, _ in FIGURES:
        xs = [r[label] for r in rows if r.get(label) is not None]
        out[label] = {"median": statistics.median(xs), "min": min(xs), "max": max(xs)} if xs else None
    return out


def fmt(s: dict | None) -> str:
    return "-" if s is None else f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="commit A (the baseline)")
    ap.add_argument("b", help="commit B (the change)")
    ap.add_argument("--runs", type=int, default=5, help="runs of each variant (default 5)")
    ap.add_argument(
        "--b-args",
        default="",
        help="lifecycle.py arguments that B adds to A's, to judge a bench option on one commit: "
        "`ab.py HEAD HEAD --b-args='--concurrency 4' -- 200 5`",
    )
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    opts = ap.parse_args(argv[:cut])
    bench_args = argv[cut + 1 :] or ["200", "5"]  # after `--`: bench/lifecycle.py's own arguments
    with tempfile.TemporaryDirectory(prefix="jitaccess-ab-") as tmp:
        trees = {"A": worktree(opts.a, Path(tmp)), "B": worktree(opts.b, Path(tmp))}
        try:
            rows: dict[str, list[dict]] = {"A": [], "B": []}
            plan = order(opts.runs)
            for i, v in enumerate(plan, 1):
                path, sha = trees[v]
                args = bench_args + (shlex.split(opts.b_args) if v == "B" else [])
                print(f"[{i}/{len(plan)}] {v} ({sha}) lifecycle.py {' '.join(args)} ...", flush=True)
                row = run_once(path, args)
                rows[v].append(row)
                print(
                    "   "
                    + (row.get("error") or ", ".join(f"{k} {row[k]:.2f}" for k, _ in FIGURES[:5] if row[k] is not None))
                )
        finally:
            for path, _ in set(trees.values()):  # one tree when A and B are the same commit
                subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False)
    sums = {v: summary([r for r in rows[v] if "error" not in r]) for v in rows}
    print(f"\n{'median (min-max)':32} {'A ' + trees['A'][1]:>24} {'B ' + trees['B'][1]:>24}")
    for label, _ in FIGURES:
        print(f"{label:32} {fmt(sums['A'][label]):>24} {fmt(sums['B'][label]):>24}")
    failed = {v: sum("error" in r for r in rows[v]) for v in rows}
    print(
        f"runs: A {len(rows['A']) - failed['A']} ok, {failed['A']} failed; B {len(rows['B']) - failed['B']} ok, {failed['B']} failed"
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"ab-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    doc = {
        "a": trees["A"][1],
        "b": trees["B"][1],
        "bench_args": bench_args,
        "b_args": opts.b_args,
        "runs": rows,
        "summary": sums,
    }
    out.write_text(json.dumps(doc, indent=2))
    print(f"results: {out}")
    return 0 if not any(failed.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
