"""The faults, one after the other, never two at once: `worker-1`, `worker-2` (SIGKILL, restarted
after --worker-down), `workers` (both), `temporal` (SIGKILL, restarted on the same port and file
after --temporal-down), `openbao` (SIGSTOP for --bao-down, then SIGCONT)."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime

from . import log
from .grants import Grants, Planned
from .stack import WORKERS, Stack

Window = tuple[str, datetime, datetime]  # (fault, from, until it was back)


async def _kill_workers(stack: Stack, names: tuple[str, ...], down: float) -> None:
    log(f"fault: kill -9 {' and '.join(names)}")
    for name in names:
        stack.kill(name)
    await asyncio.sleep(down)
    log(f"fault: restart {' and '.join(names)}")
    for name in names:
        stack.spawn_worker(name)


async def _kill_temporal(stack: Stack, down: float) -> None:
    log("fault: kill -9 Temporal")
    stack.kill_temporal()
    await asyncio.sleep(down)
    log("fault: restart Temporal (same port, same database file)")
    await asyncio.to_thread(stack.start_temporal)


async def _freeze_openbao(stack: Stack, down: float) -> None:
    log(f"fault: SIGSTOP OpenBao for {down:g}s")
    stack.signal_server("openbao", signal.SIGSTOP)
    await asyncio.sleep(down)
    stack.signal_server("openbao", signal.SIGCONT)
    log("fault: SIGCONT OpenBao")


async def _one(fault: str, stack: Stack, args) -> str:
    """Inject `fault` and bring the piece back; its name in the figures."""
    if fault in WORKERS:
        await _kill_workers(stack, (fault,), args.worker_down)
        return f"{fault} kill -9"
    if fault == "workers":  # both at once: no worker (and no backstop) is left running
        await _kill_workers(stack, WORKERS, args.worker_down)
        return "both workers kill -9"
    if fault == "temporal":
        await _kill_temporal(stack, args.temporal_down)
        return "Temporal kill -9"
    if fault == "openbao":
        await _freeze_openbao(stack, args.bao_down)
        return "OpenBao SIGSTOP"
    raise SystemExit(f"unknown fault {fault!r}")


async def inject(args, stack: Stack, planned: list[Planned], grants: Grants, windows: list[Window]) -> None:
    """Every fault of --faults from --first-fault on (default: 4 s before the first expiry)."""
    first = min(p.ttl for p in planned)
    await asyncio.sleep(args.first_fault if args.first_fault is not None else max(1.0, first - 4))
    # the faults are for revocation: a worker killed mid-issue holds that grant's issue for the
    # activity's start-to-close timeout (30 s), longer than the grants live here
    for _ in range(60):
        if grants.settled() >= len(planned):
            break
        await asyncio.sleep(0.5)
    for i, fault in enumerate(args.faults):
        if i:
            await asyncio.sleep(args.fault_gap)
        down = datetime.now(UTC)
        name = await _one(fault, stack, args)
        windows.append((name, down, datetime.now(UTC)))
