"""Reconciliation activities: read every target and the ledger, compare, revoke what no grant holds.

`reconcile_scan` (async, so it can use the worker's Temporal client) runs the blocking
provider and ledger calls on threads:

1. every configured provider's `list_managed()` (a failing provider is reported, never
   read as "nothing there"); providers listing the same objects (the Vault providers all list
   the token accessors) share one pass (`shared_reads`);
2. the ledger's grants in HOLDS_ACCESS states, their issued credential (the latest
   `credential.issued` event: provider, reference, details) and, for `active` ones, a
   read-back of that credential (`verify_active`) unless the listing already shows it live as
   issued (`needs_read_back`);
3. the ledger state of every other grant ID found at a target;
4. `compare()` (jitaccess.domain.reconciliation), then, because the ledger summary can lag
   its workflow (an auto-approved grant is first written after its issue; an approval is
   written with the issue), every grant named by a finding is checked against Temporal:
   a running grant workflow's live state (query `status`) wins; a closed or terminated one
   holds no access; a grant whose state cannot be established is left alone this run.
   Then `compare()` again on the corrected states. Only the findings go back to the
   workflow, so history stays small however much the targets hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import structlog
from temporalio import activity
from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from jitaccess.domain import contracts as c
from jitaccess.domain.credentials import IssuedCredential, RevocationResult
from jitaccess.domain.grant import Grant
from jitaccess.domain.reconciliation import (
    Comparison,
    GrantRecord,
    Inventory,
    ReconciliationReport,
    Snapshot,
    candidates,
    compare,
    holds,
    listed_live,
    needs_read_back,
)
from jitaccess.domain.states import HOLDS_ACCESS, GrantState
from jitaccess.ledger import Ledger
from jitaccess.providers.base import ProviderError, ProviderRegistry, pace, paced, shared_reads

log = structlog.get_logger("jitaccess.reconcile")
T = TypeVar("T")
GRANT_WORKFLOW_TYPE = "GrantWorkflow"


def _err(e: BaseException) -> str:
    return f"{e.__class__.__name__}: {e}" if str(e) else e.__class__.__name__


def _credential(data: dict[str, Any], grant_id: str) -> IssuedCredential | None:
    """The IssuedCredential a credential.issued event describes (no secret is ever in it)."""
    if not data.get("reference") or not data.get("provider"):
        return None
    expires = data.get("provider_expires_at")
    return IssuedCredential(
        provider=data["provider"],
        grant_id=grant_id,
        reference=data["reference"],
        details=data.get("details") or {},
        expires_at=datetime.fromisoformat(expires) if expires else None,
    )


async def _running_grant_ids(client: Client) -> set[str]:
    """The IDs of every running grant workflow, read from the visibility pages as they come.
    `Client.list_workflows` would build a WorkflowExecution (search attributes decoded) per grant
    on the worker's event loop: ~0.6 s of CPU at 10,000 held grants against 0.07 s for the IDs."""
    query = f'WorkflowType = "{GRANT_WORKFLOW_TYPE}" AND ExecutionStatus = "Running"'
    running: set[str] = set()
    token = b""
    while True:
        page = await client.workflow_service.list_workflow_executions(
            ListWorkflowExecutionsRequest(
                namespace=client.namespace, query=query, page_size=1000, next_page_token=token
            ),
            retry=True,
            timeout=timedelta(seconds=30),
        )
        running.update(e.execution.workflow_id for e in page.executions)
        token = page.next_page_token
        if not token:
            return running


class ReconcileActivities:
    def __init__(
        self,
        providers: ProviderRegistry,
        ledger: Ledger,
        *,
        client: Client | None = None,
        query_timeout: timedelta = timedelta(seconds=3),
        parallelism: int = 8,
        calls_per_second: float | None = None,
    ) -> None:
        self.providers = providers
        self.ledger = ledger
        self._client = client
        self.query_timeout = query_timeout
        self._parallelism = parallelism  # concurrent read-backs / workflow checks
        self._calls_per_second = calls_per_second  # the scan's pace at the targets (None: unpaced)
        # one scan at a time in a worker: a second one (the schedule's beside a run asked for by
        # hand) waits and then reuses the first's token facts, instead of doubling the memory the
        # snapshot holds (~5–9 KB per held grant) and every lookup Vault answers
        self._one_scan = asyncio.Lock()

    def all(self) -> list:
        return [self.reconcile_scan, self.reconcile_revoke, self.reconcile_store_report]

    @staticmethod
    async def _run(fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)  # hvac / SQLAlchemy block

    @staticmethod
    async def _call(fn: Callable[..., T], *args: Any) -> T:
        """One call to a target, in its turn when the scan is paced."""

        def paced_call() -> T:
            pace()
            return fn(*args)

        return await asyncio.to_thread(paced_call)

    # -- scan ------------------------------------------------------------------------------
    @activity.defn(name=c.RECONCILE_SCAN)
    async def reconcile_scan(self) -> Comparison:
        async with self._one_scan:
            with paced(self._calls_per_second):  # the scan's threads copy this context
                return await self._scan()

    async def _scan(self) -> Comparison:
        snapshot = await self.snapshot()
        # compared on a thread: ~0.1 s of CPU per 10,000 held grants that would hold up every
        # workflow task waiting on the worker's event loop
        first = await asyncio.to_thread(compare, snapshot)
        checked = await self._check_live(snapshot, candidates(first))
        result = await asyncio.to_thread(compare, snapshot) if checked else first
        result.notes.extend(n for g in snapshot.grants.values() if (n := g.note) and not g.uncertain)
        log.info(
            "reconciliation_scan",
            findings=len(result.findings),
            listed={i.provider: len(i.listed) for i in snapshot.inventories},
            errors={i.provider: i.error for i in snapshot.inventories if i.error},
        )
        return result

    async def snapshot(self) -> Snapshot:
        """Ledger and targets as they are now (before the live check).

        The ledger is read BEFORE the targets. Read the other way round, a grant issued between
        the two reads would look active in the ledger yet absent from the older listing (false
        drift). This way, access issued between the reads belongs to a grant the ledger snapshot
        does not know yet, and the live check finds its workflow running."""
        records = await self._run(self._ledger_records)
        with shared_reads():  # providers that list the same objects (Vault's tokens) list them once
            inventories = await asyncio.gather(*(self._inventory(n) for n in self.providers.names()))
        taken_at = datetime.now(UTC)
        for inv in inventories:
            for obj in inv.listed:
                if obj.grant_id not in records:
                    row = await self._run(self.ledger.grant, obj.grant_id) if obj.grant_id else None
                    records[obj.grant_id] = GrantRecord(
                        grant_id=obj.grant_id,
                        state=row["state"] if row else None,
                        source="ledger" if row else "none",
                        provider=row.get("provider") if row else None,
                        requester=row.get("requester") if row else None,
                    )
        sem = asyncio.Semaphore(self._parallelism)
        live = listed_live(inventories)
        await asyncio.gather(*(self._read_back(g, sem) for g in records.values() if needs_read_back(g, live)))
        return Snapshot(inventories=list(inventories), grants=records, taken_at=taken_at)

    def _ledger_records(self) -> dict[str, GrantRecord]:
        """Every grant the ledger says holds access, with the credential its issue event names. The
        rows and events are let go here, before the listing allocates its own (a first scan at 2,000
        held grants peaked at 22.5 MB instead of 34.1: bench/README.md, fourth session)."""
        rows = self.ledger.grants_in_states([s.value for s in HOLDS_ACCESS])
        records = {
            r["grant_id"]: GrantRecord(
                grant_id=r["grant_id"],
                state=r["state"],
                provider=r.get("provider"),
                requester=r.get("requester"),
                expires_at=r.get("expires_at"),  # ISO text, parsed by the model
            )
            for r in rows
        }
        for gid, ev in self.ledger.latest_events_of_type("credential.issued", list(records)).items():
            records[gid].credential = _credential(ev.data, gid)
        return records

    async def _inventory(self, name: str) -> Inventory:
        try:
            provider = self.providers.get(name)
            return Inventory(provider=name, listed=await self._run(provider.list_managed))
        except Exception as e:  # a failing provider yields no findings, never "all gone"
            log.warning("reconciliation_listing_failed", provider=name, error=_err(e))
            return Inventory(provider=name, error=_err(e))

    async def _read_back(self, g: GrantRecord, sem: asyncio.Semaphore) -> None:
        assert g.credential is not None
        try:
            provider = self.providers.get(g.credential.provider)
        except ProviderError:
            return  # not configured here: compare() notes it
        async with sem:
            try:
                g.read_back_ok, g.read_back = await self._call(provider.verify_active, g.credential)
            except Exception as e:
                g.read_back_ok, g.note = None, f"{g.grant_id}: read-back failed ({_err(e)}); judged on the listing only"

    # -- live check against Temporal -------------------------------------------------------
    def _temporal(self) -> Client | None:
        if self._client is not None:
            return self._client
        try:
            return activity.client()
        except RuntimeError:
            return None

    async def _check_live(self, snapshot: Snapshot, grant_ids: list[str]) -> bool:
        client = self._temporal()
        ids = {g for g in grant_ids if g}
        if client is not None:
            ids |= await self._without_workflow(client, snapshot)
        if not ids:
            return False
        if client is None:
            for gid in ids:  # without Temporal we cannot tell a lagging ledger from the truth: act on nothing
                g = snapshot.grants.setdefault(gid, GrantRecord(grant_id=gid, source="none"))
                g.uncertain, g.note = True, "no Temporal client to check the grant's workflow"
            return True
        held = {gid for gid in ids if (rec := snapshot.grants.get(gid)) is not None and holds(rec.state)}
        sem = asyncio.Semaphore(self._parallelism)
        await asyncio.gather(*(self._live(client, snapshot, gid, sem) for gid in sorted(ids)))
        ended = {gid for gid in held if not holds(snapshot.grants[gid].state) and not snapshot.grants[gid].uncertain}
        await self._drop_gone(snapshot, ended, sem)
        return True

    async def _drop_gone(self, snapshot: Snapshot, grant_ids: set[str], sem: asyncio.Semaphore) -> None:
        """Grants that ended while the scan ran (the ledger said they held access, their workflow has
        now closed): what the listing showed of theirs was read before their revocation, so each
        object is read again and dropped if gone, else it would be reported an orphan (and revoked
        again, "already gone"). One that is still there is an orphan indeed."""

        async def gone(obj: IssuedCredential) -> bool:
            async with sem:
                try:
                    return (await self._call(self.providers.get(obj.provider).verify_revoked, obj))[0]
                except Exception:  # cannot tell: keep it (reported, and its revoke reads it back)
                    return False

        for inv in snapshot.inventories:
            stale = [o for o in inv.listed if o.grant_id in grant_ids]
            if stale:
                dropped = {id(o) for o, g in zip(stale, await asyncio.gather(*map(gone, stale)), strict=True) if g}
                inv.listed = [o for o in inv.listed if id(o) not in dropped]

    async def _without_workflow(self, client: Client, snapshot: Snapshot) -> set[str]:
        """Grants the ledger says hold access whose workflow does not appear among the running
        ones (terminated, failed, reset...): nothing will ever revoke their access. Visibility is
        eventually consistent, so these are only candidates; describe() decides."""
        holding = {gid for gid, g in snapshot.grants.items() if g.source == "ledger" and holds(g.state)}
        if not holding:
            return set()
        try:
            running = await _running_grant_ids(client)
        except Exception as e:  # visibility unavailable: the per-finding checks still run
            log.warning("reconciliation_visibility_failed", error=_err(e))
            return set()
        return holding - running

    async def _live(self, client: Client, snapshot: Snapshot, gid: str, sem: asyncio.Semaphore) -> None:
        g = snapshot.grants.setdefault(gid, GrantRecord(grant_id=gid, source="none"))
        handle = client.get_workflow_handle(gid)
        async with sem:
            try:
                desc = await handle.describe(rpc_timeout=self.query_timeout)
            except RPCError as e:
                if e.status == RPCStatusCode.NOT_FOUND:
                    if holds(g.state):
                        g.note = f"{gid}: the ledger says {g.state} but Temporal has no workflow (history retention?)"
                    return  # the ledger is all there is
                g.uncertain, g.note = True, f"describe failed: {e.status.name if e.status else ''} {e.message}"
                return
            if desc.workflow_type != GRANT_WORKFLOW_TYPE:
                g.state, g.source = f"not a grant (workflow type {desc.workflow_type})", "workflow"
                return
            status = desc.status
            if status != WorkflowExecutionStatus.RUNNING:
                name = status.name.lower() if status is not None else "closed"
                if g.state is None or holds(g.state):
                    # completed workflows wrote their final state; a terminated / failed / timed-out one
                    # will never revoke what it issued
                    g.note = f"{gid}: the ledger says {g.state or 'nothing'} but its workflow is {name}"
                    g.state, g.source = f"workflow {name}", "workflow"
                return
            try:
                live: Grant = await handle.query("status", result_type=Grant, rpc_timeout=self.query_timeout)
            except Exception as e:
                g.uncertain, g.note = True, f"status query failed ({_err(e)})"
                return
        g.state, g.source = live.state.value, "workflow"
        g.provider, g.requester, g.expires_at = live.provider, live.requester.id, live.expires_at
        if live.credential is not None:
            g.credential = live.credential
        if live.state is GrantState.active and g.read_back_ok is None and g.credential is not None:
            await self._read_back(g, asyncio.Semaphore(1))

    # -- remediation -----------------------------------------------------------------------
    @activity.defn(name=c.RECONCILE_REVOKE)
    def reconcile_revoke(self, cred: IssuedCredential) -> RevocationResult:
        """Revoke an object no grant holds (or a grant never issued) and read the target back."""
        try:
            provider = self.providers.get(cred.provider)
            removed = provider.revoke(cred)
            gone, seen = provider.verify_revoked(cred)
        except ProviderError as e:
            raise ApplicationError(str(e), type=c.PROVIDER_ERROR, non_retryable=not e.retryable) from e
        return RevocationResult(confirmed=gone, already_gone=not removed, verification=seen)

    @activity.defn(name=c.RECONCILE_STORE_REPORT)
    def reconcile_store_report(self, report: ReconciliationReport) -> None:
        self.ledger.save_reconciliation_report(report.model_dump(mode="json"))
