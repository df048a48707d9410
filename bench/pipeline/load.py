"""The load: N concurrent `POST /v1/grants` through the running stack (and everything sampled and
read back around it), the bare provider calls against the same OpenBao, and the floor."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx

from . import ROOT, log
from .analysis import HistoryScan, grant_figures, pipeline_figures, scan_histories, summary
from .outlive import TokenStretcher
from .sampling import CpuMeter, machine_busy_seconds, proc_status, short_name, watch
from .stack import Stack

FLOOR_SCRIPT = Path(os.environ.get("JITACCESS_FLOOR", ROOT.parent / "shared" / "bench" / "floor.py"))
ENTITLEMENT = "secrets-readonly"


# --------------------------------------------------------------------------- bare provider calls
def bare_hvac(addr: str, token: str, n: int, ttl: int) -> dict:
    """The floor's four calls with plain hvac (one client, keep-alive): create, lookup, revoke, lookup."""
    import hvac

    c = hvac.Client(url=addr, token=token)
    t = time.perf_counter()
    for i in range(n):
        acc = c.auth.token.create(
            policies=["jit-platform-read"], ttl=f"{ttl + 60}s", no_default_policy=True, meta={"grant_id": f"bare-{i}"}
        )["auth"]["accessor"]
        assert c.auth.token.lookup_accessor(acc)["data"]
        c.auth.token.revoke_accessor(acc)
        try:
            c.auth.token.lookup_accessor(acc)
            raise AssertionError(f"bare token {acc} still live after revoke")
        except hvac.exceptions.InvalidRequest:
            pass
    s = time.perf_counter() - t
    return {"lifecycles_per_s": n / s, "seconds": s, "calls_per_lifecycle": 4}


def bare_provider(addr: str, token: str, n: int, ttl: int) -> dict:
    """The product's provider as the activities call it: issue (response-wrapped), verify_active, revoke, verify_revoked."""
    from jitaccess.domain.credentials import ProviderGrant
    from jitaccess.providers.vault_token import VaultClients, VaultTokenProvider

    p = VaultTokenProvider(VaultClients(addr, token))
    t = time.perf_counter()
    for i in range(n):
        g = ProviderGrant(
            grant_id=f"bare-provider-{i}",
            provider="vault_token",
            params={"policies": ["jit-platform-read"]},
            principal="bench",
            ttl_seconds=ttl + 60,
        )
        cred, _ = p.issue(g, wrap_ttl=timedelta(minutes=5))
        ok, seen = p.verify_active(cred)
        assert ok, seen
        p.revoke(cred)
        gone, seen = p.verify_revoked(cred)
        assert gone, seen
    s = time.perf_counter() - t
    return {"lifecycles_per_s": n / s, "seconds": s, "calls_per_lifecycle": 4}  # 5 before revoke lost its lookup


# --------------------------------------------------------------------------- the pipeline
def on_task_times(x: dict, after: dict[str, float]) -> None:
    """Active and confirmed as the floor counts them: at the start of the workflow task that took the
    issue's / the revoke's answer (its workflow.now()). The evidence's own times (the activity's,
    one task earlier) are kept as `*_evidence_at`."""
    for key, activity in (("verified_at", "issue_credential"), ("confirmed_at", "revoke_credential")):
        if key in x and activity in after:
            x[key.replace("_at", "_evidence_at")], x[key] = x[key], after[activity]


async def dev_token(dev: dict, user: str) -> str:
    """An ID token for a dev user from the stack's dev IdP (OpenBao), valid 1 h: longer than a bench run."""
    from jitaccess.dev.identity import DevIdentity

    idp = DevIdentity.model_validate({**dev["identity"], "users": dev["users"]})
    return await asyncio.to_thread(idp.id_token, user)


async def alice_token(dev: dict) -> str:
    return await dev_token(dev, "alice")


async def fire(
    api: str,
    bearer: str,
    n: int,
    ttl: int,
    conc: int,
    done: list,
    entitlement: Callable[[int], str],
    spread: int = 0,
) -> list[dict]:
    """N requests issued at once, carried by `conc` connections (conc workers, so the client's own
    pool bookkeeping stays small and does not eat the CPU the stack is measured on). With `spread`,
    grant i expires at start + ttl + spread·i/n (its duration counted from when it is sent), so the
    expiries arrive evenly over `spread` seconds however fast the grants became active."""
    # httpcore tries `import sniffio` on every request; it is not installed, and a failed import is
    # not cached, so each try walks sys.path. Cache the miss (the bench client only; asyncio either way).
    sys.modules.setdefault("sniffio", None)
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    issued = time.time()
    todo: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        todo.put_nowait(i)
    results: list[dict] = []
    async with httpx.AsyncClient(
        base_url=api, headers={"Authorization": f"Bearer {bearer}"}, limits=limits, timeout=httpx.Timeout(120)
    ) as client:

        async def one(i: int) -> dict:
            rec: dict = {"i": i, "queued": issued}

            async def trace(name: str, info: dict) -> None:
                # the moment the request goes on the wire (after waiting for one of the `conc` connections)
                if name == "http11.send_request_headers.started":
                    rec["sent"] = time.time()

            try:
                duration = round(issued + ttl + spread * i / n - time.time()) if spread else ttl
                body = {"entitlement": entitlement(i), "duration": duration, "reason": "bench"}
                r = await client.post("/v1/grants", json=body, extensions={"trace": trace})
                rec["responded"] = time.time()
                rec["status"] = r.status_code
                try:
                    data = r.json()
                except ValueError:
                    data = {"raw": r.text[:300]}
                rec["grant_id"] = data.get("grant_id")
                rec["state"] = data.get("state")
                if r.status_code != 202:
                    rec["error"] = data
            except Exception as e:
                rec["responded"] = time.time()
                rec["error"] = f"{e.__class__.__name__}: {e}"
            rec.setdefault("sent", rec["queued"])
            done.append(rec)
            return rec

        async def worker() -> None:
            while not todo.empty():
                results.append(await one(todo.get_nowait()))

        await asyncio.gather(*[worker() for _ in range(min(conc, n))])
    return sorted(results, key=lambda r: r["i"])


async def run_pipeline(
    stack: Stack,
    n: int,
    ttl: int,
    conc: int,
    timeout: float,
    tick: float,
    entitlement: Callable[[int], str] = lambda i: ENTITLEMENT,
    exclude: frozenset[str] = frozenset(),
    outlive: int = 0,
    break_glass_at: int = 0,
) -> dict:
    """The burst; `exclude`: grants of an earlier phase (--sequential), left out of every figure;
    `outlive`: stretch every Vault token to end that many seconds after its grant (pipeline/outlive.py);
    `break_glass_at`: one break-glass request once that many are answered (break_glass_probe)."""
    from temporalio.client import Client

    from jitaccess.ledger import Ledger

    dev = stack.dev
    ledger = Ledger(dev["ledger_url"])
    assert stack.proc is not None
    pid = stack.proc.pid
    done: list[dict] = []
    tclient = await Client.connect(dev["temporal_address"])  # visibility: are any grant workflows still running?
    meter = CpuMeter(pid, stack.children)
    t0 = time.time()
    alice = await alice_token(dev)
    stretcher = TokenStretcher(dev, outlive) if outlive else None
    if stretcher:
        stretcher.start()
    fire_task = asyncio.create_task(fire(dev["api_url"], alice, n, ttl, conc, done, entitlement))
    left_out = set(exclude)  # and the break-glass probe's grant, once it has an ID
    probe = (
        asyncio.create_task(break_glass_probe(dev["api_url"], alice, done, break_glass_at, ttl, left_out))
        if break_glass_at
        else None
    )
    progress = await watch(pid, ledger, tclient, fire_task, done, n, timeout, tick, t0, left_out)
    probed = await probe if probe else None
    stretched = stretcher.stop() if stretcher else None
    requests = await fire_task if fire_task.done() else list(done)
    if not fire_task.done():
        fire_task.cancel()
    status = proc_status(pid)
    cpu_use = meter.use(time.time() - t0)

    grants = await grant_figures(ledger, requests, frozenset(left_out))
    ledger.close()
    try:
        temporal = await scan_histories(dev["temporal_address"], [g["grant_id"] for g in grants.per])
    except Exception as e:
        temporal = {"error": f"{e.__class__.__name__}: {e}"}
    for x in grants.per:
        if (st := temporal.get("_started", {}).get(x["grant_id"])) is not None:
            x["wf_started_at"] = st
        on_task_times(x, temporal.get("_task_after", {}).get(x["grant_id"], {}))
    if probed:
        probed = await probe_figures(dev["temporal_address"], probed, temporal.get("_started", {}))
    temporal.pop("_started", None)
    temporal.pop("_task_after", None)
    figures = pipeline_figures(n, ttl, requests, grants, progress, t0)
    return {
        **figures,
        "worker_rss_mb": {
            "peak_VmHWM": status.get("VmHWM", 0) / 1024,
            "end_VmRSS": status.get("VmRSS", 0) / 1024,
            "max_sampled_VmRSS": max((s for _, s in progress.rss_samples), default=0) / 1024,
            "samples": len(progress.rss_samples),
        },
        "cpu": cpu_use,
        "cores_busy_each_second": [{"t": t, "machine": m, "worker+api": w} for t, m, w in progress.busy_samples],
        "outlive": stretched,
        "break_glass_probe": probed,
        "temporal": temporal,
        "other_processes_rss_mb": {
            f"{short_name(p)}[{p}]": proc_status(p).get("VmHWM", 0) / 1024 for p in stack.children
        },
    }


async def break_glass_probe(api: str, bearer: str, done: list[dict], at: int, ttl: int, left_out: set[str]) -> dict:
    """Once `at` of the burst's requests are answered, one break-glass request (alice is on call). Its
    grant joins `left_out` at once: it ends in pending_review, not revoked, so the burst's figures and
    the wait for their end leave it out."""
    while len(done) < at:
        await asyncio.sleep(0.005)
    body = {
        "entitlement": "secrets-admin",
        "duration": ttl,
        "reason": "bench: break-glass behind a burst",
        "break_glass": True,
        "incident": "INC-BENCH",
    }
    async with httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {bearer}"}) as client:
        sent = time.time()
        r = await client.post("/v1/grants", json=body)
    rec = {"after_answered": at, "sent": sent, "responded": time.time(), "status": r.status_code}
    rec["grant_id"] = r.json().get("grant_id") if r.status_code == 202 else None
    if rec["grant_id"]:
        left_out.add(rec["grant_id"])
    else:
        rec["error"] = r.text[:300]
    return rec


async def probe_figures(address: str, rec: dict, started: dict[str, float]) -> dict:
    """The probe's wait from its workflow's start to its first task, against the routine grants whose
    workflows started in the second before it (what it was queued behind): how many of those had their
    first task after it did."""
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import Client

    if not rec.get("grant_id"):
        return rec
    client = await Client.connect(address)

    async def first_task_at(gid: str) -> float:
        evs = (await client.get_workflow_handle(gid).fetch_history()).events
        first = next(e for e in evs if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED)
        return first.event_time.ToDatetime().timestamp()

    begun = (
        await client.get_workflow_handle(rec["grant_id"]).describe()
    ).start_time.timestamp()  # not in `started`: left out
    mine = await first_task_at(rec["grant_id"])
    before = {g: at for g, at in started.items() if begun - 1.0 <= at < begun}
    theirs = {g: await first_task_at(g) for g in before}
    return {
        **rec,
        "first_task_wait_ms": (mine - begun) * 1000,
        "routine_started_in_the_second_before": len(before),
        "their_first_task_wait_ms": summary([(theirs[g] - before[g]) * 1000 for g in before]),
        "of_them_first_task_after_it": sum(1 for g in before if theirs[g] > mine),
    }


# --------------------------------------------------------------------------- the floor
# floor.py starts its workflows one after another, each awaited; the pipeline's requests arrive
# `--concurrency` at a time. The floor with the pipeline's arrival is floor.py with only that line
# changed (so its workflow, activities, servers and figures stay the floor's own).
FLOOR_SEQUENTIAL_STARTS = (
    'hs = [await client.start_workflow(FloorGrant.run, args=[f"g-{i}", ttl], '
    'id=f"g-{i}-{time.time_ns()}", task_queue="floor") for i in range(n)]'
)
FLOOR_CONCURRENT_STARTS = """sem = asyncio.Semaphore({concurrency})  # the pipeline's arrival: this many starts in flight at once

                async def start(i):
                    async with sem:
                        return await client.start_workflow(FloorGrant.run, args=[f"g-{{i}}", ttl], id=f"g-{{i}}-{{time.time_ns()}}", task_queue="floor")

                hs = await asyncio.gather(*[start(i) for i in range(n)])"""


def floor_with_arrival(concurrency: int, into: Path) -> Path:
    """floor.py, its starts made `concurrency` at a time as the pipeline's requests are (written to `into`)."""
    source = FLOOR_SCRIPT.read_text()
    if FLOOR_SEQUENTIAL_STARTS not in source:
        raise SystemExit(
            f"--burst-floor: {FLOOR_SCRIPT} no longer starts its workflows with the line this bench replaces "
            f"(bench/pipeline/load.py, FLOOR_SEQUENTIAL_STARTS); update it to the floor's new start loop"
        )
    script = into / "floor_same_arrival.py"
    script.write_text(source.replace(FLOOR_SEQUENTIAL_STARTS, FLOOR_CONCURRENT_STARTS.format(concurrency=concurrency)))
    return script


def run_floor(n: int, ttl: int, script: Path = FLOOR_SCRIPT) -> dict:
    log(f"\n== floor: {sys.executable} {script} {n} {ttl}")
    import resource

    t = time.time()
    dbs_before = set(Path(tempfile.gettempdir()).glob("tmp*/t.db"))
    busy0 = machine_busy_seconds()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        p = subprocess.run(
            [sys.executable, str(script), str(n), str(ttl)],
            capture_output=True,
            text=True,
            timeout=max(600, ttl + 10 * n),
        )
        out, rc = p.stdout, p.returncode
        err = p.stderr[-2000:] if p.returncode else ""
    except subprocess.TimeoutExpired as e:
        out, rc, err = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), None, "timeout"
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    floor_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)  # floor + its temporal + bao (all reaped)
    busy = machine_busy_seconds() - busy0
    print(out, end="", flush=True)
    if err:
        log(f"floor stderr: {err}")
    num = r"([\d.]+)"
    f: dict = {
        "raw": out,
        "returncode": rc,
        "seconds": time.time() - t,
        "cpu": {"floor_cpu_s": floor_cpu, "machine_busy_cpu_s": busy, "foreign_cpu_s": busy - floor_cpu},
    }
    if m := re.search(rf"bare provider lifecycles/s: {num}", out):
        f["bare_lifecycles_per_s"] = float(m[1])
    if m := re.search(rf"wall={num}s lifecycles/s\(excl ttl\)={num}", out):
        f["wall_s"], f["lifecycles_per_s"] = float(m[1]), float(m[2])
    if m := re.search(rf"request->active ms p50={num} p99={num}", out):
        f["request_to_active_ms"] = {"p50": float(m[1]), "p99": float(m[2])}
    if m := re.search(rf"expiry->revoked-confirmed ms p50={num} p99={num} max={num}", out):
        f["expiry_to_confirmed_ms"] = {"p50": float(m[1]), "p99": float(m[2]), "max": float(m[3])}
    left = set(Path(tempfile.gettempdir()).glob("tmp*/t.db")) - dbs_before
    if len(left) == 1:  # floor.py leaves its Temporal database behind: its histories, step by step
        f["temporal"] = floor_histories(left.pop())
    return f


def floor_histories(db: Path) -> dict:
    """The floor's own histories, read as ours are (scan_histories), from the database its run left
    in a temporary directory (removed afterwards): a Temporal dev server started on it for the read."""
    from jitaccess.dev.servers import start_temporal

    server = start_temporal(db.parent, db_file=db)
    try:
        found = asyncio.run(
            scan_histories(
                server.address, scan=HistoryScan(active_after="verify_active", confirmed_after="verify_revoked")
            )
        )
    except Exception as e:
        return {"error": f"the floor's Temporal database could not be read: {e.__class__.__name__}: {e}"}
    finally:
        server.stop()
        shutil.rmtree(db.parent, ignore_errors=True)
    found.pop("_started", None)
    found.pop("_task_after", None)
    return found
