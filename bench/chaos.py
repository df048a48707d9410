"""Chaos bench: does revocation hold when processes die?

    python bench/chaos.py [--per-provider 3] [--min-ttl 20] [--max-ttl 45] [--keep]
    python bench/chaos.py --grants 60 --mix secrets-readonly,aws-readonly-console,aws-oncall-group \
        --min-ttl 20 --max-ttl 60 --faults worker-1,worker-2,temporal,openbao,worker-1,worker-2

Starts every piece as its own process: Temporal dev server (SQLite file, so it can be restarted
with its state), OpenBao, moto, PostgreSQL's database engine when reachable, the API
(`jitaccess api`) and two workers (`python -m jitaccess.workers.main`). Starts a handful of
auto-approved grants per provider (as the API would: policy evaluated, command signed; the API
process only serves /healthz here, its sign-in is out of scope), and while they run:

  * kills worker 1 with SIGKILL shortly before the first expiries, restarts it later;
  * stops Temporal (SIGKILL) while grants are expiring, restarts it on the same port and file;
  * or, with --faults, any sequence of `worker-1`, `worker-2` (SIGKILL, restart after --worker-down),
    `temporal` (SIGKILL, restart after --temporal-down), `openbao` (SIGSTOP for --bao-down, SIGCONT),
    one after the other from --first-fault seconds on, never two at once.

Meanwhile a poller reads every issued credential back *at its target* (the provider's own
verify_active: lookup-accessor, the secret-ID accessor, the lease, IAM group membership, the
Identity Center assignment, the STS revocation deny) every POLL seconds around its expiry (every
2 s before), independently of the pipeline. Reported per provider: grants, credentials seen alive past their grant's expiry, how
many by more than 2 s, the worst lateness (last seen alive - expires_at), and from the ledger the
revocation.confirmed lateness (p50/p99/max); double issuance (more than one credential.issued
per grant, or more than one live Vault token tagged with one grant at any sweep); chains verified;
missing events (holes in a chain, or fewer events in the ledger than the workflow emitted) and
duplicated ones (a once-per-grant event type twice); what the workers' expiry backstops did (their
`backstop.revoked` log lines). STS keys stay valid until their own expiry by design (>= 900 s); for
STS "alive" means "not yet denied".

Not run by CI. Results: printed, and written to bench/results/chaos-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `import jitaccess` from this tree

from faults import ENTITLEMENTS, ROOT, log
from faults.figures import backstop_log, failed_checks, nondeterminism, provider_figures
from faults.grants import Grants, plan
from faults.inject import Window, inject
from faults.poller import Poller
from faults.stack import Running, Stack, bring_up

from jitaccess.bootstrap import connect
from jitaccess.config import load_catalogue
from jitaccess.ledger import Ledger

RESULTS = ROOT / "bench" / "results"


def chosen_providers(args) -> list[str]:
    providers = [p for p in ENTITLEMENTS if p not in set(args.skip)]
    if args.mix:  # --mix: these entitlements (of the example catalogue), --grants of them in turn
        by_ent = {e: p for p, e in ENTITLEMENTS.items()}
        unknown = [e for e in args.mix if e not in by_ent]
        if unknown:
            raise SystemExit(f"--mix: no provider known for {unknown}; known: {sorted(by_ent)}")
        providers = [by_ent[e] for e in args.mix]
    return providers


async def run_grants(args, stack: Stack, up: Running) -> tuple[Grants, list[Window], float, float]:
    """Start the grants while the faults happen; wait until every grant has ended."""
    client = await connect(up.settings)  # signs commands with the API key, as the API does
    planned = plan(up.users, up.providers, args.min_ttl, args.max_ttl, args.seed)
    poller = Poller(up.settings)
    poller.run(up.providers)
    grants = Grants(client, load_catalogue(up.catalogue), up.settings.task_queue, poller)
    t0 = time.monotonic()
    load_at_start = os.getloadavg()[0]
    windows: list[Window] = []
    await asyncio.gather(inject(args, stack, planned, grants, windows), *(grants.start(p) for p in planned))
    log(f"{len(grants.started)} grants started; waiting for every one to end")
    await grants.wait_ended(args.max_ttl + 180)
    await asyncio.sleep(4)  # the poller sees the last removals
    poller.stop()
    return grants, windows, time.monotonic() - t0, load_at_start


def figures(
    args, workdir: Path, up: Running, grants: Grants, windows: list[Window], elapsed: float, load: float
) -> dict:
    ledger = Ledger(up.settings.ledger_url)
    backstop = backstop_log(workdir)
    by_provider = {
        p: provider_figures(ledger, grants.poller, grants.started, p, windows, backstop) for p in up.providers
    }
    ledger.close()
    return {
        "at": datetime.now(UTC).isoformat(),
        "args": vars(args),
        "elapsed_s": round(elapsed, 1),
        "faults": [
            {"fault": f, "from": a.isoformat(), "down_s": round((b - a).total_seconds(), 1)} for f, a, b in windows
        ],
        "providers": by_provider,
        "nondeterministic_runs": nondeterminism(workdir),
        # the machine's load (1-min average) when the grants started and at the end: other
        # sessions' tests share it, and a loaded machine makes every figure later
        "loadavg_1m": [load, os.getloadavg()[0]],
        "failed_checks": failed_checks(by_provider),
    }


async def main(args) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="jitaccess-chaos-"))
    stack = Stack(workdir)
    started = time.time()
    try:
        up = bring_up(stack, args, chosen_providers(args))
        grants, windows, elapsed, load_at_start = await run_grants(args, stack, up)
        result = figures(args, workdir, up, grants, windows, elapsed, load_at_start)
        print(json.dumps(result, indent=2, default=str))
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = args.out or RESULTS / f"chaos-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
        Path(out).write_text(json.dumps(result, indent=2, default=str))
        bad = result["failed_checks"]
        log(f"done in {time.time() - started:.0f}s; failed checks: {bad or 'none'}; written to {out}")
        return 1 if bad else 0
    finally:
        stack.stop_all()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            stack.drop_ledger_database()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-provider", type=int, default=3)
    ap.add_argument("--min-ttl", type=float, default=20)
    ap.add_argument("--max-ttl", type=float, default=45)
    ap.add_argument("--worker-down", type=float, default=8, help="seconds worker-1 stays dead")
    ap.add_argument("--temporal-down", type=float, default=5, help="seconds Temporal stays dead")
    ap.add_argument("--skip", nargs="*", default=[], help="providers to leave out")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, databases)")
    ap.add_argument("--grants", type=int, default=0, help="total grants (default: --per-provider each)")
    ap.add_argument("--mix", type=lambda s: s.split(","), default=None, help="entitlements, comma-separated")
    ap.add_argument(
        "--faults",
        type=lambda s: [f for f in s.split(",") if f],
        default=["worker-1", "temporal"],
        help="comma-separated, in order: worker-1, worker-2, workers (both at once), temporal, openbao",
    )
    ap.add_argument("--first-fault", type=float, default=None, help="seconds after the start (default: min TTL - 4)")
    ap.add_argument("--fault-gap", type=float, default=4, help="seconds between one fault's end and the next")
    ap.add_argument("--bao-down", type=float, default=10, help="seconds OpenBao stays frozen (SIGSTOP)")
    ap.add_argument("--no-backstop", dest="backstop", action="store_false", help="workers without the backstop")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON result here")
    ap.add_argument("--ledger", choices=["sqlite", "postgres"], default="sqlite", help="the ledger's database")
    code = asyncio.run(main(ap.parse_args()))
    os._exit(code)  # sdk-python #300
