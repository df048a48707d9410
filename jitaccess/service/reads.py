"""Use cases: reading grants and evidence. An object the caller may not read does not exist for
them (NotFound, as for an unknown ID); a list shows only what they may read
(jitaccess.domain.access). Temporal keeps a grant's live state; the ledger is the archive."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jitaccess.domain.access import (
    ReadFacts,
    Viewer,
    chain_facts,
    grant_facts,
    may_read,
    may_verify_all,
    sees_everything,
)
from jitaccess.domain.events import ChainVerification, IdentityEvent
from jitaccess.domain.grant import Grant
from jitaccess.domain.principals import Principal
from jitaccess.domain.refusals import RefusalKind
from jitaccess.service.authority import Authority
from jitaccess.service.errors import NotFound, RequestRefused, hidden
from jitaccess.service.ports import EvidenceStore, GrantQuery, Row, WorkflowGateway


def row_facts(row: Row) -> ReadFacts:
    """A ledger row's read facts; a row written before facts were recorded: its requester only."""
    if row.get("scope"):
        return ReadFacts.model_validate(row["scope"])
    return ReadFacts(object_id=row["grant_id"], requester=row["requester"], break_glass=bool(row["break_glass"]))


def public_row(row: Row) -> Row:
    """A row as callers see it: without its read facts."""
    return {k: v for k, v in row.items() if k != "scope"}


@dataclass(frozen=True)
class GrantEvidence:
    verification: ChainVerification
    events: list[IdentityEvent]
    log: dict[str, Any] | None  # inclusion in the newest signed checkpoint (None: no checkpoint yet)


@dataclass(frozen=True)
class LedgerVerification:
    results: list[ChainVerification]
    log: dict[str, Any]  # the offline verifier's report on the log, checkpoints and signed commands

    @property
    def broken(self) -> list[ChainVerification]:
        return [r for r in self.results if not r.ok]

    @property
    def ok(self) -> bool:
        return not self.broken and bool(self.log["ok"])


@dataclass(frozen=True)
class Reads:
    workflows: WorkflowGateway
    evidence: EvidenceStore
    authority: Authority
    reconciliation_groups: tuple[str, ...]

    async def grant(self, me: Principal, grant_id: str) -> Grant | Row:
        """The live grant, or (once Temporal no longer retains its history) its ledger row."""
        v = await self.authority.viewer(me)
        try:
            g = await self.workflows.grant(grant_id)
        except NotFound:
            row = await self.evidence.grant_row(grant_id)
            if row is None:
                raise
            if not may_read(v, row_facts(row)):
                raise hidden(grant_id) from None
            return public_row(row)
        if not may_read(v, grant_facts(g)):
            raise hidden(grant_id)
        return g

    async def grants(self, me: Principal, query: GrantQuery) -> list[Row]:
        v = await self.authority.viewer(me)
        visible = None if sees_everything(v) else (lambda row: may_read(v, row_facts(row)))
        return [public_row(r) for r in await self.evidence.grant_rows(query, visible)]

    async def events(self, me: Principal, chain: str) -> list[IdentityEvent]:
        """A chain's events (a grant's, an onboarding's, a delegation's, a reconciliation run's)."""
        return await self._readable(await self.authority.viewer(me), chain)

    async def grant_evidence(self, me: Principal, grant_id: str) -> GrantEvidence:
        evs = await self.events(me, grant_id)
        if not evs:
            raise NotFound(f"no evidence recorded for {grant_id}")
        verification = await self.evidence.verify(grant_id)
        return GrantEvidence(verification, evs, await self.evidence.log_proof(grant_id))

    async def verify_all(self, me: Principal) -> LedgerVerification:
        """Every chain and the whole log, for auditors and admins."""
        if not may_verify_all(await self.authority.viewer(me)):
            a = self.authority
            raise RequestRefused(
                RefusalKind.forbidden,
                "not_auditor",
                f"verifying every chain is for auditors ({', '.join(a.auditor_groups)}) and admins "
                f"({', '.join(a.admin_groups)}); {me.id} is neither: verify one grant at "
                "/v1/grants/{id}/evidence",
            )
        results = await self.evidence.verify_all()
        return LedgerVerification(results, await self.evidence.log_evidence())

    async def _readable(self, v: Viewer, chain: str) -> list[IdentityEvent]:
        """The chain's events if `v` may read it; NotFound (as for an unknown grant) otherwise."""
        evs = await self.evidence.events(chain)
        row = await self.evidence.grant_row(chain)
        facts: ReadFacts | None
        if row is not None and row.get("scope"):
            facts = row_facts(row)
        elif evs:  # an onboarding, delegation or reconciliation chain (or an old row): facts from the chain
            recon = chain.startswith("reconciliation-")
            facts = chain_facts(chain, evs, self.reconciliation_groups if recon else ())
        elif chain.startswith("grant-"):  # a grant whose first events are not stored yet
            facts = grant_facts(await self.workflows.grant(chain))
        else:
            facts = None
        if facts is None or not may_read(v, facts):
            raise hidden(chain)
        return evs
