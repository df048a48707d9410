"""`lifecycle.py --expiring K`: K grants that expire while the burst's issues queue for the worker's
activity slots. Before the burst, K requests at once, each for EXPIRING_TTL s; once all are active,
the burst is sent so that their expiries fall `into` s into it. Reported: each one's expiry →
confirmed (the revoke activity's answer, `revocation.confirmed.at` − `credential.issued.expires_at`,
from the ledger), and when the revoke activity started against the burst's issues still waiting then.
They are left out of every other figure.

Issues queue for slots when the provider is slow (each holds a slot for its calls) or the slots are
few; `--activity-slots S` gives the worker S (JITACCESS_MAX_CONCURRENT_ACTIVITIES), so a burst on a
fast local OpenBao queues as one on a slow provider would. Without removal priority a revoke waits
behind every issue queued before it, and with it the read-back and `revocation.confirmed` (the
access itself ends by the provider's TTL or the expiry backstop either way)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from .analysis import HistoryScan, scan_histories, summary, ts
from .load import alice_token
from .sequential import event_at

EXPIRING_TTL = 8  # s: long enough for K requests to become active before the burst is sent


async def start_expiring(stack, k: int, entitlement: Callable[[int], str], timeout: float = 60) -> dict:
    """K requests at once; returns once every one is active, with their IDs and earliest expiry."""
    from jitaccess.ledger import Ledger

    dev = stack.dev
    alice = await alice_token(dev)
    async with httpx.AsyncClient(
        base_url=dev["api_url"], headers={"Authorization": f"Bearer {alice}"}, timeout=30
    ) as client:

        async def one(i: int) -> str:
            body = {"entitlement": entitlement(i), "duration": EXPIRING_TTL, "reason": "bench: expires in the burst"}
            r = await client.post("/v1/grants", json=body)
            if r.status_code != 202:
                raise RuntimeError(f"expiring request refused: {r.status_code} {r.text[:300]}")
            return str(r.json()["grant_id"])

        ids = await asyncio.gather(*(one(i) for i in range(k)))
    ledger = Ledger(dev["ledger_url"])
    try:
        deadline = time.monotonic() + timeout
        for gid in ids:
            await event_at(ledger, gid, "fulfilment.verified", deadline)
        expiries = [_expires_at(ledger, gid) for gid in ids]
    finally:
        ledger.close()
    return {"k": k, "grant_ids": list(ids), "first_expiry": min(expiries)}


def _expires_at(ledger, grant_id: str) -> float:
    issued = next(e for e in ledger.events(grant_id) if e.type == "credential.issued")
    return ts(issued.data["expires_at"])


async def wait_until_burst(expiring: dict, into: float) -> None:
    """Sleep until `into` s before the first of them expires."""
    await asyncio.sleep(max(0.0, expiring["first_expiry"] - into - time.time()))


async def expiring_figures(stack, expiring: dict, timeout: float = 120) -> dict:
    """Each one's expiry → confirmed; and, from the histories, how many of the burst's issues were
    scheduled before its revoke and started after it (overtaken), and before it (waited behind)."""
    from jitaccess.domain import contracts as c
    from jitaccess.ledger import Ledger

    dev = stack.dev
    ledger = Ledger(dev["ledger_url"])
    lags: list[float] = []
    try:
        deadline = time.monotonic() + timeout
        for gid in expiring["grant_ids"]:
            confirmed = await event_at(ledger, gid, "revocation.confirmed", deadline)
            lags.append((confirmed - _expires_at(ledger, gid)) * 1000)
    finally:
        ledger.close()
    scan = HistoryScan()
    await scan_histories(dev["temporal_address"], None, scan)  # every workflow: the burst's issues too
    mine = set(expiring["grant_ids"])
    issues = [
        a[c.ISSUE_CREDENTIAL] for g, a in scan.activity_times.items() if g not in mine and c.ISSUE_CREDENTIAL in a
    ]
    overtaken, waited_behind, revoke_waits = [], [], []
    for gid in expiring["grant_ids"]:
        r_sched, r_start = scan.activity_times[gid][c.REVOKE_CREDENTIAL]
        queued_before = [(s, st) for s, st in issues if s < r_sched and st > r_sched]  # waiting when it was queued
        overtaken.append(float(sum(1 for _, st in queued_before if st > r_start)))
        waited_behind.append(float(sum(1 for _, st in queued_before if st <= r_start)))
        revoke_waits.append((r_start - r_sched) * 1000)
    return {
        "k": expiring["k"],
        "expiry_to_confirmed_ms": summary(lags),
        "per_grant_ms": lags,
        "revoke_schedule_to_start_ms": summary(revoke_waits),
        "issues_waiting_when_the_revoke_was_queued": {
            "started_after_it": summary(overtaken),
            "started_before_it": summary(waited_behind),
        },
    }
