"""The API asks for eager workflow start for at most `eager_start_limit` grant starts at once
(unbounded, a burst fixed every grant's window before their issues could run: bench/README.md)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import pytest
from temporalio.client import Client

from jitaccess.api.gateway import TemporalWorkflows
from jitaccess.config import Settings
from jitaccess.domain.grant import GrantInput


class HeldStarts:
    """A Temporal client whose starts stay in flight until released; records each start's flag."""

    def __init__(self, fail: bool = False) -> None:
        self.eager: list[bool] = []
        self.release = asyncio.Event()
        self.fail = fail

    async def start_workflow(self, *args: Any, request_eager_start: bool = False, **kw: Any) -> None:
        self.eager.append(request_eager_start)
        await self.release.wait()
        if self.fail:
            raise RuntimeError("frontend unavailable")


def grant(i: int) -> GrantInput:
    decision = SimpleNamespace(break_glass=False, allowed=True)
    return cast(GrantInput, SimpleNamespace(grant_id=f"grant-{i}", decision=decision))


async def test_only_the_limit_of_concurrent_starts_ask_for_eager_start() -> None:
    client = HeldStarts()
    gateway = TemporalWorkflows(cast(Client, client), Settings(eager_start_limit=3))
    starts = [asyncio.create_task(gateway.start_grant(grant(i))) for i in range(5)]
    await asyncio.sleep(0)
    assert client.eager == [True, True, True, False, False]
    client.release.set()
    await asyncio.gather(*starts)
    await gateway.start_grant(grant(5))  # the slots came back
    assert client.eager[-1] is True


async def test_a_failed_start_gives_its_slot_back() -> None:
    client = HeldStarts(fail=True)
    client.release.set()
    gateway = TemporalWorkflows(cast(Client, client), Settings(eager_start_limit=1))
    for i in range(2):
        with pytest.raises(RuntimeError, match="frontend unavailable"):
            await gateway.start_grant(grant(i))
    assert client.eager == [True, True]


async def test_limit_zero_never_asks() -> None:
    client = HeldStarts()
    client.release.set()
    gateway = TemporalWorkflows(cast(Client, client), Settings(eager_start_limit=0))
    await gateway.start_grant(grant(0))
    assert client.eager == [False]
