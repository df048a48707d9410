"""What a worker trusts, and how a workflow uses it.

The worker factory installs the command verifier (the public keys it trusts) and the worker's
own signer once, at start; every workflow verifies each command addressed to it through its
`CommandGate`, and signs what it sends to other workflows (child starts, signals) with `sign`.

Deterministic: verification depends only on the command, the installed keys and workflow time,
and Ed25519 signatures are deterministic, so replays see the same outcome. Keep a retired public
key in the trusted ring (verify-only) for as long as workflows that used it may still replay.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from jitaccess.domain.commands import (
        CommandAuth,
        CommandSigner,
        CommandVerifier,
        Signable,
        SignableT,
        SignerRole,
        command_body,
    )
    from jitaccess.domain.refusals import Refusal, RefusalKind
    from jitaccess.workflows.patches import START_AGE_AT_START_EVENT, patched

API = (SignerRole.api,)
WORKER = (SignerRole.worker,)
API_OR_WORKER = (SignerRole.api, SignerRole.worker)

_installed: dict[str, Any] = {}


def install(verifier: CommandVerifier, signer: CommandSigner) -> None:
    """Called by the worker factory before the worker polls (one key set per process)."""
    _installed["verifier"], _installed["signer"] = verifier, signer


@contextmanager
def installed(verifier: CommandVerifier, signer: CommandSigner) -> Iterator[None]:
    """Install for a while (replaying a history recorded with other keys), then restore."""
    before = dict(_installed)
    install(verifier, signer)
    try:
        yield
    finally:
        _installed.clear()
        _installed.update(before)


def verifier() -> CommandVerifier:
    try:
        v: CommandVerifier = _installed["verifier"]
    except KeyError:
        raise RuntimeError(
            "no command verifier installed: build workers with jitaccess.bootstrap.build_worker"
        ) from None
    return v


def sign(cmd: SignableT, target: str, action: str) -> SignableT:
    """Sign a command this workflow sends (deterministic: workflow time, a replay-stable nonce)."""
    signer: CommandSigner = _installed["signer"]
    return signer.sign(cmd, target, action, workflow.now(), workflow.uuid4().hex)


class CommandGate:
    """One workflow's door: a command must be signed for this workflow ID and action by a trusted
    key of the right role, fresh, and never seen before here."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._seen: set[str] = set()

    def check(self, cmd: Signable, action: str, roles: tuple[SignerRole, ...] = API) -> CommandAuth:
        """For update validators (and signal handlers): raises Refusal when the command is not genuine."""
        auth = verifier().verify(cmd, self.target, action, workflow.now(), roles)
        if auth.nonce in self._seen:
            raise Refusal(
                RefusalKind.forbidden, "replayed_command", f"this {action} on {self.target} was already received once"
            )
        return auth

    def admit(self, cmd: Signable, action: str) -> dict[str, Any]:
        """For handlers (which also run on replay, where validators do not): remember the nonce
        and return `{"command": evidence}` for the event recording the decision. Histories from
        before signed commands replay unsigned updates: `{}`, so their events — and chains — stay
        exactly as they were."""
        if cmd.auth is None:
            return {}
        self._seen.add(cmd.auth.nonce)
        return {"command": cmd.auth.evidence(self.target, action, command_body(cmd))}

    def accept_signal(self, cmd: Signable, action: str, roles: tuple[SignerRole, ...] = WORKER) -> bool:
        """For signal handlers: verify and remember; a forged signal is dropped with a warning."""
        try:
            self.check(cmd, action, roles)
        except Refusal as r:
            workflow.logger.warning("refused %s signal on %s: %s (%s)", action, self.target, r.message, r.rule)
            return False
        assert cmd.auth is not None
        self._seen.add(cmd.auth.nonce)
        return True

    def start_refusal(self, cmd: Signable, action: str, roles: tuple[SignerRole, ...]) -> Refusal | None:
        """The workflow's own input: None when genuine and signed within the age limit of when
        Temporal accepted the start (older runs measured to their first task, however late it ran)."""
        started = workflow.info().workflow_start_time if patched(START_AGE_AT_START_EVENT) else workflow.now()
        try:
            auth = verifier().verify(cmd, self.target, action, started, roles)
        except Refusal as r:
            return r
        self._seen.add(auth.nonce)
        return None
