"""`python -m jitaccess.workers.main [--role R]` / `jitaccess worker [--role R]`: run a worker until
SIGTERM/SIGINT.

Roles: `grants` polls the grant task queue (grants, onboardings, and reconciliation and checkpoints
when they have no queue of their own) and runs the expiry backstop; `background` polls only
JITACCESS_BACKGROUND_TASK_QUEUE (reconciliation, checkpoints); `all` (the default) is `grants`, plus
`background` in the same process when that queue is set."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal

import structlog
from temporalio.client import Client

from jitaccess.bootstrap import WorkerRole, build_worker, configure_logging, connect, require_background_queue
from jitaccess.config import Settings, load_catalogue
from jitaccess.config.settings import ConfigError
from jitaccess.ledger import Ledger
from jitaccess.ledger.migrate import LedgerSchemaError
from jitaccess.ops import metrics
from jitaccess.ops.memory import freeze_startup_heap, set_young_threshold
from jitaccess.ops.temporal_setup import ensure_search_attributes
from jitaccess.workers.backstop import start_backstop
from jitaccess.workers.checkpointing import ensure_checkpoint_schedule
from jitaccess.workers.factory import run_until, stop_on_signals
from jitaccess.workers.schedules import ensure_reconciliation_schedule

ROLES: dict[str, tuple[WorkerRole, ...]] = {
    "all": ("grants", "background"),
    "grants": ("grants",),
    "background": ("background",),
}


def worker_roles(settings: Settings, role: str) -> tuple[WorkerRole, ...]:
    """The workers a process with `role` runs: `background` only where it has a queue of its own."""
    if role not in ROLES:
        raise ConfigError(f"unknown worker role {role!r}: one of {', '.join(ROLES)}")
    if role == "background":
        require_background_queue(settings)
    split = settings.background_queue != settings.task_queue
    return tuple(r for r in ROLES[role] if r == "grants" or split)


async def run_worker(settings: Settings, role: str = "all", stop_signals: tuple[signal.Signals, ...] = ()) -> None:
    """Run the workers of `role` until SIGTERM / SIGINT (or `stop_signals`), then stop gracefully."""
    roles = worker_roles(settings, role)
    load_catalogue(settings.catalogue_file)  # a catalogue it cannot run with fails the start, before anything else
    ledger = Ledger(settings.ledger_url)
    # ends identity-based access at expiry whatever Temporal does: started before connecting to it
    backstop = start_backstop(settings, ledger) if "grants" in roles else None
    try:
        await _serve(settings, ledger, roles, stop_signals)
    finally:
        if backstop is not None:
            backstop.stop()
        ledger.close()


async def _serve(
    settings: Settings, ledger: Ledger, roles: tuple[WorkerRole, ...], stop_signals: tuple[signal.Signals, ...]
) -> None:
    stop = stop_on_signals(*stop_signals)
    client = await _connect_when_up(settings, stop)
    if client is None:  # stopped before Temporal came back
        return
    await ensure_reconciliation_schedule(client, settings)  # idempotent: every worker may call it
    await ensure_checkpoint_schedule(client, settings)  # only with JITACCESS_CHECKPOINT_KEY_FILE
    if settings.search_attributes:  # grants upsert them: refuse to run on a namespace without them
        await ensure_search_attributes(client, settings.temporal_namespace)
    workers = [build_worker(client, settings, role=r, ledger=ledger).worker for r in roles]
    served = metrics.MetricsServer(settings.metrics_host, settings.metrics_port) if settings.metrics_port else None
    if served is not None:  # GET /metrics: SDK runtime metrics + jitaccess's own
        served.start()
    freeze_startup_heap()  # built, not yet polling: what exists now lives as long as the process
    set_young_threshold(settings.gc_young_threshold)
    await run_until(workers, stop)  # then: stop polling, let running activities finish (graceful_shutdown_timeout)
    if served is not None:
        served.stop()


async def _connect_when_up(settings: Settings, stop: asyncio.Event) -> Client | None:
    """Connect to Temporal, waiting (with backoff, up to 10 s apart) while it is unreachable: a worker
    (re)started during a Temporal outage keeps its expiry backstop running instead of exiting."""
    delay = 0.5
    while True:
        try:
            return await connect(settings)
        except RuntimeError as e:  # the SDK's "Failed client connect"
            structlog.get_logger("jitaccess").warning(
                "temporal_unreachable", address=settings.temporal_address, retry_in_seconds=delay, error=str(e)[:300]
            )
        try:
            await asyncio.wait_for(stop.wait(), delay)
            return None
        except TimeoutError:
            delay = min(delay * 2, 10.0)


def main(role: str = "all") -> None:
    configure_logging()
    try:
        asyncio.run(run_worker(Settings(), role))
    except LedgerSchemaError as e:  # the schema is `jitaccess db upgrade`'s job, never a worker's
        structlog.get_logger("jitaccess").error("ledger_schema_not_current", error=str(e))
        os._exit(2)
    except ConfigError as e:  # e.g. a catalogue entry with bad provider params: the message names the field
        structlog.get_logger("jitaccess").error("config_invalid", error=str(e))
        os._exit(1)
    os._exit(0)  # sdk-python #300: avoid a crash at interpreter exit


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m jitaccess.workers.main", description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=list(ROLES), default="all")
    main(parser.parse_args().role)
