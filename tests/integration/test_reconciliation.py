"""Reconciliation against the real servers (issue 5, 'Reconciliation'): every case is created for
real in OpenBao (and PostgreSQL) — a grant's token revoked by hand, a tagged token with no
grant, an extra token riding on a live grant's tag — and ReconciliationWorkflow runs on the
Temporal dev server through a real worker, on demand, through the API and via its Schedule.

The session's OpenBao is shared with other tests, so a run may also see their leftovers;
assertions look at the findings for the grants each test made."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from pydantic import SecretStr
from temporalio.service import RPCError

from jitaccess.domain.grant import ActionInput
from jitaccess.domain.reconciliation import Finding, ReconcileInput, ReconciliationReport, chain_id
from jitaccess.domain.states import GrantState
from jitaccess.workers.schedules import RECONCILIATION_SCHEDULE_ID, ensure_reconciliation_schedule
from jitaccess.workflows.grant import GrantWorkflow
from jitaccess.workflows.reconciliation import ReconciliationWorkflow
from tests.conftest import running_worker
from tests.support import eventually
from tests.workflows.support import finish, grant_input, principal, token_is_dead, types, vault_root, wait_state


async def reconcile(client, settings, *, dry_run: bool = False, by: str | None = "carol") -> ReconciliationReport:
    run_id = uuid.uuid4().hex[:12]
    inp = ReconcileInput(dry_run=dry_run, run_id=run_id, requested_by=by)
    return await asyncio.wait_for(
        client.execute_workflow(ReconciliationWorkflow.run, inp, id=chain_id(run_id), task_queue=settings.task_queue),
        90,
    )


def about(report: ReconciliationReport, grant_id: str) -> list[Finding]:
    return [f for f in report.findings if f.grant_id == grant_id]


def check_run_chain(ledger, report: ReconciliationReport, *expected: str) -> list:
    evs = ledger.events(report.chain_id)
    assert ledger.verify(report.chain_id).ok
    assert evs[0].type == "reconciliation.started" and evs[-1].type == "reconciliation.completed"
    assert report.events == len(evs) and report.last_hash == evs[-1].hash
    for t in expected:
        assert t in types(evs), (t, types(evs))
    return evs


async def wait_for_event(ledger, grant_id: str, type_: str, timeout: float = 15):
    def stored() -> bool:
        assert type_ in types(ledger.events(grant_id)), types(ledger.events(grant_id))
        return True

    await eventually(stored, timeout, f"{type_} on {grant_id}")


def tagged_token(settings, grant_id: str, policies: list[str], requester: str) -> str:
    """A token that looks like ours, made by hand with the root token: returns its accessor."""
    auth = vault_root(settings).auth.token.create(
        policies=policies,
        no_default_policy=True,
        ttl="10m",
        meta={"grant_id": grant_id, "managed_by": "jitaccess", "requester": requester},
    )["auth"]
    return auth["accessor"]


async def revoke_grant(handle, settings) -> None:
    await handle.execute_update(
        GrantWorkflow.revoke, ActionInput(actor=principal(settings, "alice"), comment="test done")
    )
    assert (await finish(handle)).state is GrantState.revoked


# -- (a) drift --------------------------------------------------------------------------------


async def test_token_revoked_by_hand_is_drift_recorded_on_the_grants_own_chain(settings):
    inp = grant_input(settings, "alice", "secrets-readonly", timedelta(minutes=5))
    async with running_worker(settings) as (client, ledger):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        g = await wait_state(handle, GrantState.active, ledger=ledger)
        accessor = g.credential.reference
        assert about(await reconcile(client, settings), inp.grant_id) == []

        vault_root(settings).auth.token.revoke_accessor(accessor)  # someone removes the access by hand

        dry = await reconcile(client, settings, dry_run=True)
        [f] = about(dry, inp.grant_id)
        assert (f.kind.value, f.reference, f.remediation.action) == ("drift", accessor, "none")
        assert "invalid accessor" in f.detail
        assert (await handle.query(GrantWorkflow.status)).drift is None  # a dry run tells no grant
        assert "reconciliation.drift_detected" not in types(ledger.events(inp.grant_id))
        check_run_chain(ledger, dry, "reconciliation.drift_detected")

        report = await reconcile(client, settings)
        [f] = about(report, inp.grant_id)
        assert (f.kind.value, f.remedy.value, f.remediation.action) == ("drift", "signal_grant", "signalled")
        await wait_for_event(ledger, inp.grant_id, "reconciliation.drift_detected")
        status = await handle.query(GrantWorkflow.status)
        assert status.state is GrantState.active and status.drift is not None
        assert status.drift.reference == accessor and status.drift.run_id == report.run_id
        evs = ledger.events(inp.grant_id)
        drift_ev = [e for e in evs if e.type == "reconciliation.drift_detected"]
        assert len(drift_ev) == 1 and drift_ev[0].actor.id == "jitaccess" and drift_ev[0].data["reference"] == accessor
        assert drift_ev[0].data["run_id"] == report.run_id
        assert ledger.verify(inp.grant_id).ok
        run_evs = check_run_chain(ledger, report, "reconciliation.drift_detected")
        assert run_evs[0].actor.id == "carol" and run_evs[0].data["trigger"] == "request"

        # a later run finds it again; the grant records it once
        again = await reconcile(client, settings)
        assert [f.kind.value for f in about(again, inp.grant_id)] == ["drift"]
        await asyncio.sleep(0.5)
        assert types(ledger.events(inp.grant_id)).count("reconciliation.drift_detected") == 1

        await revoke_grant(handle, settings)
    evs = ledger.events(inp.grant_id)
    assert evs[-1].type == "revocation.confirmed" and evs[-1].data["already_gone"] is True
    assert ledger.verify(inp.grant_id).ok
    # once revoked, nothing more to find for this grant
    async with running_worker(settings) as (client, ledger):
        assert about(await reconcile(client, settings), inp.grant_id) == []


async def test_database_user_dropped_by_hand_is_drift(settings, vault_postgres):
    psycopg = pytest.importorskip("psycopg")
    s = settings.model_copy(
        update={
            "postgres_verify_dsn": SecretStr(vault_postgres["dsn"]),
            "vault_database_mount": vault_postgres["mount"],
        }
    )
    inp = grant_input(s, "alice", "db-readonly", timedelta(minutes=10))
    async with running_worker(s) as (client, ledger):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=s.task_queue)
        g = await wait_state(handle, GrantState.active, timeout=30, ledger=ledger)
        user = g.credential.details["username"]
        assert about(await reconcile(client, s), inp.grant_id) == []
        with psycopg.connect(vault_postgres["dsn"], autocommit=True) as db:  # a DBA drops the user by hand
            db.execute(f'DROP OWNED BY "{user}"')
            db.execute(f'DROP ROLE "{user}"')
        report = await reconcile(client, s)
        [f] = about(report, inp.grant_id)
        # the lease and its owner token are still there: only the read-back (pg_roles) sees it
        assert (f.kind.value, f.provider, f.reference) == ("drift", "vault_database", g.credential.reference)
        assert "pg_roles" in f.detail and f.remediation.action == "signalled"
        await wait_for_event(ledger, inp.grant_id, "reconciliation.drift_detected")
        assert (await handle.query(GrantWorkflow.status)).drift is not None
        await revoke_grant(handle, s)
    assert ledger.verify(inp.grant_id).ok


# -- (b) orphan -------------------------------------------------------------------------------


async def test_tagged_token_without_a_grant_is_an_orphan_revoked_and_confirmed(settings):
    accessor = tagged_token(settings, "grant-ghost", ["jit-platform-read"], "mallory")
    async with running_worker(settings) as (client, ledger):
        dry = await reconcile(client, settings, dry_run=True)
        [f] = [f for f in about(dry, "grant-ghost") if f.reference == accessor]
        assert (f.kind.value, f.remedy.value, f.remediation.action) == ("orphan", "revoke", "none")
        assert f.grant_state is None and "unknown" in f.detail and f.observed["requester"] == "mallory"
        assert not token_is_dead(settings, accessor)  # dry run: left alive
        check_run_chain(ledger, dry, "reconciliation.orphan_detected")

        report = await reconcile(client, settings)
        [f] = [f for f in about(report, "grant-ghost") if f.reference == accessor]
        assert f.remediation.action == "revoked" and f.remediation.confirmed is True
        assert f.remediation.already_gone is False and "invalid accessor" in f.remediation.detail
        assert token_is_dead(settings, accessor)
        evs = check_run_chain(ledger, report, "reconciliation.orphan_revoked")
        revoked = [e for e in evs if e.type == "reconciliation.orphan_revoked" and e.data["reference"] == accessor]
        assert len(revoked) == 1 and revoked[0].actor.id == "jitaccess-worker"
        assert revoked[0].data["grant_id"] == "grant-ghost" and "credential" not in revoked[0].data
        last = ledger.last_reconciliation_report()
        assert last["run_id"] == report.run_id and last["dry_run"] is False
        assert last["counts"]["orphan"] >= 1 and last["counts"]["failed"] == 0

        assert [f for f in about(await reconcile(client, settings), "grant-ghost") if f.reference == accessor] == []


async def test_token_of_an_ended_grant_is_an_orphan(settings):
    """A grant the ledger says is revoked, whose token is (somehow) still there."""
    inp = grant_input(settings, "alice", "secrets-readonly", timedelta(minutes=5))
    async with running_worker(settings) as (client, ledger):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        await wait_state(handle, GrantState.active, ledger=ledger)
        await revoke_grant(handle, settings)
        leftover = tagged_token(settings, inp.grant_id, ["jit-platform-read"], "alice")
        report = await reconcile(client, settings)
        [f] = about(report, inp.grant_id)
        assert (f.kind.value, f.reference, f.grant_state, f.remediation.action) == (
            "orphan",
            leftover,
            "revoked",
            "revoked",
        )
        assert token_is_dead(settings, leftover)


async def test_access_of_a_terminated_grant_workflow_is_an_orphan(settings):
    """The ledger still says active, but the workflow that would revoke the access is gone."""
    inp = grant_input(settings, "alice", "secrets-readonly", timedelta(minutes=5))
    async with running_worker(settings) as (client, ledger):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        g = await wait_state(handle, GrantState.active, ledger=ledger)
        await handle.terminate("operator mistake")
        assert ledger.grant(inp.grant_id)["state"] == "active"
        report = await reconcile(client, settings)
        [f] = about(report, inp.grant_id)
        assert (f.kind.value, f.reference, f.grant_state) == ("orphan", g.credential.reference, "workflow terminated")
        assert f.remediation.action == "revoked" and token_is_dead(settings, g.credential.reference)
        assert any(inp.grant_id in n and "terminated" in n for n in report.notes)


async def test_the_running_grants_are_read_from_visibility_by_id(settings):
    """The scan's list of running grant workflows (what a terminated grant is missing from)."""
    from jitaccess.activities.reconcile import _running_grant_ids

    live, ended = (grant_input(settings, "alice", "secrets-readonly", timedelta(minutes=5)) for _ in range(2))
    async with running_worker(settings) as (client, ledger):
        handles = [
            await client.start_workflow(GrantWorkflow.run, i, id=i.grant_id, task_queue=settings.task_queue)
            for i in (live, ended)
        ]
        for h in handles:
            await wait_state(h, GrantState.active, ledger=ledger)
        await handles[1].terminate("operator mistake")

        async def listed_as_running() -> bool:
            running = await _running_grant_ids(client)
            assert live.grant_id in running and ended.grant_id not in running, sorted(running)
            return True

        await eventually(listed_as_running, what="only the live grant listed as running")
        await handles[0].terminate("test over")


async def test_a_ledger_that_lags_its_workflow_never_turns_live_access_into_an_orphan(settings, tmp_path):
    """An auto-approved grant is first written to the ledger after its issue: in between, its
    token exists and the ledger knows nothing. The live check (its running workflow's state) wins."""
    from jitaccess.activities.reconcile import ReconcileActivities
    from jitaccess.bootstrap import build_providers
    from jitaccess.domain.reconciliation import compare
    from jitaccess.ledger import Ledger

    inp = grant_input(settings, "alice", "secrets-readonly", timedelta(minutes=5))
    async with running_worker(settings) as (client, ledger):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        await wait_state(handle, GrantState.active, ledger=ledger)
        blank = Ledger(f"sqlite:///{tmp_path}/lagging.db", upgrade=True)  # a ledger that has not seen this grant yet
        try:
            scan = ReconcileActivities(build_providers(settings), blank, client=client)
            raw = compare(await scan.snapshot())
            assert [f.kind.value for f in raw.findings if f.grant_id == inp.grant_id] == ["orphan"]  # ledger alone
            checked = await scan.reconcile_scan()
            assert [f for f in checked.findings if f.grant_id == inp.grant_id] == []
        finally:
            blank.close()
        assert not token_is_dead(settings, (await handle.query(GrantWorkflow.status)).credential.reference)
        await revoke_grant(handle, settings)


# -- (c) mismatch -----------------------------------------------------------------------------


async def test_extra_token_with_extra_policies_on_a_live_grants_tag_is_a_mismatch_and_revoked(settings):
    """Decision: an object carrying a live grant's tag that the grant never issued, with more access
    than approved, is a MISMATCH; it is revoked (it is not approved access) while the grant's own
    credential stays untouched. (With exactly the approved access it would be a duplicate ORPHAN.)"""
    inp = grant_input(settings, "alice", "secrets-readonly", timedelta(minutes=5))
    async with running_worker(settings) as (client, ledger):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        g = await wait_state(handle, GrantState.active, ledger=ledger)
        own = g.credential.reference
        extra = tagged_token(settings, inp.grant_id, ["jit-platform-read", "jit-platform-admin"], "alice")

        dry = await reconcile(client, settings, dry_run=True)
        [f] = about(dry, inp.grant_id)
        assert (f.kind.value, f.reference, f.issued_reference) == ("mismatch", extra, own)
        assert f.expected == {"policies": ["jit-platform-read"]}
        assert f.observed == {"policies": ["jit-platform-admin", "jit-platform-read"]}
        assert not token_is_dead(settings, extra)

        report = await reconcile(client, settings)
        [f] = about(report, inp.grant_id)
        assert (f.kind.value, f.remediation.action, f.remediation.confirmed) == ("mismatch", "revoked", True)
        assert token_is_dead(settings, extra) and not token_is_dead(settings, own)
        evs = check_run_chain(ledger, report, "reconciliation.mismatch_detected")
        [m] = [e for e in evs if e.type == "reconciliation.mismatch_detected" and e.data["reference"] == extra]
        assert m.data["severity"] == "high" and m.data["remediation"]["action"] == "revoked" and m.data["alert"]
        status = await handle.query(GrantWorkflow.status)
        assert status.state is GrantState.active and status.drift is None  # the grant itself is fine

        assert about(await reconcile(client, settings), inp.grant_id) == []
        await revoke_grant(handle, settings)
    assert ledger.verify(inp.grant_id).ok


# -- (d) the schedule, and the API ------------------------------------------------------------


async def test_schedule_is_created_idempotently_and_a_triggered_run_stores_its_report(settings):
    async with running_worker(settings) as (client, ledger):
        # its own schedule ID: the suite shares one Temporal server, and a worker started by another
        # test (test_durability runs `python -m jitaccess.workers.main`) creates the default one
        sid = f"{RECONCILIATION_SCHEDULE_ID}-{settings.task_queue}"
        handle = await ensure_reconciliation_schedule(client, settings, schedule_id=sid)
        try:
            assert handle.id == sid
            again = await ensure_reconciliation_schedule(client, settings, schedule_id=sid)  # idempotent
            assert again.id == handle.id
            desc = await handle.describe()
            assert [i.every for i in desc.schedule.spec.intervals] == [timedelta(minutes=15)]
            assert desc.schedule.action.task_queue == settings.task_queue

            faster = settings.model_copy(update={"reconcile_interval": timedelta(minutes=5)})
            await ensure_reconciliation_schedule(
                client, faster, schedule_id=sid
            )  # a changed interval is applied in place
            assert [i.every for i in (await handle.describe()).schedule.spec.intervals] == [timedelta(minutes=5)]

            accessor = tagged_token(settings, "grant-ghost", ["jit-platform-read"], "mallory")
            before = len((await handle.describe()).info.recent_actions)
            await handle.trigger()

            async def started():
                actions = (await handle.describe()).info.recent_actions
                return actions if len(actions) > before else None

            actions = await eventually(started, 60, "a run the schedule started", interval=0.2)
            wid = actions[-1].action.workflow_id
            assert wid.startswith("reconciliation-")
            result: ReconciliationReport = await asyncio.wait_for(
                client.get_workflow_handle(wid, result_type=ReconciliationReport).result(), 60
            )
        finally:
            await handle.delete()
        assert result.chain_id == wid and result.requested_by is None and not result.dry_run
        last = ledger.last_reconciliation_report()
        assert last["run_id"] == result.run_id and last["chain_id"] == wid
        assert any(f["reference"] == accessor and f["remediation"]["action"] == "revoked" for f in last["findings"])
        assert token_is_dead(settings, accessor)
        evs = check_run_chain(ledger, result, "reconciliation.orphan_revoked")
        assert evs[0].actor.id == "jitaccess" and evs[0].data["trigger"] == "schedule"


async def test_with_a_background_queue_reconciliation_runs_on_the_background_worker_alone(settings):
    """Issue 15: JITACCESS_BACKGROUND_TASK_QUEUE takes reconciliation off the grant workers (a scan's
    CPU and heap delayed the expiries due meanwhile; checkpoints: test_evidence_exports.py). The
    schedule and the API start runs on that queue; a grant worker does not take them; a `--role
    background` worker does, and records the
    run's evidence and report as before."""
    from jitaccess.api.gateway import TemporalWorkflows

    split = settings.model_copy(update={"background_task_queue": f"{settings.task_queue}-background"})
    accessor = tagged_token(settings, "grant-ghost", ["jit-platform-read"], "mallory")
    run_id = uuid.uuid4().hex[:12]
    inp = ReconcileInput(dry_run=False, run_id=run_id, requested_by="carol")
    async with running_worker(split, role="grants") as (client, _):
        sid = f"{RECONCILIATION_SCHEDULE_ID}-{split.background_task_queue}"
        schedule = await ensure_reconciliation_schedule(client, split, schedule_id=sid)
        try:
            assert (await schedule.describe()).schedule.action.task_queue == split.background_task_queue
        finally:
            await schedule.delete()
        run = asyncio.create_task(TemporalWorkflows(client, split).reconcile(inp))  # as the API starts one
        handle = client.get_workflow_handle(chain_id(run_id))
        await eventually(handle.describe, 10, "the run started", ignoring=(RPCError,))
        await asyncio.sleep(2)  # long enough for a grant worker to pick a task up, were it polling
        events = [e async for e in handle.fetch_history_events()]
        assert [e.event_type for e in events] == [1, 5], events  # started, task scheduled: nothing ran
        async with running_worker(split, role="background") as (_, ledger):
            report = await asyncio.wait_for(run, 60)
            [f] = [f for f in about(report, "grant-ghost") if f.reference == accessor]
            assert f.remediation.action == "revoked" and token_is_dead(settings, accessor)
            check_run_chain(ledger, report, "reconciliation.orphan_revoked")
            assert ledger.last_reconciliation_report()["run_id"] == run_id


async def test_api_runs_for_admins_and_security_only_and_serves_the_last_report(settings):
    from tests.e2e.conftest import serve_api

    accessor = tagged_token(settings, "grant-ghost", ["jit-platform-read"], "mallory")
    async with serve_api(settings) as (api, ledger):
        r = await api.call("alice", "GET", "/v1/reconciliation/last")
        assert r.status_code == 403 and r.json()["error"] == "not_reconciler", r.text
        r = await api.call("bob", "GET", "/v1/reconciliation/last")
        assert r.status_code == 404, r.text
        r = await api.call("alice", "POST", "/v1/reconciliation/runs", json={"dry_run": True})
        assert r.status_code == 403 and "security" in r.json()["message"]
        r = await api.call(None, "POST", "/v1/reconciliation/runs", json={})
        assert r.status_code == 401

        r = await api.call("bob", "POST", "/v1/reconciliation/runs", json={"dry_run": True})
        assert r.status_code == 200, r.text
        dry = r.json()
        assert dry["dry_run"] is True and dry["requested_by"] == "bob"
        assert any(f["reference"] == accessor and f["remediation"]["action"] == "none" for f in dry["findings"])
        assert not token_is_dead(settings, accessor)

        r = await api.call("erin", "POST", "/v1/reconciliation/runs", json={"dry_run": False})  # an admin
        assert r.status_code == 200, r.text
        run = r.json()
        assert any(f["reference"] == accessor and f["remediation"]["action"] == "revoked" for f in run["findings"])
        assert token_is_dead(settings, accessor)
        r = await api.call("carol", "GET", "/v1/reconciliation/last")
        assert r.status_code == 200 and r.json()["run_id"] == run["run_id"]
        r = await api.call("carol", "GET", f"/v1/grants/{run['chain_id']}/evidence")
        assert r.status_code == 200 and r.json()["verification"]["ok"] is True


async def test_a_grant_revoked_while_the_scan_runs_leaves_no_orphan(settings):
    """The listing read the grant's token, then the grant was revoked before the live check: its
    token is read again and dropped, not reported (and revoked again) as an orphan."""
    from jitaccess.activities.reconcile import ReconcileActivities
    from jitaccess.bootstrap import build_providers
    from jitaccess.domain.reconciliation import compare

    inp = grant_input(settings, "alice", "secrets-readonly", timedelta(minutes=5))
    async with running_worker(settings) as (client, ledger):
        handle = await client.start_workflow(GrantWorkflow.run, inp, id=inp.grant_id, task_queue=settings.task_queue)
        await wait_state(handle, GrantState.active, ledger=ledger)
        scan = ReconcileActivities(build_providers(settings), ledger, client=client)
        snapshot = await scan.snapshot()

        def listed() -> list:
            return [o for inv in snapshot.inventories for o in inv.listed if o.grant_id == inp.grant_id]

        assert len(listed()) == 1 and [f for f in compare(snapshot).findings if f.grant_id == inp.grant_id] == []

        await revoke_grant(handle, settings)  # ends between the listing and the live check
        assert await scan._check_live(snapshot, [inp.grant_id])
        assert snapshot.grants[inp.grant_id].state == "workflow completed"
        assert listed() == []
        assert [f for f in compare(snapshot).findings if f.grant_id == inp.grant_id] == []
