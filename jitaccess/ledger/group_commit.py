"""Group commit: appends that arrive while one is being written go to the database together, in
one transaction, written by whichever caller gets to the writer's lock first.

A worker runs up to 64 activities at once, each flushing a grant's events. Written one
transaction each they queued on the connection pool and on the GIL (bench/ledger_rate.py: 2,080
events/s at 64 writers against 3,894 at 8). Here each caller queues its request, then takes the
writer's lock; whoever holds it writes everything queued so far and hands each caller its own
answer, so a caller waits for at most the batch in flight and the one with its own request."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

Req = TypeVar("Req")
Res = TypeVar("Res")


class GroupCommit(Generic[Req, Res]):
    def __init__(self, write: Callable[[list[Req]], list[Res | Exception]]) -> None:
        """`write(batch)` stores a batch and answers per request, in order: a result or the
        exception that request (alone) failed with."""
        self._write = write
        self._queue_lock = threading.Lock()
        self._writer_lock = threading.Lock()
        self._queue: list[tuple[Req, Future[Res]]] = []

    def submit(self, req: Req) -> Res:
        answer: Future[Res] = Future()
        with self._queue_lock:
            self._queue.append((req, answer))
        with self._writer_lock:
            if not answer.done():  # not yet written by the caller before us: write all that waits
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._write_batch(batch)
        return answer.result()

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
