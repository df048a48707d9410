"""The ledger's event append path on PostgreSQL, benched directly (issue 15: "the ledger on PostgreSQL
sustains the event rate of 10x the measured throughput").

    python bench/ledger_rate.py [--writers 8,64] [--seconds 10] [--floor] [--lifecycles-per-s 33.9]
                                [--events-per-lifecycle 8] [--dsn postgresql://postgres@127.0.0.1:5432/postgres]

What is timed is `GrantActivities.record_events` (jitaccess/activities/grant.py), the activity every
workflow's evidence flush runs: `Ledger.append` (one transaction: the batch's events in one INSERT ...
ON CONFLICT DO NOTHING, the grant's summary upserted), the SIEM line per event and the metrics. Its
batches are the real ones of a recorded lifecycle (tests/fixtures/histories/grant_signed_lifecycle.json:
the workflow's `record_events` inputs, events and summaries), re-keyed per synthetic grant and re-chained
(hashes computed before the clock starts: that is the workflow's work, not the ledger's). Writers are
threads, as the worker's activity executor runs activities (`max_concurrent_activities`, default 64);
each writes its grants' batches in order, as one workflow does.

The database is a scratch one (CREATE DATABASE, `jitaccess db upgrade`, DROP at the end). Required
rate = 10 x lifecycles/s x events per lifecycle; lifecycles/s is `--lifecycles-per-s` (default: the
issue's measured 33.9/s) or, with `--floor`, the floor's own figure measured in the same run
(`../shared/bench/floor.py 20 5`), which the pipeline's throughput target (>= 0.9 x floor) is bounded by.
Writes bench/results/ledger-rate-<UTC timestamp>.json.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import secrets
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline import ROOT, log
from pipeline.sampling import all_cpu, cpu_seconds, machine_busy_seconds

from jitaccess.bootstrap import configure_logging
from jitaccess.domain import contracts as c
from jitaccess.domain.events import IdentityEvent, make_event
from jitaccess.domain.principals import Actor

FIXTURE = ROOT / "tests" / "fixtures" / "histories" / "grant_signed_lifecycle.json"
ISSUE_LIFECYCLES_PER_S = 33.9  # issue 15's measured pipeline throughput (its quietest machine)


def template_batches() -> list[tuple[list[IdentityEvent], dict]]:
    """The `record_events` inputs of the recorded lifecycle, in order."""
    history = json.loads(FIXTURE.read_text())
    out = []
    for e in history["events"]:
        a = e.get("activityTaskScheduledEventAttributes")
        if a and a["activityType"]["name"] == c.RECORD_EVENTS:
            batch = c.EventBatch.model_validate_json(base64.b64decode(a["input"]["payloads"][0]["data"]))
            out.append((batch.events, batch.summary))
    return out


def grant_batches(template: list[tuple[list[IdentityEvent], dict]], grant_id: str) -> list[c.EventBatch]:
    """The template's batches for another grant: same types, actors and data, its own chain."""
    prev: IdentityEvent | None = None
    now = datetime.now(UTC)
    out = []
    for events, summary in template:
        chained = []
        for ev in events:
            prev = make_event(grant_id, prev, ev.type, now, Actor.model_validate(ev.actor), ev.data)
            chained.append(prev)
        out.append(c.EventBatch(events=chained, summary={**summary, "grant_id": grant_id}))
    return out


def postgres_cpu() -> dict[int, float]:
    """CPU-seconds of each PostgreSQL process (server and backends; other sessions' too)."""
    return {pid: cpu for pid, (cmd, cpu) in all_cpu().items() if cmd.startswith("postgres")}


def postgres_used(before: dict[int, float]) -> float:
    """PostgreSQL CPU since `before`, over the processes alive now (backends that ended are lost)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in postgres_cpu().items())


def run_writers(activities, template, writers: int, seconds: float) -> dict:
    """`writers` threads appending whole lifecycles' batches for `seconds`."""
    stop = time.monotonic() + seconds
    lat: list[float] = []
    counts = {"events": 0, "batches": 0, "lifecycles": 0}
    lock = threading.Lock()
    # batches made before the clock starts (hashing is the workflow's work)
    per_writer = max(4, int(seconds * 40 / writers) + 2)
    queued = [
        [grant_batches(template, f"grant-bench-{secrets.token_hex(6)}") for _ in range(per_writer)]
        for _ in range(writers)
    ]

    def writer(mine: list[list[c.EventBatch]]) -> None:
        my_lat, ev, b, lc = [], 0, 0, 0
        for lifecycle in mine:
            if time.monotonic() > stop:
                break
            for batch in lifecycle:
                t = time.perf_counter()
                activities.record_events(batch)
                my_lat.append(time.perf_counter() - t)
                ev, b = ev + len(batch.events), b + 1
            lc += 1
        with lock:
            lat.extend(my_lat)
            counts["events"] += ev
            counts["batches"] += b
            counts["lifecycles"] += lc

    threads = [threading.Thread(target=writer, args=(q,)) for q in queued]
    busy0, ours0, pg0, t0 = machine_busy_seconds(), cpu_seconds(os.getpid()), postgres_cpu(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ours, pg = cpu_seconds(os.getpid()) - ours0, postgres_used(pg0)
    busy = machine_busy_seconds() - busy0
    lat.sort()
    ran_out = counts["lifecycles"] >= writers * per_writer
    return {
        "writers": writers,
        "wall_s": round(wall, 2),
        **counts,
        "ran_out_of_batches": ran_out,
        "events_per_s": round(counts["events"] / wall, 1),
        "batches_per_s": round(counts["batches"] / wall, 1),
        "append_ms": {
            "p50": round(1000 * lat[round(0.5 * (len(lat) - 1))], 1),
            "p99": round(1000 * lat[round(0.99 * (len(lat) - 1))], 1),
            "mean": round(1000 * statistics.fmean(lat), 1),
        },
        "cpu_s": {
            "bench (record_events + psycopg)": round(ours, 2),
            "postgres (all backends)": round(pg, 2),
            "machine_busy": round(busy, 2),
            "foreign": round(busy - ours - pg, 2),
            "available": round(wall * (os.cpu_count() or 1), 2),
        },
        "cpu_ms_per_event": {
            "bench": round(1000 * ours / max(1, counts["events"]), 3),
            "postgres": round(1000 * pg / max(1, counts["events"]), 3),
        },
    }


def scratch_database(admin_dsn: str):
    import psycopg

    name = "jitaccess_ledger_rate_" + secrets.token_hex(4)
    admin = psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5)
    admin.execute(f'CREATE DATABASE "{name}"')
    return admin, name


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres", help="admin URL (trust auth)")
    ap.add_argument("--writers", default="1,8,64", help="comma-separated writer-thread counts")
    ap.add_argument("--seconds", type=float, default=10, help="per writer count")
    ap.add_argument("--lifecycles-per-s", type=float, default=ISSUE_LIFECYCLES_PER_S)
    ap.add_argument(
        "--events-per-lifecycle", type=float, default=0, help="measured (ledger of a bench run); 0: the template's"
    )
    ap.add_argument("--floor", action="store_true", help="measure the floor (floor.py 20 5) for lifecycles/s")
    ap.add_argument("--pool-size", type=int, default=0, help="SQLAlchemy pool size (0: the Ledger's default)")
    args = ap.parse_args()

    from jitaccess.activities.grant import GrantActivities
    from jitaccess.ledger import Ledger

    configure_logging("WARNING", io.StringIO())  # the SIEM lines are rendered (their cost), not printed
    template = template_batches()
    events_per_lifecycle = args.events_per_lifecycle or sum(len(e) for e, _ in template)
    floor = None
    if args.floor:
        from pipeline.load import run_floor

        floor = run_floor(20, 5)
    lps = floor["lifecycles_per_s"] if floor and floor.get("lifecycles_per_s") else args.lifecycles_per_s
    required = 10 * lps * events_per_lifecycle
    log(
        f"template: {len(template)} batches, {sum(len(e) for e, _ in template)} events per lifecycle; "
        f"required = 10 x {lps:g} lifecycles/s x {events_per_lifecycle:g} events = {required:.0f} events/s"
    )

    admin, name = scratch_database(args.dsn)
    url = "postgresql+psycopg://" + args.dsn.split("://", 1)[1].rsplit("/", 1)[0] + "/" + name
    runs = []
    try:
        ledger = Ledger(url, upgrade=True)
        if args.pool_size:
            from sqlalchemy import create_engine

            ledger.engine.dispose()
            ledger.engine = create_engine(url, pool_pre_ping=True, pool_size=args.pool_size, max_overflow=0)
        activities = GrantActivities(
            None, ledger, timedelta(0), None, None, holds=None, backstop=None
        )  # only .ledger is used
        for w in [int(x) for x in args.writers.split(",")]:
            r = run_writers(activities, template, w, args.seconds)
            r["vs_required"] = round(r["events_per_s"] / required, 2)
            runs.append(r)
            log(
                f"writers={w:3d}: {r['events_per_s']:7.1f} events/s ({r['batches_per_s']:.1f} appends/s), "
                f"append p50/p99 {r['append_ms']['p50']}/{r['append_ms']['p99']} ms, "
                f"{r['vs_required']:.2f} x required; cpu {r['cpu_s']}"
            )
        ledger.close()
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    out = {
        "at": datetime.now(UTC).isoformat(),
        "commit": os.popen(f"git -C {ROOT} rev-parse --short HEAD").read().strip(),
        "events_per_lifecycle": events_per_lifecycle,
        "lifecycles_per_s": lps,
        "lifecycles_per_s_from": "floor (same run)" if floor else "--lifecycles-per-s",
        "required_events_per_s": round(required, 1),
        "floor": floor and {k: v for k, v in floor.items() if k != "raw"},
        "runs": runs,
        "loadavg": os.getloadavg(),
    }
    res = ROOT / "bench" / "results"
    res.mkdir(exist_ok=True)
    path = res / f"ledger-rate-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(out, indent=2))
    log(f"written {path}")
    return 0 if any(r["vs_required"] >= 1 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
