"""EvidenceChain (jitaccess.workflows.common) outside a workflow: each flush writes exactly the
events emitted since the last one, they link into one verifiable chain, and the chain holds only
its last event and the unflushed ones (a held grant keeps no event history in memory)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from jitaccess.domain.event_types.grant import GrantExpired
from jitaccess.domain.events import IdentityEvent, verify_chain
from jitaccess.domain.principals import SYSTEM_ACTOR
from jitaccess.workflows import common
from jitaccess.workflows.common import EvidenceChain


class Task:
    """The workflow task the fakes run in: its history length (a later task: a longer history)."""

    history_length = 3

    def get_current_history_length(self) -> int:
        return self.history_length


@pytest.fixture
def task(monkeypatch) -> Task:
    current = Task()
    monkeypatch.setattr(common.workflow, "info", lambda: current)
    return current


@pytest.fixture
def how() -> list[str]:
    """How each flush wrote: "activity" (a regular one) or "local" (a local activity)."""
    return []


@pytest.fixture
def written(monkeypatch, task, how) -> list[list[IdentityEvent]]:
    """Workflow time and the record_events activity, replaced: what each flush wrote, in order."""
    batches: list[list[IdentityEvent]] = []

    def writer(kind: str):
        async def execute(name, batch, **kwargs) -> None:
            batches.append(list(batch.events))
            how.append(kind)

        return execute

    monkeypatch.setattr(common.workflow, "now", lambda: datetime(2026, 12, 4, tzinfo=UTC))
    monkeypatch.setattr(common.workflow, "patched", lambda patch_id: True)
    monkeypatch.setattr(common.workflow, "execute_activity", writer("activity"))
    monkeypatch.setattr(common.workflow, "execute_local_activity", writer("local"))
    return batches


def emit(chain: EvidenceChain, n: int) -> None:
    for _ in range(n):
        chain.emit(GrantExpired(expires_at="2026-12-04T00:00:00Z"), SYSTEM_ACTOR)


def held_events(chain: EvidenceChain) -> int:
    """IdentityEvents the chain object refers to, directly or through its lists."""
    values = list(vars(chain).values())
    return sum(isinstance(v, IdentityEvent) for v in values) + sum(
        isinstance(e, IdentityEvent) for v in values if isinstance(v, list) for e in v
    )


def test_flushes_write_each_event_once_in_one_chain_and_keep_only_the_last(written) -> None:
    chain = EvidenceChain("grant-1")
    emit(chain, 3)
    asyncio.run(chain.flush())
    emit(chain, 2)
    assert held_events(chain) == 3  # the last flushed one (to link to) and the two unflushed
    asyncio.run(chain.flush())
    asyncio.run(chain.flush())  # nothing new: nothing written

    assert [len(b) for b in written] == [3, 2]
    events = [e for b in written for e in b]
    assert verify_chain("grant-1", events).ok
    assert chain.count == 5 and chain.last == events[-1]
    assert held_events(chain) == 1


def test_a_chain_carried_over_continues_from_its_last_event_without_rewriting_it(written) -> None:
    first = EvidenceChain("grant-2")
    emit(first, 2)
    asyncio.run(first.flush())
    carried = EvidenceChain("grant-2", first.last)  # continue-as-new hands over the last event
    emit(carried, 1)
    asyncio.run(carried.flush())

    assert [len(b) for b in written] == [2, 1]
    assert verify_chain("grant-2", [e for b in written for e in b]).ok
    assert carried.count == 2  # the carried event and the new one: what this run has seen


def test_a_local_activity_writes_only_the_last_events_and_only_if_every_attempt_builds_them_alike(
    written, task, how
) -> None:
    """The last write (the workflow ends after it) of events made in a task Temporal accepted
    before, or stamped from an activity's answer after such events: a local activity. Made in this
    task at its own time (a retried attempt would stamp them anew), stamped after such an event (its
    prev_hash), or not the last write: a regular activity."""
    chain = EvidenceChain("grant-3")
    answer = datetime(2026, 12, 4, 0, 0, 1, tzinfo=UTC)
    emit(chain, 2)
    asyncio.run(chain.flush(last=True))  # this task's own events
    emit(chain, 1)
    task.history_length = 9  # the next task: the event above was made in an accepted one
    chain.emit(GrantExpired(expires_at="x"), SYSTEM_ACTOR, answer)
    asyncio.run(chain.flush())  # built alike, but the workflow goes on: a wait may be armed behind it
    chain.emit(GrantExpired(expires_at="x"), SYSTEM_ACTOR, answer)
    asyncio.run(chain.flush(last=True))
    emit(chain, 1)
    chain.emit(GrantExpired(expires_at="x"), SYSTEM_ACTOR, answer)  # after this task's own event
    asyncio.run(chain.flush(last=True))
    task.history_length = 12
    chain.emit(GrantExpired(expires_at="x"), SYSTEM_ACTOR, answer)  # after events all written
    asyncio.run(chain.flush(last=True))

    assert how == ["activity", "activity", "local", "activity", "local"]
    assert [len(b) for b in written] == [2, 2, 1, 2, 1]
    assert verify_chain("grant-3", [e for b in written for e in b]).ok


def test_a_stamped_event_never_goes_back_before_the_chain_s_last(written) -> None:
    """An activity's clock a little behind the workflow's: the event keeps the chain's order in time."""
    chain = EvidenceChain("grant-4")
    emit(chain, 1)  # at the workflow's time, 2026-12-04T00:00:00
    early = chain.emit(GrantExpired(expires_at="x"), SYSTEM_ACTOR, datetime(2026, 12, 3, 23, 59, tzinfo=UTC))
    late = chain.emit(GrantExpired(expires_at="x"), SYSTEM_ACTOR, datetime(2026, 12, 4, 0, 0, 2, tzinfo=UTC))
    assert early.at == "2026-12-04T00:00:00.000000Z"  # the first event's
    assert late.at == "2026-12-04T00:00:02.000000Z"
