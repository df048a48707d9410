"""Who is acting: principals (identities with groups) and the actor stamped on every event."""

from __future__ import annotations

from datetime import datetime
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


class AuthContext(BaseModel):
    """How the caller proved who they are: the evidence of authentication that every decision
    carries (inside the signed command, so on the evidence chain as `data.command.body.actor`).
    Never the token itself: a hash of its `jti` (or of the whole token when it has none)."""

    model_config = ConfigDict(frozen=True)

    issuer: str
    subject: str  # the token's `sub` (the principal's ID may come from another claim)
    token_hash: str  # "sha256:<hex>"
    token_hash_of: str = "jti"  # "jti", or "token" when the issuer sets no jti
    issued_at: datetime  # iat
    expires_at: datetime  # exp
    auth_time: datetime | None = None  # when the person actually signed in (OIDC auth_time), if the IdP says
    amr: tuple[str, ...] = ()  # authentication methods (e.g. pwd, otp, mfa, hwk)
    acr: str | None = None  # authentication context class
    audience: str = ""  # the audience this token was accepted for

    @property
    def signed_in_at(self) -> datetime:
        """When the sign-in happened: `auth_time` when the IdP states it, else the token's `iat`."""
        return self.auth_time or self.issued_at


class Principal(BaseModel):
    """An authenticated identity as the API resolved it (id, kind, group memberships)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1)
    kind: ActorKind = ActorKind.human
    groups: tuple[str, ...] = ()
    owner: str | None = None  # for a non-human identity: the accountable human (or team lead)
    # Set by the API from the bearer token. Left out of the serialised form when absent, so commands
    # signed before it existed (and their replays) serialise byte for byte as they were signed.
    auth_context: AuthContext | None = Field(default=None, exclude_if=lambda v: v is None)

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
