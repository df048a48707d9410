"""Signed commands: the worker trusts only what it can verify.

Every command that changes a grant or an onboarding (an update, the input that starts it, a
signal between workflows) carries a `CommandAuth`: an Ed25519 signature made by the component
that authenticated the caller (the API for people and services, a worker for its own signals)
over the target workflow ID, the action, the command's body (the authenticated principal with
its groups, the delegations used, the comment, ...), a nonce and a time. A command for another
grant, a replayed nonce, a stale, unsigned or foreign-signed command is refused before any rule
runs, so someone who reaches Temporal directly — with or without the payload key — decides
nothing.

Pure: signing and verifying are computations (Ed25519 signatures are deterministic), no clock
(callers pass `now`), no I/O. Key material is loaded by config and handed in.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from pydantic import BaseModel, ConfigDict, Field

from jitaccess.domain.refusals import Refusal, RefusalKind

SIGNATURE_VERSION = 1
DEFAULT_MAX_AGE = timedelta(minutes=5)


class SignerRole(StrEnum):
    api = "api"  # signs what a person or service asked, after authenticating them
    worker = "worker"  # signs what the workflows themselves send (child starts, signals)


class CommandAuth(BaseModel):
    """Who vouches for a command: the signing key's ID and role, a nonce, a time and the signature."""

    model_config = ConfigDict(frozen=True)

    key_id: str = Field(max_length=64)
    role: SignerRole
    nonce: str = Field(min_length=16, max_length=64)
    issued_at: datetime
    signature: str = Field(max_length=200)

    def evidence(self, target: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """Everything an auditor needs to re-verify the command from the ledger alone."""
        return {"target": target, "action": action, "body": body, **self.model_dump(mode="json")}


class Signable(Protocol):
    """A command model: pydantic, with an `auth` field that the signature does not cover."""

    auth: CommandAuth | None

    def model_dump(self, *, mode: str = ..., exclude: Any = ..., exclude_defaults: bool = ...) -> dict[str, Any]: ...

    def model_copy(self, *, update: dict[str, Any] | None = ..., deep: bool = ...) -> Any: ...


SignableT = TypeVar("SignableT", bound=Signable)


def command_body(cmd: Signable) -> dict[str, Any]:
    """The part of a command the signature covers: everything but `auth` (and a continued-as-new
    workflow's carried state, which the workflow adds itself). Fields at their default are left
    out, so a field added to a command model later (with a default) does not change the body of a
    command signed before it: its signature still verifies, in a validator or on replay."""
    return cmd.model_dump(mode="json", exclude={"auth", "resume"}, exclude_defaults=True)


def signing_bytes(target: str, action: str, body: dict[str, Any], key_id: str, role: str, nonce: str, at: str) -> bytes:
    doc = {
        "v": SIGNATURE_VERSION,
        "target": target,
        "action": action,
        "body": body,
        "key_id": key_id,
        "role": role,
        "nonce": nonce,
        "issued_at": at,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def public_key_text(public: Ed25519PublicKey) -> str:
    return _b64(public.public_bytes(Encoding.Raw, PublicFormat.Raw))


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key as configured: urlsafe base64 of the 32 raw bytes."""
    try:
        raw = _unb64(text.strip())
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as e:
        raise ValueError(f"not an Ed25519 public key (urlsafe base64 of 32 bytes): {e}") from e


def load_private_key(text: str) -> Ed25519PrivateKey:
    """A private key as configured: urlsafe base64 of the 32 raw seed bytes."""
    try:
        return Ed25519PrivateKey.from_private_bytes(_unb64(text.strip()))
    except ValueError as e:
        raise ValueError(f"not an Ed25519 private key (urlsafe base64 of 32 bytes): {e}") from e


def new_private_key_text() -> str:
    key = Ed25519PrivateKey.generate()
    return _b64(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))


class CommandSigner:
    """Signs commands with one private key in one role."""

    def __init__(self, private_key: Ed25519PrivateKey, role: SignerRole) -> None:
        self._key = private_key
        self.role = role
        self.public_key = private_key.public_key()
        self.key_id = public_key_id(self.public_key)

    @classmethod
    def from_text(cls, text: str, role: SignerRole) -> CommandSigner:
        return cls(load_private_key(text), role)

    def sign(self, cmd: SignableT, target: str, action: str, now: datetime, nonce: str) -> SignableT:
        at = now.isoformat()
        msg = signing_bytes(target, action, command_body(cmd), self.key_id, self.role.value, nonce, at)
        auth = CommandAuth(
            key_id=self.key_id, role=self.role, nonce=nonce, issued_at=now, signature=_b64(self._key.sign(msg))
        )
        signed: SignableT = cmd.model_copy(update={"auth": auth})
        return signed


def _refuse(rule: str, message: str) -> Refusal:
    return Refusal(RefusalKind.forbidden, rule, message)


class CommandVerifier:
    """The public keys a worker trusts, by role; verifies a command for one target and action."""

    def __init__(self, keys: Iterable[tuple[Ed25519PublicKey, SignerRole]], max_age: timedelta = DEFAULT_MAX_AGE):
        self._keys: dict[str, tuple[Ed25519PublicKey, SignerRole]] = {public_key_id(k): (k, role) for k, role in keys}
        self.max_age = max_age

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def verify(
        self,
        cmd: Signable,
        target: str,
        action: str,
        now: datetime | None,
        roles: tuple[SignerRole, ...] = (SignerRole.api,),
    ) -> CommandAuth:
        """The command's auth when it is genuine, for this target and action, signed by a trusted
        key in one of `roles`, and (with `now`) fresh. Raises Refusal naming what is wrong."""
        if cmd.auth is None:
            raise _refuse("unsigned_command", f"{action} on {target} is not signed by a trusted jitaccess component")
        return self.verify_body(command_body(cmd), cmd.auth, target, action, now, roles)

    def verify_body(
        self,
        body: dict[str, Any],
        auth: CommandAuth,
        target: str,
        action: str,
        now: datetime | None,
        roles: tuple[SignerRole, ...] = (SignerRole.api,),
    ) -> CommandAuth:
        """`verify` for a command as evidence recorded it (`data.command`: its body and auth)."""
        known = self._keys.get(auth.key_id)
        if known is None:
            raise _refuse("unknown_signer", f"{action} on {target} is signed by an unknown key {auth.key_id}")
        public, role = known
        if role is not auth.role or role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise _refuse("wrong_signer", f"{action} on {target} must be signed by: {allowed}; got {role.value}")
        msg = signing_bytes(target, action, body, auth.key_id, auth.role.value, auth.nonce, auth.issued_at.isoformat())
        try:
            public.verify(_unb64(auth.signature), msg)
        except (InvalidSignature, ValueError):
            raise _refuse(
                "bad_signature",
                f"the signature does not match this {action} on {target} (altered, or signed for another target)",
            ) from None
        if now is not None and not (now - self.max_age <= auth.issued_at <= now + self.max_age):
            raise _refuse(
                "stale_command",
                f"{action} on {target} was signed at {auth.issued_at.isoformat()}, outside "
                f"{int(self.max_age.total_seconds())}s of now ({now.isoformat()})",
            )
        return auth
