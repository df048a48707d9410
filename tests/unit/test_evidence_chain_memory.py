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


@pytest.fixture
def written(monkeypatch) -> list[list[IdentityEvent]]:
    """Workflow time and the record_events activity, replaced: what each flush wrote, in order."""
    batches: list[list[IdentityEvent]] = []

    async def execute_activity(name, batch, **kwargs) -> None:
        batches.append(list(batch.events))

    monkeypatch.setattr(common.workflow, "now", lambda: datetime(2026, 12, 4, tzinfo=UTC))
    monkeypatch.setattr(common.workflow, "patched", lambda patch_id: True)
    monkeypatch.setattr(common.workflow, "execute_activity", execute_activity)
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
