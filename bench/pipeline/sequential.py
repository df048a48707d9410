"""`lifecycle.py --sequential K`: before the burst, K requests one at a time, each sent only once
the previous one is active, so request -> active is measured with nothing queued anywhere (the
burst measures it under load). The K grants are then revoked through the API and awaited, and the
burst's figures leave them out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from .analysis import scan_histories, summary, ts
from .load import alice_token
from .stack import Stack

POLL_S = 0.01  # how often the ledger is read for the awaited event (as the probe in issue 15 did)


async def event_at(ledger, grant_id: str, event_type: str, deadline: float) -> float:
    """When `event_type` happened to the grant (epoch seconds, from the ledger), once it has."""
    while time.monotonic() < deadline:
        evs = await asyncio.to_thread(ledger.events, grant_id)
        if hit := next((e for e in evs if e.type == event_type), None):
            return ts(hit.at)
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"{grant_id}: no {event_type} in the ledger in time")


async def request_one(client: httpx.AsyncClient, entitlement: str, ttl: int) -> tuple[str, float]:
    """One POST /v1/grants: the grant ID and when its headers went on the wire (as the burst times it)."""
    sent: list[float] = []

    async def trace(name: str, info: dict) -> None:
        if name == "http11.send_request_headers.started":
            sent.append(time.time())

    body = {"entitlement": entitlement, "duration": ttl, "reason": "bench: one at a time"}
    r = await client.post("/v1/grants", json=body, extensions={"trace": trace})
    if r.status_code != 202:
        raise RuntimeError(f"one-at-a-time request refused: {r.status_code} {r.text[:300]}")
    return r.json()["grant_id"], sent[0]


async def run_sequential(
    stack: Stack, k: int, ttl: int, entitlement: Callable[[int], str], timeout: float = 60
) -> dict:
    from jitaccess.ledger import Ledger

    dev = stack.dev
    ledger = Ledger(dev["ledger_url"])
    alice = await alice_token(dev)
    evidence: list[float] = []  # to fulfilment.verified.at, the issue activity's own time
    sends: list[float] = []
    ids: list[str] = []
    deadline = time.monotonic() + timeout + k
    try:
        async with httpx.AsyncClient(
            base_url=dev["api_url"], headers={"Authorization": f"Bearer {alice}"}, timeout=30
        ) as client:
            for i in range(k):
                gid, sent = await request_one(client, entitlement(i), ttl)
                ids.append(gid)
                verified = await event_at(ledger, gid, "fulfilment.verified", deadline)
                evidence.append((verified - sent) * 1000)
                sends.append(sent)
            for gid in ids:  # ended now, so they neither expire during the burst nor hold an IAM group
                await client.post(f"/v1/grants/{gid}/revoke", json={"reason": "bench: one-at-a-time phase over"})
        for gid in ids:
            await event_at(ledger, gid, "revocation.confirmed", deadline)
    finally:
        ledger.close()
    # active as the burst counts it: the start of the workflow task that took the answer
    after = (await scan_histories(dev["temporal_address"], ids))["_task_after"]
    latencies = [(after[g]["issue_credential"] - sent) * 1000 for g, sent in zip(ids, sends, strict=True)]
    return {
        "k": k,
        "request_to_active_ms": summary(latencies),
        "per_request_ms": latencies,
        "request_to_fulfilment_verified_at_ms": summary(evidence),
        "grant_ids": ids,
    }
