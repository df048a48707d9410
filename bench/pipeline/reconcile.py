"""`--active N --reconcile [K]`: K reconciliation runs (POST /v1/reconciliation/runs as erin, an
admin), one after the other, once the N grants are active; each timed, with the CPU it cost the
worker+API process and the servers. The reconciliation reads every held grant and every managed
object, so it is the one O(N) job a worker runs while it holds grants (every 15 minutes by
schedule); the first run after a worker starts also looks up every Vault token it has not seen."""

from __future__ import annotations

import time

import httpx

from .load import dev_token
from .sampling import CpuMeter


async def run_reconciliation(dev: dict, dev_up_pid: int, children: list[int], user: str = "erin") -> dict:
    """Run one (not a dry run: nothing should be found) and report its duration, findings and CPU."""
    bearer = await dev_token(dev, user)
    meter = CpuMeter(dev_up_pid, children)
    started = time.time()
    t = time.monotonic()
    async with httpx.AsyncClient(timeout=1800) as c:
        r = await c.post(
            dev["api_url"] + "/v1/reconciliation/runs", json={}, headers={"Authorization": f"Bearer {bearer}"}
        )
    elapsed = time.monotonic() - t
    out: dict = {
        "status": r.status_code,
        "seconds": round(elapsed, 2),
        "window": [started, started + elapsed],  # epoch seconds: which expiries it overlapped
        "cpu": meter.use(elapsed),
    }
    if r.status_code == 200:
        report = r.json()
        out["findings"] = len(report.get("findings") or [])
        out["providers"] = {p["provider"]: p.get("listed") for p in report.get("providers") or []}
    else:
        out["error"] = r.text[:500]
    return out


async def run_reconciliations(k: int, dev: dict, dev_up_pid: int, children: list[int]) -> list[dict]:
    return [await run_reconciliation(dev, dev_up_pid, children) for _ in range(k)]
