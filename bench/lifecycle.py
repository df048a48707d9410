"""The lifecycle bench: N concurrent auto-approved grants through the real stack, end to end.

    python bench/lifecycle.py [N] [TTL_SECONDS] [--floor] [--concurrency 32] [--timeout S] [--keep]

Starts the embedded stack exactly as a user does (`jitaccess dev up --random-ports`),
fires N concurrent `POST /v1/grants` (secrets-readonly, duration TTL) as alice,
waits until every grant is revoked, and computes from the ledger's identity events:

  * lifecycles/s            N / (wall - TTL), wall = first request sent -> last revocation.confirmed
  * request -> active       fulfilment.verified.at - client send time (p50/p99)
  * expiry -> confirmed     revocation.confirmed.at - credential.issued.data.expires_at (p50/p99/max)
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
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
FLOOR_SCRIPT = Path(os.environ.get("JITACCESS_FLOOR", ROOT.parent / "shared" / "bench" / "floor.py"))
ENTITLEMENT = "secrets-readonly"
REACHED_ACTIVE = {"active", "revoking", "revocation_failing", "revoked"}
FAILED = {"denied", "issue_failed", "cancelled", "approval_expired"}


# --------------------------------------------------------------------------- helpers
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


def log(msg: str) -> None:
    print(msg, flush=True)


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (kB) of a process, {} if it is gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    k, v = line.split(":", 1)
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its own threads; children are separate processes here)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_busy_seconds() -> float:
    """CPU-seconds the whole machine spent not idle (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK  # minus idle and iowait


def wait_quiet(threshold: float, max_wait: float, what: str) -> float:
    """Wait (at most max_wait s) until the machine is < threshold busy for two 2 s windows in a row:
    other sessions' tests share these cores and skew every figure. Returns the last busy fraction."""
    deadline, quiet, said = time.monotonic() + max_wait, 0, False
    cores = os.cpu_count() or 1
    while True:
        b0 = machine_busy_seconds()
        time.sleep(2)
        frac = (machine_busy_seconds() - b0) / (2 * cores)
        quiet = quiet + 1 if frac < threshold else 0
        if quiet >= 2 or max_wait <= 0:
            return frac
        if time.monotonic() > deadline:
            log(f"   machine still {frac:.0%} busy after {max_wait:.0f}s; measuring {what} anyway (see foreign CPU)")
            return frac
        if not said:
            log(
                f"   machine {frac:.0%} busy (other processes); waiting up to {max_wait:.0f}s for < {threshold:.0%} before {what}"
            )
            said = True


def short_name(pid: int) -> str:
    """temporal / bao / moto_server ...: the program, not its interpreter."""
    argv = cmdline(pid).split()
    prog = argv[1] if len(argv) > 1 and "python" in argv[0].rsplit("/", 1)[-1] else (argv[0] if argv else "?")
    return prog.rsplit("/", 1)[-1]


def all_cpu() -> dict[int, tuple[str, float]]:
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            c = cpu_seconds(int(d))
            if c:
                out[int(d)] = (cmdline(int(d))[:90], c)
    return out


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    kids = [int(k) for k in f.read().split()]
                found += kids
                todo += kids
        except OSError:
            pass
    return found


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


# --------------------------------------------------------------------------- the stack
class Stack:
    """`jitaccess dev up --random-ports --dir DIR` in its own session; stopped with SIGINT."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.dev: dict = {}
        self.children: list[int] = []  # temporal + bao (own sessions), for the SIGKILL fallback
        self.stop_how = ""

    def start(self, timeout: float = 180) -> dict:
        exe = shutil.which(
            "jitaccess", path=os.pathsep.join([str(Path(sys.executable).parent), str(ROOT / ".venv" / "bin")])
        )
        if not exe:
            raise SystemExit("jitaccess not found next to this python or in .venv/bin; run with .venv/bin/python")
        self.log = open(self.workdir / "devup.log", "wb")
        self.proc = subprocess.Popen(
            [exe, "dev", "up", "--random-ports", "--dir", str(self.workdir)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        deadline = time.monotonic() + timeout
        dev_json = self.workdir / "dev.json"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jitaccess dev up exited with {self.proc.returncode}:\n{self.log_tail()}")
            if dev_json.exists():
                try:
                    self.dev = json.loads(dev_json.read_text())
                    if httpx.get(self.dev["api_url"] + "/healthz", timeout=2).status_code == 200:
                        self.children = descendants(self.proc.pid)
                        return self.dev
                except (ValueError, KeyError, httpx.HTTPError):
                    pass
            time.sleep(0.2)
        raise RuntimeError(f"jitaccess dev up not healthy within {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        p = self.workdir / "devup.log"
        return "\n".join(p.read_text(errors="replace").splitlines()[-n:]) if p.exists() else ""

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.children = sorted(set(self.children) | set(descendants(self.proc.pid)))
        try:
            os.killpg(self.proc.pid, signal.SIGINT)
            self.proc.wait(timeout)
            self.stop_how = f"SIGINT, exit {self.proc.returncode}"
        except subprocess.TimeoutExpired:
            self.stop_how = f"SIGINT ignored for {timeout:.0f}s: SIGKILL"
            for pid in [self.proc.pid] + self.children:  # only what this process started
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            self.proc.wait(10)
        except ProcessLookupError:
            pass
        # dev up stops Temporal and OpenBao itself; if one survived, it is ours to end
        for pid in self.children:
            if os.path.exists(f"/proc/{pid}") and proc_status(pid):
                self.stop_how += f"; leftover {pid} ({cmdline(pid)[:60]}) killed"
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        self.log.close()


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
    return {"lifecycles_per_s": n / s, "seconds": s, "calls_per_lifecycle": 5}


# --------------------------------------------------------------------------- the pipeline
async def fire(api: str, bearer: str, n: int, ttl: int, conc: int, done: list) -> list[dict]:
    """N requests issued at once, carried by `conc` connections (conc workers, so the client's own
    pool bookkeeping stays small and does not eat the CPU the stack is measured on)."""
    # httpcore tries `import sniffio` on every request; it is not installed, and a failed import is
    # not cached, so each try walks sys.path. Cache the miss (the bench client only; asyncio either way).
    sys.modules.setdefault("sniffio", None)
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    body = {"entitlement": ENTITLEMENT, "duration": ttl, "reason": "bench"}
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


async def run_pipeline(stack: Stack, n: int, ttl: int, conc: int, timeout: float, tick: float) -> dict:
    from jitaccess.ledger import Ledger

    dev = stack.dev
    ledger = Ledger(dev["ledger_url"])
    pid = stack.proc.pid
    done: list[dict] = []
    rss_samples: list[tuple[float, int]] = []
    procs: dict[str, list[int]] = {"worker+api (dev up)": [pid]}
    for c in stack.children:
        procs.setdefault(short_name(c), []).append(c)
    procs["bench client"] = [os.getpid()]
    from temporalio.client import Client

    tclient = await Client.connect(dev["temporal_address"])  # visibility: are any grant workflows still running?
    cpu0 = {k: sum(cpu_seconds(p) for p in v) for k, v in procs.items()}
    busy0, load0, all0 = machine_busy_seconds(), os.getloadavg(), all_cpu()
    t0 = time.time()
    fire_task = asyncio.create_task(fire(dev["api_url"], dev["users"]["alice"], n, ttl, conc, done))
    deadline = time.monotonic() + timeout
    last_print = 0.0
    counts: Counter = Counter()
    revoked_seen_at: float | None = None
    read_errors: Counter = Counter()
    while True:
        await asyncio.sleep(1.0)
        rss = proc_status(pid).get("VmRSS")
        if rss:
            rss_samples.append((time.time() - t0, rss))
        try:
            rows = await asyncio.to_thread(lambda: ledger.grants(limit=n + 1000))
        except Exception as e:
            msg = f"{e.__class__.__name__}: {str(e).splitlines()[0]}"
            read_errors[msg] += 1
            if read_errors[msg] == 1:
                log(f"  ledger read failed (shown once, counted): {msg}")
            rows = []
        ours = {r["grant_id"]: r["state"] for r in rows}
        # grants the ledger knows but the client does not: started, but the HTTP response failed
        ids = list(dict.fromkeys([d["grant_id"] for d in done if d.get("grant_id")] + list(ours)))
        counts = Counter(
            "revoked"
            if ours.get(g) == "revoked"
            else "failed"
            if ours.get(g) in FAILED
            else "active"
            if ours.get(g) in REACHED_ACTIVE
            else "pending"
            for g in ids
        )
        active_ever = counts["active"] + counts["revoked"]
        finished = fire_task.done() and counts["revoked"] + counts["failed"] >= len(ids)
        if finished and any("error" in d for d in done):
            # a failed response may hide a started grant that has not written to the ledger yet
            try:
                finished = (await tclient.count_workflows("ExecutionStatus='Running'")).count == 0
            except Exception:
                pass
        now = time.monotonic()
        if finished or now - last_print >= tick:
            last_print = now
            log(
                f"  t={time.time() - t0:6.1f}s  requested {len(done)}/{n} (errors {sum(1 for d in done if 'error' in d)})"
                f"  in ledger {len(ours)}"
                f"  active {active_ever}  revoked {counts['revoked']}  failed {counts['failed']}"
                f"  worker RSS {(rss or 0) / 1024:.0f} MB"
            )
        if finished:
            revoked_seen_at = time.time()
            break
        if now > deadline:
            log(f"  TIMEOUT after {timeout:.0f}s: not all grants reached a terminal state")
            break
    requests = await fire_task if fire_task.done() else list(done)
    if not fire_task.done():
        fire_task.cancel()
    status = proc_status(pid)
    elapsed = time.time() - t0
    cpu = {k: sum(cpu_seconds(p) for p in v) - cpu0[k] for k, v in procs.items()}
    busy = machine_busy_seconds() - busy0
    our_pids = {p for v in procs.values() for p in v}
    all1 = all_cpu()
    # processes alive at both ends; short-lived ones (a test run's servers) only show in the total
    foreign_top = sorted(
        ((all1[p][1] - all0[p][1], all1[p][0]) for p in all1.keys() & all0.keys() if p not in our_pids), reverse=True
    )[:5]
    cpu_use = {
        "elapsed_s": elapsed,
        "cores": os.cpu_count(),
        "machine_busy_cpu_s": busy,
        "ours_cpu_s": {k: round(v, 2) for k, v in cpu.items()},
        "foreign_cpu_s": busy - sum(cpu.values()),  # other sessions on the machine: contamination
        "foreign_top": [{"cpu_s": round(c, 2), "process": name} for c, name in foreign_top if c > 0.05],
        "loadavg_before": load0,
        "loadavg_after": os.getloadavg(),
    }

    # ---- figures from the ledger's events
    per: list[dict] = []
    stragglers, verify_fail = [], []
    known = {r["grant_id"]: r for r in requests if r.get("grant_id")}
    all_ids = list(dict.fromkeys(list(known) + await asyncio.to_thread(ledger.grant_ids)))
    for gid in all_ids:
        rec = known.get(gid, {})
        evs = await asyncio.to_thread(ledger.events, gid)
        by = {}
        for e in evs:
            by.setdefault(e.type, e)
        g: dict = {
            "grant_id": gid,
            "events": len(evs),
            "last_event": evs[-1].type if evs else None,
            "known_to_client": gid in known,
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
        v = await asyncio.to_thread(ledger.verify, gid)
        g["chain_ok"] = v.ok
        if not v.ok:
            verify_fail.append({"grant_id": gid, "problem": v.problem, "first_broken": v.first_broken})
        if "confirmed_at" not in g:
            row = await asyncio.to_thread(ledger.grant, gid)
            stragglers.append(
                {"grant_id": gid, "state": (row or {}).get("state"), "last_event": g["last_event"], "events": len(evs)}
            )
        per.append(g)
    ledger.close()
    try:
        temporal = await scan_histories(dev["temporal_address"], [g["grant_id"] for g in per])
    except Exception as e:
        temporal = {"error": f"{e.__class__.__name__}: {e}"}

    for x in per:
        if (st := temporal.get("_started", {}).get(x["grant_id"])) is not None:
            x["wf_started_at"] = st
    temporal.pop("_started", None)
    ms = lambda a, b: [(x[a] - x[b]) * 1000 for x in per if a in x and b in x]
    sent0 = min(r["sent"] for r in requests) if requests else t0
    confirmed = [x["confirmed_at"] for x in per if "confirmed_at" in x]
    wall = (max(confirmed) - sent0) if confirmed else None
    wall_observed = (revoked_seen_at - sent0) if revoked_seen_at else None
    errors = [r for r in requests if "error" in r]
    return {
        "n_requested": n,
        "http": {
            "accepted": sum(1 for r in requests if r.get("status") == 202),
            "errors": len(errors),
            "error_samples": [{"status": r.get("status"), "error": r["error"]} for r in errors[:5]],
            "error_kinds": dict(Counter(str(r.get("status") or r["error"].split(":")[0]) for r in errors)),
            "post_latency_ms": summary([(r["responded"] - r["sent"]) * 1000 for r in requests if "responded" in r]),
            "send_spread_ms": (max(r["sent"] for r in requests) - sent0) * 1000 if requests else None,
            "states_at_response": dict(Counter(r.get("state") for r in requests if r.get("grant_id"))),
        },
        "ledger_read_errors": dict(read_errors),
        "grants_in_ledger": len(all_ids),
        "grants_unknown_to_client": len(all_ids) - len(known),
        "revoked": len(confirmed),
        "revoked_already_gone": sum(1 for x in per if x.get("already_gone")),
        "stragglers": stragglers,
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
        },
        "revocation_attempts": dict(Counter(str(x.get("attempts")) for x in per if "attempts" in x)),
        "revocation_retrying_events": sum(x["retrying_events"] for x in per),
        "chains": {"verified": sum(1 for x in per if x["chain_ok"]), "total": len(per), "failures": verify_fail[:10]},
        "worker_rss_mb": {
            "peak_VmHWM": status.get("VmHWM", 0) / 1024,
            "end_VmRSS": status.get("VmRSS", 0) / 1024,
            "max_sampled_VmRSS": max((s for _, s in rss_samples), default=0) / 1024,
            "samples": len(rss_samples),
        },
        "cpu": cpu_use,
        "temporal": temporal,
        "other_processes_rss_mb": {
            f"{short_name(p)}[{p}]": proc_status(p).get("VmHWM", 0) / 1024 for p in stack.children
        },
    }


async def scan_histories(address: str, grant_ids: list[str]) -> dict:
    """Temporal's view: task queueing (schedule->start) and execution (start->complete) of workflow
    tasks, activities and timers, and any task time-outs/failures (each one is a retried workflow task).
    Also, per grant, when the server accepted the start (to split the API's share from the worker's)."""
    from temporalio.api.enums.v1 import EventType as E
    from temporalio.client import Client

    client = await Client.connect(address)
    sem = asyncio.Semaphore(16)
    spans: dict[str, list[float]] = {
        k: []
        for k in (
            "wft_schedule_to_start",
            "wft_start_to_complete (first task: new workflow)",
            "wft_start_to_complete (with ledger-flush local activity)",
            "wft_start_to_complete (other)",
            "activity_schedule_to_start",
            "activity_start_to_close",
            "timer_started_after_its_task_began",
            "timer_fired_late_by_server",
        )
    }
    bad: Counter = Counter()
    bad_grants: dict[str, list[str]] = {}
    started: dict[str, float] = {}

    async def one(gid: str) -> None:
        async with sem:
            hist = await client.get_workflow_handle(gid).fetch_history()
        evs = hist.events
        t: dict[int, float] = {}
        timers: dict[int, float] = {}
        first, last_wft_started = True, None
        for i, ev in enumerate(evs):
            at = ev.event_time.ToDatetime().timestamp()
            name = E.Name(ev.event_type).removeprefix("EVENT_TYPE_")
            t[ev.event_id] = at
            if name == "WORKFLOW_EXECUTION_STARTED":
                started[gid] = at
            elif name == "WORKFLOW_TASK_STARTED":
                last_wft_started = at
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
                spans["activity_schedule_to_start"].append(
                    (at - t[ev.activity_task_started_event_attributes.scheduled_event_id]) * 1000
                )
            elif name == "ACTIVITY_TASK_COMPLETED":
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
                bad[name] += 1
                bad_grants.setdefault(gid, []).append(name)

    await asyncio.gather(*[one(g) for g in grant_ids])
    return {
        "spans_ms": {k: summary(v) for k, v in spans.items()},
        "task_failures": dict(bad),
        "grants_with_task_failures": len(bad_grants),
        "examples": dict(list(bad_grants.items())[:5]),
        "_started": started,
    }


# --------------------------------------------------------------------------- logs and the floor
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


def run_floor(n: int, ttl: int) -> dict:
    log(f"\n== floor: {sys.executable} {FLOOR_SCRIPT} {n} {ttl}")
    import resource

    t = time.time()
    busy0 = machine_busy_seconds()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        p = subprocess.run(
            [sys.executable, str(FLOOR_SCRIPT), str(n), str(ttl)],
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
    return f


# --------------------------------------------------------------------------- report
def fmt(s: dict | None, keys=("p50", "p99", "max")) -> str:
    if not s:
        return "n/a"
    return " ".join(f"{k}={s[k]:.0f}" for k in keys if k in s)


def ratio(a, b) -> float | None:
    return a / b if a is not None and b else None


def report(res: dict) -> None:
    p, n, ttl = res["pipeline"], res["n"], res["ttl_s"]
    log(
        f"\n== jitaccess lifecycle bench  N={n} TTL={ttl}s  concurrency={res['concurrency']}"
        f"  ({res['machine']['platform']}, {res['machine']['cores']} cores)"
    )
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
    for s in p["stragglers"][:10]:
        log(f"  straggler {s['grant_id']} state={s['state']} last_event={s['last_event']} events={s['events']}")
    c = p["chains"]
    log(f"chains verified           {c['verified']}/{c['total']}")
    for f in c["failures"]:
        log(f"  broken {f['grant_id']}: {f['problem']} at {f['first_broken']}")
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
    b = res["bare"]
    log(
        f"bare provider lifecycles/s  hvac 4 calls {b['hvac']['lifecycles_per_s']:.1f}   "
        f"VaultTokenProvider 5 calls {b['provider']['lifecycles_per_s']:.1f}"
    )
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
    fl = res.get("floor")
    if fl and "lifecycles_per_s" in fl:
        log("\n== pipeline vs floor (same session)")
        log(f"{'':28}{'pipeline':>10}{'floor':>10}{'ratio':>8}")
        rows = [
            ("lifecycles/s", lps, fl["lifecycles_per_s"]),
            ("request->active p50 ms", (p["request_to_active_ms"] or {}).get("p50"), fl["request_to_active_ms"]["p50"]),
            ("request->active p99 ms", (p["request_to_active_ms"] or {}).get("p99"), fl["request_to_active_ms"]["p99"]),
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
                f"{name:<28}{(f'{a:.1f}' if a is not None else 'n/a'):>10}{(f'{f_:.1f}' if f_ is not None else 'n/a'):>10}"
                f"{(f'{rt:.2f}' if rt is not None else 'n/a'):>8}"
            )
        fc = fl["cpu"]
        log(
            f"floor run: {fl['seconds']:.1f}s, floor processes {fc['floor_cpu_s']:.1f} cpu-s, "
            f"foreign (other sessions) {fc['foreign_cpu_s']:.1f} cpu-s"
        )
    elif fl:
        log(f"\nfloor did not report figures (returncode {fl.get('returncode')})")


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", nargs="?", type=int, default=200, help="concurrent grants (default 200)")
    ap.add_argument("ttl", nargs="?", type=int, default=5, help="grant duration in seconds (default 5)")
    ap.add_argument("--floor", action="store_true", help=f"also run {FLOOR_SCRIPT} N TTL after the stack is stopped")
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
    n, ttl = args.n, args.ttl
    timeout = args.timeout or ttl + 60 + n
    workdir = Path(tempfile.mkdtemp(prefix="jitaccess-bench-"))
    started = datetime.now(UTC)
    res: dict = {
        "n": n,
        "ttl_s": ttl,
        "concurrency": args.concurrency,
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
    stack = Stack(workdir)
    ok = False
    try:
        log(f"== starting `jitaccess dev up --random-ports --dir {workdir}`")
        t = time.monotonic()
        dev = stack.start()
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

        log(
            f"== pipeline: {n} concurrent POST /v1/grants ({ENTITLEMENT}, duration {ttl}s) as alice; waiting for revocation "
            f"(at most {timeout:.0f}s)"
        )
        res["pipeline"] = asyncio.run(run_pipeline(stack, n, ttl, args.concurrency, timeout, args.tick))
        p = res["pipeline"]
        ok = p["revoked"] == p["grants_in_ledger"] == n and p["chains"]["verified"] == n and p["http"]["errors"] == 0
    finally:
        log("== stopping the stack (SIGINT to its process group)")
        stack.stop()
        log(f"   {stack.stop_how or 'not running'}")
        res["stack_stop"] = stack.stop_how
        if "pipeline" not in res:
            log(f"   stack directory kept: {workdir}\n--- devup.log tail ---\n{stack.log_tail()}")
    res["logs"] = scan_logs(workdir)
    if args.floor:
        res["machine_busy_before_floor"] = wait_quiet(args.quiet, args.quiet_wait, "the floor")
        res["floor"] = run_floor(n, ttl)
    p, b, fl = res["pipeline"], res["bare"], res.get("floor") or {}
    res["ratios"] = {
        "pipeline_over_bare_provider": ratio(p["lifecycles_per_s"], b["provider"]["lifecycles_per_s"]),
        "pipeline_over_bare_hvac": ratio(p["lifecycles_per_s"], b["hvac"]["lifecycles_per_s"]),
    }
    if "lifecycles_per_s" in fl:
        res["ratios"].update(
            {
                "throughput_pipeline_over_floor": ratio(p["lifecycles_per_s"], fl["lifecycles_per_s"]),
                "request_to_active_p50_pipeline_over_floor": ratio(
                    (p["request_to_active_ms"] or {}).get("p50"), fl["request_to_active_ms"]["p50"]
                ),
                "expiry_to_confirmed_p99_pipeline_over_floor": ratio(
                    (p["expiry_to_confirmed_ms"] or {}).get("p99"), fl["expiry_to_confirmed_ms"]["p99"]
                ),
            }
        )
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
