"""Readiness: is everything a request needs reachable right now? Temporal (the namespace), the
ledger, OpenBao (initialised and unsealed) and the catalogue. Each check is bounded in time and
says what it saw; `/readyz` answers 503 naming the ones that failed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import text

from jitaccess.config.settings import ConfigError, Settings, load_catalogue

CHECK_TIMEOUT = 3.0


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail}


async def temporal(client: Any, namespace: str) -> Check:
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace), timeout=timedelta(seconds=CHECK_TIMEOUT)
        )
    except Exception as e:
        return Check("temporal", False, f"namespace {namespace!r}: {type(e).__name__}: {_short(e)}")
    return Check("temporal", True, f"namespace {namespace!r} reachable")


def _ledger_sync(ledger: Any) -> None:
    with ledger.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


async def ledger(lg: Any) -> Check:
    try:
        await asyncio.wait_for(asyncio.to_thread(_ledger_sync, lg), CHECK_TIMEOUT)
    except Exception as e:
        return Check("ledger", False, f"{type(e).__name__}: {_short(e)}")
    return Check("ledger", True, f"{lg.engine.dialect.name} reachable")


# sys/health: 200 active, 429 standby, 472 DR secondary, 473 performance standby answer requests
# (forwarded); 501 not initialised, 503 sealed do not
_BAO_OK = {200: "active", 429: "standby", 472: "DR secondary", 473: "performance standby"}
_BAO_BAD = {501: "not initialised", 503: "sealed"}


async def openbao(addr: str) -> Check:
    try:
        async with httpx.AsyncClient(timeout=CHECK_TIMEOUT) as c:
            r = await c.get(f"{addr.rstrip('/')}/v1/sys/health")
    except Exception as e:
        return Check("openbao", False, f"{addr}: {type(e).__name__}: {_short(e)}")
    if r.status_code in _BAO_OK:
        return Check("openbao", True, f"{addr}: {_BAO_OK[r.status_code]}")
    return Check("openbao", False, f"{addr}: {_BAO_BAD.get(r.status_code, f'answered {r.status_code}')}")


async def catalogue(settings: Settings, loaded_version: str | None) -> Check:
    try:
        cat = await asyncio.to_thread(load_catalogue, settings.catalogue_file)
    except ConfigError as e:
        return Check("catalogue", False, _short(e))
    if loaded_version and cat.version != loaded_version:
        return Check("catalogue", True, f"{cat.version} on disk; this process serves {loaded_version} until restarted")
    return Check("catalogue", True, f"policy version {cat.version}")


async def check_all(settings: Settings, client: Any, lg: Any, loaded_version: str | None) -> list[Check]:
    return list(
        await asyncio.gather(
            temporal(client, settings.temporal_namespace),
            ledger(lg),
            openbao(settings.vault_addr),
            catalogue(settings, loaded_version),
        )
    )


def _short(e: BaseException) -> str:
    msg = " ".join(str(e).split()) or type(e).__name__
    return msg if len(msg) <= 300 else msg[:299] + "…"
