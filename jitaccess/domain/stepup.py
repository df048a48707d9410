"""Step-up for approvers: an entitlement may require that whoever approves it signed in recently
and strongly (`approver_auth: {max_age: PT15M, amr: [mfa]}` in the catalogue). Checked with the
other vote rules (jitaccess.domain.approval.authorise_vote), so the update validator, the workflow
and the issuer's replay of the signed votes all apply it. Pure: the caller passes `now`."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, field_validator

from jitaccess.domain.principals import Principal
from jitaccess.domain.refusals import Refusal, RefusalKind


class ApproverAuth(BaseModel):
    """What an approver's sign-in must show. Every listed `amr` value must be in the token's `amr`;
    with `acr`, the token's `acr` must be one of them; with `max_age`, the sign-in (`auth_time`, or
    the token's `iat` when the IdP does not state it) must be at most that old at the vote."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_age: timedelta | None = None
    amr: tuple[str, ...] = ()
    acr: tuple[str, ...] = ()

    @field_validator("max_age")
    @classmethod
    def _positive(cls, v: timedelta | None) -> timedelta | None:
        if v is not None and v <= timedelta(0):
            raise ValueError("max_age must be positive")
        return v

    def stricter(self, other: ApproverAuth | None) -> ApproverAuth:
        """Both requirements at once (an onboarding's round approves children with different rules)."""
        if other is None:
            return self
        ages = [a for a in (self.max_age, other.max_age) if a is not None]
        if self.acr and other.acr:  # an acr both accept; none at all: no sign-in can satisfy both
            acr = tuple(a for a in self.acr if a in other.acr) or ("(no acr satisfies every child)",)
        else:
            acr = self.acr or other.acr
        return ApproverAuth(
            max_age=min(ages) if ages else None, amr=tuple(dict.fromkeys(self.amr + other.amr)), acr=acr
        )


def _age(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60} min {s % 60} s" if s >= 60 else f"{s} s"


def require_step_up(req: ApproverAuth, actor: Principal, now: datetime, subject: str) -> None:
    """Refusal `step_up_required` (403) naming each part of `req` the actor's sign-in lacks."""
    ctx = actor.auth_context
    missing: list[str] = []
    if ctx is None:
        missing.append("a sign-in record (the vote carries no authentication context)")
    else:
        lacking = [m for m in req.amr if m not in ctx.amr]
        if lacking:
            have = ", ".join(ctx.amr) or "none"
            missing.append(f"authentication methods (amr) {', '.join(lacking)} (this sign-in: {have})")
        if req.acr and ctx.acr not in req.acr:
            missing.append(f"acr one of {', '.join(req.acr)} (this sign-in: {ctx.acr or 'none'})")
        if req.max_age is not None:
            age = (now - ctx.signed_in_at).total_seconds()
            if age > req.max_age.total_seconds():
                missing.append(
                    f"a sign-in within the last {_age(req.max_age.total_seconds())} (this one was {_age(age)} ago)"
                )
    if missing:
        raise Refusal(
            RefusalKind.forbidden,
            "step_up_required",
            f"approving {subject} needs a stronger sign-in: {'; '.join(missing)}. Sign in again with "
            "step-up (`jitaccess auth login --step-up`) and retry",
        )
