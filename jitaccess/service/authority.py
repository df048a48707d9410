"""The caller as the rules see them now: their principal plus the approval authority lent to them
by delegations active now, each delegator counted with their groups as configured now (one who
lost the approver groups no longer lends anything)."""

from __future__ import annotations

from dataclasses import dataclass

from jitaccess.domain.access import Viewer, viewer_for
from jitaccess.domain.approval import Delegation
from jitaccess.domain.delegation import current_delegations
from jitaccess.domain.grant import ActionInput
from jitaccess.domain.principals import Principal
from jitaccess.service.ports import Clock, DelegationStore, Directory


@dataclass(frozen=True)
class Authority:
    delegations: DelegationStore
    clock: Clock
    admin_groups: tuple[str, ...]
    auditor_groups: tuple[str, ...]
    directory: Directory | None = None  # None: no directory, delegators count as they were

    async def lent_to(self, me: Principal) -> list[Delegation]:
        made = await self.delegations.delegations(delegate=me.id)
        if self.directory is not None:
            made = current_delegations(made, self.directory)
        return made

    async def viewer(self, me: Principal) -> Viewer:
        return viewer_for(
            me,
            admin_groups=self.admin_groups,
            auditor_groups=self.auditor_groups,
            delegations=await self.lent_to(me),
            now=self.clock.now(),
        )

    async def decision_by(self, me: Principal, comment: str) -> ActionInput:
        """An approver's decision, with the delegations made to them (the workflow checks their windows)."""
        return ActionInput(actor=me, comment=comment, delegations=await self.lent_to(me))
