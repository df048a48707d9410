"""The background worker `dev up` runs beside itself, as compose runs one (`jitaccess worker --role
background`): a process of its own, so that a reconciliation scan's or a checkpoint's CPU and heap
are never the grant worker's (bench/README.md, twelfth session).

It is a `multiprocessing` spawn child: its settings (secrets included) reach it pickled through
a pipe, never in its environment or command line. It writes the same SIEM lines to the same
file, ignores the terminal's Ctrl-C (`dev up` stops it, after its own worker, with SIGTERM:
running activities get `graceful_shutdown_timeout`), and stops by itself when `dev up` is gone."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.process import BaseProcess
from pathlib import Path

from jitaccess.config import Settings

PARENT_CHECK_SECONDS = 1.0


def _stop_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)  # the worker's own handler: a graceful stop


def _run(settings: Settings, log_file: Path) -> None:
    from jitaccess.bootstrap import configure_logging
    from jitaccess.workers.main import run_worker

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for `dev up`, which stops us in order
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    configure_logging(stream=os.fdopen(fd, "a", buffering=1))
    threading.Thread(target=_stop_when_orphaned, args=(os.getppid(),), daemon=True).start()
    asyncio.run(run_worker(settings, "background", stop_signals=(signal.SIGTERM,)))
    os._exit(0)  # sdk-python #300


def start_background_worker(settings: Settings, log_file: Path) -> BaseProcess:
    """Start the background worker process (`settings.background_task_queue` must be set)."""
    proc = multiprocessing.get_context("spawn").Process(
        target=_run, args=(settings, log_file), name="jitaccess-background-worker"
    )
    proc.start()
    return proc


def stop_background_worker(proc: BaseProcess, settings: Settings) -> None:
    """SIGTERM, then wait for its graceful shutdown; SIGKILL if it outlasts that."""
    if proc.is_alive():
        proc.terminate()
        proc.join(settings.graceful_shutdown_timeout.total_seconds() + 5)
    if proc.is_alive():
        proc.kill()
        proc.join(5)
