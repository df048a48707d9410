"""`python -m jitaccess.workers.main` / `jitaccess worker`: run one grant worker until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import os
import signal

from jitaccess.config import Settings
from jitaccess.workers.checkpointing import ensure_checkpoint_schedule
from jitaccess.workers.common import build_worker, configure_logging, connect, ensure_reconciliation_schedule


async def run_worker(settings: Settings) -> None:
    client = await connect(settings)
    await ensure_reconciliation_schedule(client, settings)  # idempotent: every worker may call it
    await ensure_checkpoint_schedule(client, settings)  # only with JITACCESS_CHECKPOINT_KEY_FILE
    worker, ledger = build_worker(client, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        await stop.wait()
    ledger.close()


def main() -> None:
    configure_logging()
    asyncio.run(run_worker(Settings()))
    os._exit(0)  # sdk-python #300: avoid a crash at interpreter exit


if __name__ == "__main__":
    main()
