"""Group commit: appends that arrive while one batch is being written go to the database together,
in the next transaction, written by one writer thread per ledger.

A worker runs up to 64 activities at once, each flushing a grant's events. Written one
transaction each, they queued on the connection pool and on the GIL (bench/ledger_rate.py: 787
events/s at 64 writers against 941 at 8, p99 2.7 s). Each caller now queues its request and waits
on its own answer; the writer takes everything queued, writes it and answers each caller. (A first
version let the caller holding a lock write for the others: every write was followed by the
waiters passing that lock along one by one, half the writer's time.)"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

Req = TypeVar("Req")
Res = TypeVar("Res")

_STOP = object()


class GroupCommit(Generic[Req, Res]):
    def __init__(self, write: Callable[[list[Req]], list[Res | Exception]], name: str = "group-commit") -> None:
        """`write(batch)` stores a batch and answers per request, in order: a result or the
        exception that request (alone) failed with."""
        self._write = write
        self._name = name
        self._queue: queue.SimpleQueue[tuple[Req, Future[Res]] | object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._writer: threading.Thread | None = None
        self._pid = os.getpid()

    def submit(self, req: Req) -> Res:
        answer: Future[Res] = Future()
        with self._lock:
            if self._writer is None or self._pid != os.getpid():
                # started on first use (processes that only read never start one), and again in a
                # forked child, which has the parent's queue but not its thread
                self._queue, self._pid = queue.SimpleQueue(), os.getpid()
                self._writer = threading.Thread(target=self._run, args=(self._queue,), name=self._name, daemon=True)
                self._writer.start()
            self._queue.put((req, answer))
        return answer.result()

    def close(self, timeout: float = 10) -> None:
        """Write what is queued, then stop the writer (a later submit starts another)."""
        with self._lock:
            writer, self._writer = self._writer, None
            if writer is not None:
                self._queue.put(_STOP)
        if writer is not None and writer is not threading.current_thread():
            writer.join(timeout)

    def _run(self, pending: queue.SimpleQueue[tuple[Req, Future[Res]] | object]) -> None:
        while True:
            item = pending.get()
            batch: list[tuple[Req, Future[Res]]] = []
            while item is not _STOP:
                batch.append(item)  # type: ignore[arg-type]
                try:
                    item = pending.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._write_batch(batch)
            if item is _STOP:
                return

    def _write_batch(self, batch: list[tuple[Req, Future[Res]]]) -> None:
        try:
            results = self._write([req for req, _ in batch])
        except BaseException as e:  # the writer itself broke: every caller of this batch hears it
            for _, answer in batch:
                answer.set_exception(e)
            return
        for (_, answer), result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                answer.set_exception(result)
            else:
                answer.set_result(result)
