"""`--watch-stalls`: what stallwatch/sitecustomize.py recorded in the stack's process, summed up
for the results file (every record stays in <workdir>/stalls.jsonl when the directory is kept)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from .analysis import pct


def summarise(path: Path | None) -> dict | None:
    if path is None or not path.exists():
        return None
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    # the stack's own process: moto_server (Python too) loads the watcher as well
    stack = next((r for r in recs if r["kind"] == "start" and "dev" in r["argv"]), None)
    if stack is not None:
        recs = [r for r in recs if r["pid"] == stack["pid"]]
    start = stack["t"] if stack is not None else None
    out: dict = {"log": str(path), "started": start}
    for kind, key in (("gc", "ms"), ("gil", "late_ms"), ("slow_callback", "ms")):
        rs = [r for r in recs if r["kind"] == kind]
        ms = sorted(r[key] for r in rs)
        worst = sorted(rs, key=lambda r: -r[key])[:5]
        out[kind] = {
            "count": len(rs),
            "ms_total": round(sum(ms)),
            "ms_p50_p99_max": [pct(ms, 50), pct(ms, 99), ms[-1]] if ms else None,
            "worst": [
                {k: v for k, v in r.items() if k not in ("stacks", "pid")}
                | {"t_rel": round(r["t"] - start, 1) if start else None}
                for r in worst
            ],
        }
        if kind == "gc":
            out[kind]["full_passes"] = sum(1 for r in rs if r["gen"] == 2)
    totals = [r for r in recs if r["kind"] == "gc_totals"]
    if totals:  # [collections, ms] per generation, at the last record (every 10 s)
        out["gc_totals_per_gen"] = totals[-1]["per_gen"]
        out["gc_threshold"] = totals[-1].get("threshold")
    stacks: Counter[str] = Counter()
    for r in recs:
        if r["kind"] in ("gil", "slow_callback"):
            stacks.update(r.get("stacks", {}))
    out["stacks_during_stalls"] = [[n, s[-400:]] for s, n in stacks.most_common(10)]
    return out
