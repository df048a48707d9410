"""What is sampled while the bench runs: the pipeline's progress (from the ledger), the worker's
RSS, and CPU use of our processes and of everything else on the machine (/proc)."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from . import log

REACHED_ACTIVE = {"active", "revoking", "revocation_failing", "revoked"}
FAILED = {"denied", "issue_failed", "cancelled", "approval_expired"}


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


def stack_gone(pid: int, t: float) -> bool:
    """Has the stack's process died (gone, or a zombie: no VmRSS)? Says so once, for the loops that
    wait on it: a dead `dev up` would otherwise be waited for until the run's timeout."""
    if proc_status(pid):
        return False
    log(f"  t={t:6.1f}s  the stack's process (dev up, pid {pid}) is gone: see devup.log in its directory, and dmesg")
    return True


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
    """temporal / bao / moto_server ...: the program, not its interpreter; dev up's background worker
    (a multiprocessing spawn child) and its resource tracker by what they are."""
    line = cmdline(pid)
    if "multiprocessing.spawn" in line:
        return BACKGROUND_WORKER
    if "multiprocessing.resource_tracker" in line:
        return "mp resource_tracker"
    argv = line.split()
    prog = argv[1] if len(argv) > 1 and "python" in argv[0].rsplit("/", 1)[-1] else (argv[0] if argv else "?")
    return prog.rsplit("/", 1)[-1]


BACKGROUND_WORKER = "background worker (dev up)"


def background_worker_pid(children: list[int]) -> int | None:
    return next((p for p in children if short_name(p) == BACKGROUND_WORKER), None)


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


class CpuMeter:
    """CPU-seconds of our processes (worker+API, the servers, this client) and of the whole machine,
    from when it is made until `use()`."""

    def __init__(self, dev_up_pid: int, children: list[int]) -> None:
        procs: dict[str, list[int]] = {"worker+api (dev up)": [dev_up_pid]}
        for c in children:
            procs.setdefault(short_name(c), []).append(c)
        procs["bench client"] = [os.getpid()]
        self.procs = procs
        self.cpu0 = {k: sum(cpu_seconds(p) for p in v) for k, v in procs.items()}
        self.busy0, self.load0, self.all0 = machine_busy_seconds(), os.getloadavg(), all_cpu()

    def use(self, elapsed: float) -> dict[str, Any]:
        cpu = {k: sum(cpu_seconds(p) for p in v) - self.cpu0[k] for k, v in self.procs.items()}
        busy = machine_busy_seconds() - self.busy0
        our_pids = {p for v in self.procs.values() for p in v}
        all0, all1 = self.all0, all_cpu()
        # processes alive at both ends; short-lived ones (a test run's servers) only show in the total
        foreign_top = sorted(
            ((all1[p][1] - all0[p][1], all1[p][0]) for p in all1.keys() & all0.keys() if p not in our_pids),
            reverse=True,
        )[:5]
        return {
            "elapsed_s": elapsed,
            "cores": os.cpu_count(),
            "machine_busy_cpu_s": busy,
            "ours_cpu_s": {k: round(v, 2) for k, v in cpu.items()},
            "foreign_cpu_s": busy - sum(cpu.values()),  # other sessions on the machine: contamination
            "foreign_top": [{"cpu_s": round(c, 2), "process": name} for c, name in foreign_top if c > 0.05],
            "loadavg_before": self.load0,
            "loadavg_after": os.getloadavg(),
        }


@dataclass
class Progress:
    """What watching the pipeline saw: worker RSS over time, ledger read errors, when it ended."""

    rss_samples: list[tuple[float, int]] = field(default_factory=list)
    # each second: (t, cores the whole machine was busy, cores the worker+API process was): whether
    # the cores were saturated while the burst ran, and when
    busy_samples: list[tuple[float, float, float]] = field(default_factory=list)
    read_errors: Counter = field(default_factory=Counter)
    revoked_seen_at: float | None = None


def tally(done: list[dict], ours: dict[str, str]) -> tuple[list[str], Counter]:
    """Every grant the client or the ledger knows, counted as pending / active / revoked / failed.
    Grants the ledger knows but the client does not: started, but the HTTP response failed."""
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
    return ids, counts


async def ledger_states(
    ledger: Any, n: int, progress: Progress, exclude: AbstractSet[str] = frozenset()
) -> dict[str, str]:
    """Each grant's state in the ledger, but for `exclude` (grants of an earlier phase)."""
    try:
        rows = await asyncio.to_thread(lambda: ledger.grants(limit=n + 1000))
    except Exception as e:
        msg = f"{e.__class__.__name__}: {str(e).splitlines()[0]}"
        progress.read_errors[msg] += 1
        if progress.read_errors[msg] == 1:
            log(f"  ledger read failed (shown once, counted): {msg}")
        rows = []
    return {r["grant_id"]: r["state"] for r in rows if r["grant_id"] not in exclude}


async def watch(
    pid: int,
    ledger: Any,
    tclient: Any,
    fire_task: asyncio.Task,
    done: list[dict],
    n: int,
    timeout: float,
    tick: float,
    t0: float,
    exclude: AbstractSet[str] = frozenset(),
) -> Progress:
    """Every second until every grant is revoked or failed (or `timeout`): the worker's RSS, and
    a progress line every `tick` seconds."""
    progress = Progress()
    deadline = time.monotonic() + timeout
    last_print = 0.0
    before = (time.monotonic(), machine_busy_seconds(), cpu_seconds(pid))
    while True:
        await asyncio.sleep(1.0)
        now_busy = (time.monotonic(), machine_busy_seconds(), cpu_seconds(pid))
        dt = now_busy[0] - before[0]
        progress.busy_samples.append(
            (
                round(time.time() - t0, 1),
                round((now_busy[1] - before[1]) / dt, 2),
                round((now_busy[2] - before[2]) / dt, 2),
            )
        )
        before = now_busy
        rss = proc_status(pid).get("VmRSS")
        if rss:
            progress.rss_samples.append((time.time() - t0, rss))
        elif stack_gone(pid, time.time() - t0):
            return progress
        ours = await ledger_states(ledger, n + len(exclude), progress, exclude)
        ids, counts = tally(done, ours)
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
            progress.revoked_seen_at = time.time()
            return progress
        if now > deadline:
            log(f"  TIMEOUT after {timeout:.0f}s: not all grants reached a terminal state")
            return progress
