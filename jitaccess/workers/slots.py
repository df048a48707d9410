"""Workflow-task slots that admit new work at a bounded rate: grants under way first.

A worker polls two queues for workflow tasks: its own sticky queue, where the next task of every
run it has cached arrives (an issue's answer, a fired expiry timer, a decision), and the task
queue itself, where a new grant's first task arrives (and a task of a run no worker has cached).
Left alone, a burst of requests fills the worker with first tasks, and every grant already under
way then shares the cores with all of them: its steps to `active`, and its revoke at expiry, wait
behind new work. Capping the slots for the task queue's own polls paces how fast new grants are
taken in; the burst waits in Temporal's matching instead (bench/README.md, eighteenth session).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass

from temporalio.worker import (
    CustomSlotSupplier,
    SlotMarkUsedContext,
    SlotPermit,
    SlotReleaseContext,
    SlotReserveContext,
)


@dataclass
class _Permit(SlotPermit):
    normal_queue: bool


@dataclass
class _Waiter:
    normal_queue: bool
    future: asyncio.Future[_Permit]
    loop: asyncio.AbstractEventLoop


class NewWorkPacedSlots(CustomSlotSupplier):
    """`total` workflow-task slots, of which at most `normal_queue` poll the task queue itself.
    A freed slot goes to a sticky poll waiting for one before a poll for new work."""

    def __init__(self, total: int, normal_queue: int) -> None:
        if not 1 <= normal_queue <= total:
            raise ValueError(f"normal_queue must be between 1 and total ({total}), not {normal_queue}")
        self._lock = threading.Lock()  # release_slot / try_reserve_slot come from the SDK's own threads
        self._free = total
        self._free_normal = normal_queue
        self._waiting: deque[_Waiter] = deque()

    def _take(self, normal_queue: bool) -> _Permit | None:
        """Under the lock."""
        if self._free < 1 or (normal_queue and self._free_normal < 1):
            return None
        self._free -= 1
        self._free_normal -= normal_queue
        return _Permit(normal_queue)

    async def reserve_slot(self, ctx: SlotReserveContext) -> SlotPermit:
        normal_queue = not ctx.is_sticky
        with self._lock:
            permit = self._take(normal_queue)
            if permit is not None:
                return permit
            loop = asyncio.get_running_loop()
            waiter = _Waiter(normal_queue, loop.create_future(), loop)
            self._waiting.append(waiter)
        try:
            return await waiter.future
        except asyncio.CancelledError:
            with self._lock:
                if waiter in self._waiting:
                    self._waiting.remove(waiter)
                    raise
            # granted as it was cancelled: hand the slot back
            self._give_back(waiter.future.result() if waiter.future.done() and not waiter.future.cancelled() else None)
            raise

    def try_reserve_slot(self, ctx: SlotReserveContext) -> SlotPermit | None:
        with self._lock:
            return self._take(not ctx.is_sticky)

    def mark_slot_used(self, ctx: SlotMarkUsedContext) -> None:
        pass

    def release_slot(self, ctx: SlotReleaseContext) -> None:
        permit = ctx.permit
        self._give_back(permit if isinstance(permit, _Permit) else None)

    def _give_back(self, permit: _Permit | None) -> None:
        if permit is None:
            return
        with self._lock:
            self._free += 1
            self._free_normal += permit.normal_queue
            granted = self._grant_waiting()
        for waiter, given in granted:
            waiter.loop.call_soon_threadsafe(self._deliver, waiter, given)

    def _grant_waiting(self) -> list[tuple[_Waiter, _Permit]]:
        """Under the lock: the free slots to whoever waits, sticky polls first."""
        granted = []
        for sticky_first in (False, True):
            for waiter in [w for w in self._waiting if w.normal_queue is sticky_first]:
                permit = self._take(waiter.normal_queue)
                if permit is None:
                    break
                self._waiting.remove(waiter)
                granted.append((waiter, permit))
        return granted

    def _deliver(self, waiter: _Waiter, permit: _Permit) -> None:
        if waiter.future.done():  # cancelled meanwhile: nobody holds this slot
            self._give_back(permit)
        else:
            waiter.future.set_result(permit)
