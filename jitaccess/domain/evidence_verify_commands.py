"""The verifier's re-verification of the signed commands recorded on decision events
(jitaccess.domain.evidence_verify runs it).

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from jitaccess.domain.commands import CommandAuth, CommandVerifier, SignerRole
from jitaccess.domain.events import IdentityEvent
from jitaccess.domain.evidence_findings import FindingKind, Verification
from jitaccess.domain.refusals import Refusal


def check_commands(
    events: Sequence[IdentityEvent], keys: Sequence[tuple[Ed25519PublicKey, SignerRole]], out: Verification
) -> int:
    """Returns how many recorded commands verified; one signed by a role no key is given for is skipped."""
    recorded = [ev for ev in events if isinstance(ev.data.get("command"), dict)]
    if not recorded:
        return 0
    if not keys:
        out.notes.append(f"{len(recorded)} signed command(s) not re-verified: no API public key given (--command-key)")
        return 0
    verifier = CommandVerifier(keys)
    roles_known = {role for _, role in keys}
    verified, skipped = 0, 0
    for ev in recorded:
        cmd: dict[str, Any] = ev.data["command"]
        try:
            auth = CommandAuth.model_validate({k: cmd.get(k) for k in CommandAuth.model_fields})
        except ValidationError:
            out.add(
                FindingKind.bad_command,
                "data.command is not a well-formed signed command",
                grant_id=ev.grant_id,
                event_id=ev.event_id,
            )
            continue
        if auth.role not in roles_known:
            skipped += 1
            continue
        problem = recorded_command_problem(ev, cmd, auth, verifier)
        if problem:
            out.add(FindingKind.bad_command, problem, grant_id=ev.grant_id, event_id=ev.event_id)
        else:
            verified += 1
    if skipped:
        out.notes.append(f"{skipped} worker-signed command(s) not re-verified: no worker public key given")
    return verified


def recorded_command_problem(
    ev: IdentityEvent, cmd: dict[str, Any], auth: CommandAuth, verifier: CommandVerifier
) -> str | None:
    """None when the command recorded on `ev` verifies and was signed for this chain by the actor
    the event names; else what is wrong."""
    body, target, action = cmd.get("body"), cmd.get("target"), cmd.get("action")
    if not isinstance(body, dict) or not isinstance(target, str) or not isinstance(action, str):
        return "data.command lacks its target, action or body"
    try:
        verifier.verify_body(body, auth, target, action, None, (SignerRole.api, SignerRole.worker))
    except Refusal as r:
        return f"{r.rule}: {r.message}"
    if target != ev.grant_id:
        return f"the recorded command was signed for {target}, not this chain"
    actor = body.get("actor")
    if isinstance(actor, dict) and actor.get("id") not in (None, ev.actor.id) and ev.actor.role != "system":
        return f"the event names {ev.actor.id} but the signed command was {actor.get('id')}'s"
    return None
