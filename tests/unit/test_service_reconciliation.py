"""The reconciliation use cases over fakes: who may run it and read its report."""

from __future__ import annotations

import pytest

from jitaccess.service.errors import NotFound, RequestRefused, RunFailed
from tests.unit.service_fakes import ALICE, BOB, ERIN, IVAN, FakeLedger, FakeWorkflows, build


async def test_a_reconciler_runs_it_and_is_recorded_as_asking():
    workflows = FakeWorkflows()
    report = await build(workflows).reconciliation.run(BOB, dry_run=True)
    [inp] = workflows.reconciled
    assert (inp.requested_by, inp.requested_by_kind, inp.dry_run) == ("bob", "human", True)
    assert report.run_id == inp.run_id and report.chain_id == f"reconciliation-{inp.run_id}"
    await build(workflows).reconciliation.run(ERIN)  # admins too
    assert len(workflows.reconciled) == 2


async def test_others_may_not_run_it():
    workflows = FakeWorkflows()
    for who in (ALICE, IVAN):
        with pytest.raises(RequestRefused) as e:
            await build(workflows).reconciliation.run(who)
        assert (e.value.kind.value, e.value.rule) == ("forbidden", "not_reconciler")
    assert workflows.reconciled == []


async def test_a_failed_run_says_so():
    workflows = FakeWorkflows()
    workflows.reconcile_fails = True
    with pytest.raises(RunFailed):
        await build(workflows).reconciliation.run(BOB)


async def test_the_last_report_is_for_reconcilers_and_auditors():
    ledger = FakeLedger()
    uc = build(ledger=ledger)
    with pytest.raises(NotFound):
        await uc.reconciliation.last(IVAN)  # none yet
    ledger.report = {"run_id": "r1"}
    assert await uc.reconciliation.last(IVAN) == await uc.reconciliation.last(BOB) == {"run_id": "r1"}
    with pytest.raises(RequestRefused):
        await uc.reconciliation.last(ALICE)
