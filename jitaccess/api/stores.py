"""The ledger adapter of the service layer's evidence and delegation ports. The ledger is
synchronous SQLAlchemy: every call runs in a worker thread, never on the event loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from typing import Any, TypeVar

from anyio import to_thread

from jitaccess.config import Settings
from jitaccess.domain.approval import Delegation
from jitaccess.domain.events import ChainVerification, IdentityEvent
from jitaccess.evidence.api import grant_log_proof, ledger_evidence
from jitaccess.ledger import Ledger
from jitaccess.service.ports import GrantQuery, Row

T = TypeVar("T")


async def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await to_thread.run_sync(partial(fn, *args, **kwargs))


class LedgerStores:
    def __init__(self, ledger: Ledger, settings: Settings) -> None:
        self.ledger = ledger
        self.settings = settings

    async def events(self, chain: str) -> list[IdentityEvent]:
        return await off_loop(self.ledger.events, chain)

    async def grant_row(self, grant_id: str) -> Row | None:
        return await off_loop(self.ledger.grant, grant_id)

    async def grant_rows(self, query: GrantQuery, visible: Callable[[Row], bool] | None) -> list[Row]:
        return await off_loop(self.ledger.grants, **asdict(query), visible=visible)

    async def verify(self, chain: str) -> ChainVerification:
        return await off_loop(self.ledger.verify, chain)

    async def verify_all(self) -> list[ChainVerification]:
        return await off_loop(lambda: list(self.ledger.verify_all()))

    async def log_proof(self, grant_id: str) -> dict[str, Any] | None:
        return await off_loop(grant_log_proof, self.ledger, grant_id)

    async def log_evidence(self) -> dict[str, Any]:
        return await off_loop(ledger_evidence, self.ledger, self.settings)

    async def last_reconciliation_report(self) -> dict[str, Any] | None:
        return await off_loop(self.ledger.last_reconciliation_report)

    async def add_delegation(self, d: Delegation, event: IdentityEvent) -> None:
        await off_loop(self.ledger.add_delegation, d, event)

    async def delegations(self, delegate: str | None = None, delegator: str | None = None) -> list[Delegation]:
        return await off_loop(self.ledger.delegations, delegate=delegate, delegator=delegator)
