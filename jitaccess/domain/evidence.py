"""Evidence an auditor can check without trusting jitaccess: the global event log, signed
checkpoints over it, and the offline verifier.

- **The log.** Every identity event, of every chain, gets a log index (0, 1, 2, ...) when a
  checkpoint is made; its leaf is the canonical JSON of the whole event (hash included), hashed
  as an RFC 9162 leaf (jitaccess.domain.merkle).
- **Checkpoints.** (number, tree size, root hash, time, hash of the previous checkpoint),
  signed with Ed25519 by a key the ledger's database users cannot read. A checkpoint's hash
  covers its signature, so the checkpoints form a chain of their own.
- **The verifier** (`verify_evidence`) takes what the ledger holds — events, log entries,
  checkpoints — and the public keys an auditor got out of band, recomputes every hash chain and
  the Merkle tree, checks every checkpoint's signature and that each is a prefix of the log,
  re-verifies the signed commands recorded on decision events, and names what it finds: an
  edited, deleted, swapped or inserted event, a truncated chain, a deleted grant, a reordered
  log, a checkpoint that no longer matches, was forged, altered or removed.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import base64
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jitaccess.domain import merkle
from jitaccess.domain.commands import CommandAuth, CommandVerifier, SignerRole, public_key_id
from jitaccess.domain.events import GENESIS_HASH, ChainVerification, IdentityEvent, canonical_json, verify_chain
from jitaccess.domain.refusals import Refusal

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


def log_order(pending: Iterable[IdentityEvent], logged_seq: dict[str, int]) -> list[IdentityEvent]:
    """The order in which not-yet-logged events join the log: each chain in seq order, and only
    an event whose predecessor is logged (or joins in this batch) — a chain's events never enter
    the log out of order or with a hole, even while writers race the checkpointer. Across chains:
    by time, then chain, then seq (a chain's time taken as never going back)."""
    by_chain: dict[str, list[IdentityEvent]] = defaultdict(list)
    for ev in pending:
        by_chain[ev.grant_id].append(ev)
    keyed: list[tuple[str, str, int, IdentityEvent]] = []
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


# -- findings --------------------------------------------------------------------------------
class FindingKind(StrEnum):
    edited_event = "edited_event"  # an event's content differs from what was logged / its hash
    deleted_event = "deleted_event"  # a logged event is gone from inside a chain
    truncated_chain = "truncated_chain"  # a chain's last logged event(s) are gone
    deleted_grant = "deleted_grant"  # every event of a chain is gone
    swapped_events = "swapped_events"  # an event sits at another event's place in its chain
    inserted_event = "inserted_event"  # an event not in the log although later ones of its chain are
    reordered_log = "reordered_log"  # the log holds a chain's events out of order
    broken_chain = "broken_chain"  # a hash chain does not verify (first broken link)
    log_gap = "log_gap"  # log positions are missing
    checkpoint_mismatch = "checkpoint_mismatch"  # the log no longer hashes to a signed checkpoint
    forged_checkpoint = "forged_checkpoint"  # not signed by the checkpoint key, or altered
    checkpoint_missing = "checkpoint_missing"  # a checkpoint was removed or replaced
    checkpoint_chain = "checkpoint_chain"  # a checkpoint does not name its predecessor
    bad_command = "bad_command"  # a recorded signed command does not verify or does not match


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: FindingKind
    message: str
    grant_id: str | None = None
    event_id: str | None = None
    checkpoint: int | None = None
    log_index: int | None = None

    def line(self) -> str:
        where = self.event_id or self.grant_id or (f"checkpoint #{self.checkpoint}" if self.checkpoint else "log")
        return f"{self.kind.value}: {where}: {self.message}"


class EvidenceReport(BaseModel):
    ok: bool
    findings: list[Finding]
    notes: list[str] = Field(default_factory=list)
    chains: list[ChainVerification] = Field(default_factory=list)
    events: int = 0
    log_size: int = 0
    pending: int = 0  # events not yet in the log (newer than the last checkpoint)
    checkpoints: int = 0  # signed checkpoints verified
    latest_checkpoint: Checkpoint | None = None
    commands_verified: int = 0


# -- the verifier ----------------------------------------------------------------------------
class _Verification:
    def __init__(self, only: str | None) -> None:
        self.only = only
        self.findings: list[Finding] = []
        self.notes: list[str] = []
        self.flagged: set[str] = set()  # grant IDs with a precise finding already

    def add(self, kind: FindingKind, message: str, **where: Any) -> None:
        gid = where.get("grant_id")
        if self.only is not None and gid is not None and gid != self.only:
            return
        if gid is not None:
            self.flagged.add(gid)
        self.findings.append(Finding(kind=kind, message=message, **where))


def verify_evidence(
    events: Sequence[IdentityEvent],
    log: Sequence[LogEntry],
    checkpoints: Sequence[Checkpoint],
    *,
    checkpoint_keys: Sequence[Ed25519PublicKey] = (),
    exported: Sequence[Checkpoint] = (),
    command_keys: Sequence[tuple[Ed25519PublicKey, SignerRole]] = (),
    known_chains: Iterable[str] = (),
    only: str | None = None,
) -> EvidenceReport:
    """Verify the ledger's evidence. `checkpoints` are the ledger's own; `exported` the copies
    from the checkpoint export directory (which the database's users cannot change);
    `known_chains` the grant IDs the ledger's grants table lists; `only`: report event-level
    findings for this one chain (the log and checkpoints are always checked whole)."""
    out = _Verification(only)
    chains: dict[str, list[IdentityEvent]] = defaultdict(list)
    for ev in events:
        chains[ev.grant_id].append(ev)
    for evs in chains.values():
        evs.sort(key=lambda e: e.seq)
    by_id = {ev.event_id: ev for ev in events}
    entries = sorted(log, key=lambda e: e.log_index)

    leaves = _check_log(entries, by_id, chains, out)
    _check_chains(chains, entries, known_chains, out)
    trusted, latest = _check_checkpoints(checkpoints, exported, checkpoint_keys, entries, leaves, out)
    commands = _check_commands(events, command_keys, out)

    logged = {e.event_id for e in entries}
    pending = sum(1 for ev in events if ev.event_id not in logged and (only is None or ev.grant_id == only))
    if pending:
        out.notes.append(
            f"{pending} event(s) are newer than the last checkpoint: their chains are verified, but "
            "a deletion among them shows only once a checkpoint covers them"
        )
    shown = [only] if only is not None else sorted(set(chains) | {e.grant_id for e in entries} | set(known_chains))
    return EvidenceReport(
        ok=not out.findings,
        findings=out.findings,
        notes=out.notes,
        chains=[verify_chain(gid, chains.get(gid, [])) for gid in shown],
        events=len(events) if only is None else len(chains.get(only, [])),
        log_size=len(entries),
        pending=pending,
        checkpoints=trusted,
        latest_checkpoint=latest,
        commands_verified=commands,
    )


def _check_log(
    entries: Sequence[LogEntry],
    by_id: dict[str, IdentityEvent],
    chains: dict[str, list[IdentityEvent]],
    out: _Verification,
) -> list[bytes]:
    """Each log entry against the event it names; returns the leaves recomputed from the events
    as they are now (a logged event that is gone keeps its logged leaf, so later positions still
    line up)."""
    leaves: list[bytes] = []
    expect = 0
    logged_as = {e.event_hash: e for e in entries}
    missing: dict[str, list[LogEntry]] = defaultdict(list)
    for entry in entries:
        if entry.log_index != expect:
            out.add(
                FindingKind.log_gap,
                f"log positions {expect}..{entry.log_index - 1} are missing: logged events were removed from the log",
                log_index=expect,
            )
        expect = entry.log_index + 1
        ev = by_id.get(entry.event_id)
        if ev is None:
            missing[entry.grant_id].append(entry)
            leaves.append(bytes.fromhex(entry.leaf_hash))
            continue
        leaf = event_leaf_hash(ev)
        leaves.append(bytes.fromhex(leaf))
        if leaf == entry.leaf_hash and ev.hash == entry.event_hash:
            continue
        other = logged_as.get(ev.hash)
        if other is not None and other.event_id != ev.event_id:
            out.add(
                FindingKind.swapped_events,
                f"now holds the event logged as {other.event_id} (log position {other.log_index}): "
                "events of the chain were swapped or reordered",
                grant_id=ev.grant_id,
                event_id=ev.event_id,
                log_index=entry.log_index,
            )
        elif ev.computed_hash() != ev.hash:
            out.add(
                FindingKind.edited_event,
                f"its content no longer matches its hash, nor the event logged at position {entry.log_index}",
                grant_id=ev.grant_id,
                event_id=ev.event_id,
                log_index=entry.log_index,
            )
        else:
            out.add(
                FindingKind.edited_event,
                f"rewritten with a recomputed hash: it differs from the event logged at position {entry.log_index}",
                grant_id=ev.grant_id,
                event_id=ev.event_id,
                log_index=entry.log_index,
            )
    for gid, gone in missing.items():
        remaining = chains.get(gid, [])
        ids = ", ".join(e.event_id for e in gone)
        if not remaining:
            out.add(
                FindingKind.deleted_grant,
                f"all {len(gone)} logged event(s) of this chain are gone from the ledger ({ids})",
                grant_id=gid,
            )
            continue
        last = max(e.seq for e in remaining)
        tail = [e for e in gone if e.seq > last]
        for e in gone:
            if e.seq < last:
                out.add(
                    FindingKind.deleted_event,
                    f"logged at position {e.log_index}, gone from the ledger",
                    grant_id=gid,
                    event_id=e.event_id,
                    log_index=e.log_index,
                )
        if tail:
            out.add(
                FindingKind.truncated_chain,
                f"the chain now ends at seq {last}, but seq {tail[0].seq}..{tail[-1].seq} were logged "
                f"(from position {tail[0].log_index}): its last event(s) were deleted",
                grant_id=gid,
                event_id=tail[0].event_id,
                log_index=tail[0].log_index,
            )
    # the log holds each chain in seq order (the checkpointer only ever appends it that way)
    seen: dict[str, LogEntry] = {}
    for entry in entries:
        ev = by_id.get(entry.event_id)
        seq = ev.seq if ev is not None else entry.seq
        prev = seen.get(entry.grant_id)
        if prev is not None and seq <= (by_id[prev.event_id].seq if prev.event_id in by_id else prev.seq):
            out.add(
                FindingKind.reordered_log,
                f"logged at position {entry.log_index}, after {prev.event_id} at position {prev.log_index}: "
                "the log's order was changed",
                grant_id=entry.grant_id,
                event_id=entry.event_id,
                log_index=entry.log_index,
            )
        seen[entry.grant_id] = entry
    return leaves


def _check_chains(
    chains: dict[str, list[IdentityEvent]],
    entries: Sequence[LogEntry],
    known_chains: Iterable[str],
    out: _Verification,
) -> None:
    logged_ids = {e.event_id for e in entries}
    logged_max: dict[str, int] = defaultdict(int)
    logged_grants = set()
    for e in entries:
        logged_max[e.grant_id] = max(logged_max[e.grant_id], e.seq)
        logged_grants.add(e.grant_id)
    for gid, evs in chains.items():
        for ev in evs:
            if ev.event_id not in logged_ids and ev.seq <= logged_max.get(gid, 0):
                out.add(
                    FindingKind.inserted_event,
                    f"not in the log, though later events of its chain were logged (up to seq {logged_max[gid]}): "
                    "it was added after the fact",
                    grant_id=gid,
                    event_id=ev.event_id,
                )
        v = verify_chain(gid, evs)
        if not v.ok and gid not in out.flagged:
            out.add(
                FindingKind.broken_chain,
                v.problem or "the chain does not verify",
                grant_id=gid,
                event_id=v.first_broken,
            )
    for gid in sorted(set(known_chains) - set(chains) - logged_grants):
        out.add(
            FindingKind.deleted_grant,
            "the grants table lists this grant, but the ledger holds no event for it: its evidence was deleted",
            grant_id=gid,
        )


def _check_checkpoints(
    ledger_cps: Sequence[Checkpoint],
    exported: Sequence[Checkpoint],
    keys: Sequence[Ed25519PublicKey],
    entries: Sequence[LogEntry],
    leaves: list[bytes],
    out: _Verification,
) -> tuple[int, Checkpoint | None]:
    ring = {public_key_id(k): k for k in keys}
    if not ring:
        out.notes.append("checkpoints not checked: no checkpoint public key given (--public-key)")
        return 0, None
    trusted: dict[int, Checkpoint] = {}
    in_ledger = {cp.number: cp for cp in ledger_cps}
    for cp in exported:
        problem = checkpoint_problem(cp, ring)
        if problem:
            out.add(FindingKind.forged_checkpoint, f"the exported copy: {problem}", checkpoint=cp.number)
            continue
        trusted[cp.number] = cp
        mine = in_ledger.get(cp.number)
        if mine is None:
            out.add(
                FindingKind.checkpoint_missing,
                "exported, but gone from the ledger: the ledger's checkpoints were deleted",
                checkpoint=cp.number,
            )
        elif mine.checkpoint_hash() != cp.checkpoint_hash():
            forged = checkpoint_problem(mine, ring)
            out.add(
                FindingKind.forged_checkpoint if forged else FindingKind.checkpoint_missing,
                "the ledger's checkpoint differs from the exported one: it was replaced"
                + (f"; the replacement is {forged}" if forged else ""),
                checkpoint=cp.number,
            )
    for cp in sorted(ledger_cps, key=lambda c: c.number):
        if cp.number in trusted:
            continue
        problem = checkpoint_problem(cp, ring)
        if problem:
            out.add(FindingKind.forged_checkpoint, problem, checkpoint=cp.number)
            continue
        trusted[cp.number] = cp
    numbers = sorted(in_ledger)
    for a, b in zip(numbers, numbers[1:]):
        if b != a + 1:
            out.add(
                FindingKind.checkpoint_missing,
                f"the ledger's checkpoints jump from #{a} to #{b}: checkpoints were deleted",
                checkpoint=a + 1,
            )
    if entries and not ledger_cps:
        out.add(
            FindingKind.checkpoint_missing,
            f"the log holds {len(entries)} entries but the ledger no checkpoint: its checkpoints were deleted",
        )
    ordered = [trusted[n] for n in sorted(trusted)]
    for prev, cp in zip(ordered, ordered[1:]):
        if cp.number == prev.number + 1 and cp.prev_checkpoint_hash != prev.checkpoint_hash():
            out.add(
                FindingKind.checkpoint_chain,
                f"does not name checkpoint #{prev.number} as its predecessor",
                checkpoint=cp.number,
            )
        if cp.tree_size < prev.tree_size:
            out.add(
                FindingKind.checkpoint_chain,
                f"covers {cp.tree_size} events, fewer than checkpoint #{prev.number} ({prev.tree_size})",
                checkpoint=cp.number,
            )
    matched_size = 0
    for cp in ordered:
        if cp.tree_size > len(leaves):
            out.add(
                FindingKind.checkpoint_mismatch,
                f"signs {cp.tree_size} log entries but the log holds {len(leaves)}: the log was truncated "
                f"(positions {len(leaves)}..{cp.tree_size - 1} are gone)",
                checkpoint=cp.number,
            )
            continue
        if merkle.root(leaves[: cp.tree_size]).hex() == cp.root_hash:
            matched_size = max(matched_size, cp.tree_size)
            continue
        lo = max(
            (
                c.tree_size
                for c in ordered
                if c.tree_size <= cp.tree_size
                and c is not cp
                and merkle.root(leaves[: c.tree_size]).hex() == c.root_hash
            ),
            default=0,
        )
        span = entries[lo : cp.tree_size]
        names = ", ".join(e.event_id for e in span[:5]) + (", ..." if len(span) > 5 else "")
        out.add(
            FindingKind.checkpoint_mismatch,
            f"the log's first {cp.tree_size} entries no longer hash to this checkpoint's signed root: an event "
            f"at positions {lo}..{cp.tree_size - 1} ({names}) was edited, removed, reordered or its chain "
            "rewritten",
            checkpoint=cp.number,
        )
    if not ordered:
        out.notes.append(
            "no signed checkpoint: the hash chains are verified, but a deleted grant, a truncated chain or a "
            "consistently rewritten chain cannot be detected"
        )
    return len(ordered), (ordered[-1] if ordered else None)


def _check_commands(
    events: Sequence[IdentityEvent], keys: Sequence[tuple[Ed25519PublicKey, SignerRole]], out: _Verification
) -> int:
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
        body, target, action = cmd.get("body"), cmd.get("target"), cmd.get("action")
        if not isinstance(body, dict) or not isinstance(target, str) or not isinstance(action, str):
            out.add(
                FindingKind.bad_command,
                "data.command lacks its target, action or body",
                grant_id=ev.grant_id,
                event_id=ev.event_id,
            )
            continue
        try:
            verifier.verify_body(body, auth, target, action, None, (SignerRole.api, SignerRole.worker))
        except Refusal as r:
            out.add(FindingKind.bad_command, f"{r.rule}: {r.message}", grant_id=ev.grant_id, event_id=ev.event_id)
            continue
        if target != ev.grant_id:
            out.add(
                FindingKind.bad_command,
                f"the recorded command was signed for {target}, not this chain",
                grant_id=ev.grant_id,
                event_id=ev.event_id,
            )
            continue
        actor = body.get("actor")
        if isinstance(actor, dict) and actor.get("id") not in (None, ev.actor.id) and ev.actor.role != "system":
            out.add(
                FindingKind.bad_command,
                f"the event names {ev.actor.id} but the signed command was {actor.get('id')}'s",
                grant_id=ev.grant_id,
                event_id=ev.event_id,
            )
            continue
        verified += 1
    if skipped:
        out.notes.append(f"{skipped} worker-signed command(s) not re-verified: no worker public key given")
    return verified


def parse_at(at: str) -> datetime:
    """An event or checkpoint time (format_at) as a datetime."""
    return datetime.fromisoformat(at.replace("Z", "+00:00"))
