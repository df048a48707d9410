"""Evidence an auditor can check without trusting jitaccess: the global event log and the signed
checkpoints over it (the offline verifier is jitaccess.domain.evidence_verify).

- **The log.** Every identity event, of every chain, gets a log index (0, 1, 2, ...) when a
  checkpoint is made; its leaf is the canonical JSON of the whole event (hash included), hashed
  as an RFC 9162 leaf (jitaccess.domain.merkle).
- **Checkpoints.** (number, tree size, root hash, time, hash of the previous checkpoint),
  signed with Ed25519 by a key the ledger's database users cannot read. A checkpoint's hash
  covers its signature, so the checkpoints form a chain of their own.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import base64
import hashlib
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

from jitaccess.domain import merkle
from jitaccess.domain.commands import public_key_id
from jitaccess.domain.events import GENESIS_HASH, IdentityEvent, canonical_json

LOG_ORIGIN = "jitaccess/identity-events"
CHECKPOINT_VERSION = 1
_SIGNING_CONTEXT = b"jitaccess checkpoint v1\n"


# -- the log ---------------------------------------------------------------------------------
def event_leaf(ev: IdentityEvent) -> bytes:
    """The leaf bytes of an event: the canonical JSON of the whole event, its hash included."""
    return canonical_json(ev.model_dump(mode="json")).encode()


def event_leaf_hash(ev: IdentityEvent) -> str:
    return merkle.leaf_hash(event_leaf(ev)).hex()


class LogEntry(BaseModel):
    """One position in the global log: which event, and the hashes it had when it was logged."""

    model_config = ConfigDict(frozen=True)

    log_index: int = Field(ge=0)
    event_id: str
    grant_id: str
    seq: int
    event_hash: str
    leaf_hash: str


class LogCandidate(NamedTuple):
    """What the checkpointer keeps of an event not yet logged: its place and its leaf hash, not the
    event itself (a checkpoint over the ~30,000 events of 7,000 new grants held ~150 MB of them)."""

    event_id: str
    grant_id: str
    seq: int
    at: str
    hash: str
    leaf_hash: str

    @classmethod
    def of(cls, ev: IdentityEvent) -> LogCandidate:
        return cls(ev.event_id, ev.grant_id, ev.seq, ev.at, ev.hash, event_leaf_hash(ev))


def log_order(pending: Iterable[LogCandidate], logged_seq: dict[str, int]) -> list[LogCandidate]:
    """The order in which not-yet-logged events join the log: each chain in seq order, and only
    an event whose predecessor is logged (or joins in this batch) — a chain's events never enter
    the log out of order or with a hole, even while writers race the checkpointer. Across chains:
    by time, then chain, then seq (a chain's time taken as never going back)."""
    by_chain: dict[str, list[LogCandidate]] = defaultdict(list)
    for ev in pending:
        by_chain[ev.grant_id].append(ev)
    keyed: list[tuple[str, str, int, LogCandidate]] = []
    for gid, evs in by_chain.items():
        expect, latest = logged_seq.get(gid, 0) + 1, ""
        for ev in sorted(evs, key=lambda e: e.seq):
            if ev.seq != expect:
                break  # a hole (an event still being written): the rest waits for the next checkpoint
            latest = max(latest, ev.at)
            keyed.append((latest, gid, ev.seq, ev))
            expect += 1
    return [k[3] for k in sorted(keyed, key=lambda k: k[:3])]


# -- checkpoints -----------------------------------------------------------------------------
def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Checkpoint(BaseModel):
    """A signed statement: the log's first `tree_size` events hash to `root_hash`."""

    model_config = ConfigDict(frozen=True)

    v: int = CHECKPOINT_VERSION
    origin: str = LOG_ORIGIN
    number: int = Field(ge=1)
    tree_size: int = Field(ge=0)
    root_hash: str
    issued_at: str  # jitaccess.domain.events.format_at
    prev_checkpoint_hash: str  # GENESIS_HASH for the first
    key_id: str
    signature: str = ""

    def signed_body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"signature"})

    def signing_bytes(self) -> bytes:
        return _SIGNING_CONTEXT + canonical_json(self.signed_body()).encode()

    def checkpoint_hash(self) -> str:
        """What the next checkpoint names as its predecessor (covers the signature too)."""
        return hashlib.sha256(canonical_json(self.model_dump(mode="json")).encode()).hexdigest()


def sign_checkpoint(
    key: Ed25519PrivateKey,
    *,
    number: int,
    tree_size: int,
    root_hash: str,
    issued_at: str,
    prev: Checkpoint | None,
) -> Checkpoint:
    unsigned = Checkpoint(
        number=number,
        tree_size=tree_size,
        root_hash=root_hash,
        issued_at=issued_at,
        prev_checkpoint_hash=prev.checkpoint_hash() if prev else GENESIS_HASH,
        key_id=public_key_id(key.public_key()),
    )
    return unsigned.model_copy(update={"signature": _b64(key.sign(unsigned.signing_bytes()))})


def checkpoint_problem(cp: Checkpoint, keys: dict[str, Ed25519PublicKey]) -> str | None:
    """None when `cp` is signed by one of `keys` (by key ID) and unaltered; else what is wrong."""
    public = keys.get(cp.key_id)
    if public is None:
        known = ", ".join(sorted(keys)) or "none given"
        return f"signed by key {cp.key_id}, which is not a checkpoint key ({known}): forged"
    try:
        public.verify(_unb64(cp.signature), cp.signing_bytes())
    except (InvalidSignature, ValueError):
        return "its signature does not verify: the checkpoint was altered after signing"
    return None
