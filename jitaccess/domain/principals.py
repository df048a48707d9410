"""Who is acting: principals (identities with groups) and the actor stamped on every event."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class ActorKind(StrEnum):
    human = "human"
    service = "service"
    agent = "agent"
    system = "system"


class ActorRole(StrEnum):
    requester = "requester"
    approver = "approver"
    executor = "executor"
    reviewer = "reviewer"
    system = "system"


class Principal(BaseModel):
    """An authenticated identity as the API resolved it (id, kind, group memberships)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1)
    kind: ActorKind = ActorKind.human
    groups: tuple[str, ...] = ()
    owner: str | None = None  # for a non-human identity: the accountable human (or team lead)

    def in_any(self, groups: tuple[str, ...] | list[str]) -> bool:
        return any(g in self.groups for g in groups)

    def as_actor(self, role: ActorRole) -> Actor:
        return Actor(id=self.id, kind=self.kind, role=role)


class Actor(BaseModel):
    """The identity an event is attributed to, with the role it played in this grant."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: ActorKind
    role: ActorRole


SYSTEM_ACTOR = Actor(id="jitaccess", kind=ActorKind.system, role=ActorRole.system)
