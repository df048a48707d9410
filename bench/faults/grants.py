"""The grants: started as the API would (policy evaluated, command signed by the client), staggered,
their expiries spread across the faults; then waited for until every one has ended."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from temporalio.client import Client, WorkflowExecutionStatus

from jitaccess.domain.catalogue import Catalogue
from jitaccess.domain.grant import GrantInput
from jitaccess.domain.policy import AccessRequest, evaluate
from jitaccess.domain.principals import Principal
from jitaccess.workflows.grant import GrantWorkflow

from . import ENDED, ENTITLEMENTS
from .poller import Poller

RPC = timedelta(seconds=3)  # queries fail while Temporal is down: short calls, tried again


@dataclass(frozen=True)
class Planned:
    user: str
    provider: str
    ttl: float  # seconds
    delay: float  # seconds after the start


def plan(users: list[str], providers: list[str], min_ttl: float, max_ttl: float, seed: int) -> list[Planned]:
    rnd = random.Random(seed)
    return [
        Planned(user, providers[i % len(providers)], rnd.uniform(min_ttl, max_ttl), rnd.uniform(0, 6))
        for i, user in enumerate(users)
    ]


@dataclass
class Grants:
    """The run's grants: grant_id -> provider, ttl, user, then expires_at, state, events."""

    client: Client
    catalogue: Catalogue
    task_queue: str
    poller: Poller
    started: dict[str, dict] = field(default_factory=dict)

    def settled(self) -> int:
        """Grants issued (watched by the poller) or already ended."""
        return len(self.poller.creds) + sum(g.get("state") in ENDED for g in self.started.values())

    async def start(self, p: Planned) -> None:
        await asyncio.sleep(p.delay)
        who = Principal(id=p.user, groups=("platform", "oncall"))
        req = AccessRequest(
            entitlement=ENTITLEMENTS[p.provider], duration=timedelta(seconds=int(p.ttl)), reason="chaos"
        )
        decision = evaluate(self.catalogue, who, req, datetime.now(UTC))
        assert decision.allowed, decision.messages
        gid = f"grant-chaos-{uuid.uuid4().hex[:12]}"
        inp = GrantInput(grant_id=gid, requester=who, request=req, decision=decision)
        handle = await self.client.start_workflow(GrantWorkflow.run, inp, id=gid, task_queue=self.task_queue)
        self.started[gid] = {"provider": p.provider, "ttl": int(p.ttl), "user": p.user}
        while True:  # until issued
            try:
                g = await handle.query(GrantWorkflow.status, rpc_timeout=RPC)
            except Exception:
                await asyncio.sleep(0.5)
                continue
            if g.credential is not None and g.expires_at is not None:
                self.started[gid]["expires_at"] = g.expires_at
                self.poller.watch(gid, p.provider, g.credential, g.expires_at)
                return
            if g.state.value in ENDED:
                self.started[gid]["state"] = g.state.value
                return
            await asyncio.sleep(0.5)

    async def _refresh(self, gid: str) -> None:
        """The grant's state and how many events its workflow emitted (kept as they were on failure)."""
        try:
            handle = self.client.get_workflow_handle_for(GrantWorkflow.run, gid)
            desc = await handle.describe(rpc_timeout=RPC)
            if desc.status == WorkflowExecutionStatus.COMPLETED:  # its result: no replay needed
                g = await handle.result(rpc_timeout=RPC)
            else:
                g = await handle.query(GrantWorkflow.status, rpc_timeout=RPC)
            self.started[gid]["state"] = g.state.value
            self.started[gid]["events"] = g.events
        except Exception:
            pass

    async def wait_ended(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending = []
            for gid in self.started:
                await self._refresh(gid)
                if self.started[gid].get("state") not in ENDED:
                    pending.append(gid)
            if not pending:
                return
            await asyncio.sleep(1)
