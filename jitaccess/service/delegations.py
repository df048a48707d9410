"""Use case: lend one's approval authority for a window (its own evidence chain, `delegation.granted`)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from ulid import ULID

from jitaccess.domain.approval import Delegation
from jitaccess.domain.catalogue import Catalogue
from jitaccess.domain.delegation import check_delegator, delegation_window
from jitaccess.domain.event_types.delegation import DelegationGranted
from jitaccess.domain.events import make_event
from jitaccess.domain.principals import ActorRole, Principal
from jitaccess.service.ports import Clock, DelegationStore


@dataclass(frozen=True)
class DelegationRequest:
    delegate: str
    reason: str
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    duration: timedelta | None = None


@dataclass(frozen=True)
class Lent:
    to_me: list[Delegation]
    from_me: list[Delegation]


@dataclass(frozen=True)
class Delegations:
    catalogue: Catalogue
    store: DelegationStore
    clock: Clock
    known_users: Collection[str] = ()  # the directory, when there is one (an unknown delegate is refused)

    async def delegate(self, me: Principal, req: DelegationRequest) -> Delegation:
        """Only an approver may delegate, for a window that does not start in the past; Refusal otherwise."""
        now = self.clock.now()
        check_delegator(self.catalogue, me)
        starts, ends = delegation_window(
            now, req.starts_at, req.ends_at, req.duration, me.id, req.delegate, known_users=self.known_users
        )
        d = Delegation(
            delegation_id=f"delegation-{str(ULID()).lower()}",
            delegator=me,
            delegate=req.delegate,
            starts_at=starts,
            ends_at=ends,
            reason=req.reason,
        )
        granted = DelegationGranted(
            delegate=d.delegate,
            starts_at=starts.isoformat(),
            ends_at=ends.isoformat(),
            reason=d.reason,
            delegator_groups=list(me.groups),
            auth_context=me.auth_context.model_dump(mode="json") if me.auth_context else None,
        )
        actor = me.as_actor(ActorRole.approver)
        ev = make_event(d.delegation_id, None, granted.TYPE, now, actor, granted.data())
        await self.store.add_delegation(d, ev)
        return d

    async def mine(self, me: Principal) -> Lent:
        """The delegations made to `me` and by `me`, every one (past, active, future)."""
        return Lent(
            to_me=await self.store.delegations(delegate=me.id),
            from_me=await self.store.delegations(delegator=me.id),
        )
