"""The verifier's checks of the global log against the events, and of each hash chain against the
log (jitaccess.domain.evidence_verify runs them).

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from jitaccess.domain.events import IdentityEvent, verify_chain
from jitaccess.domain.evidence import LogEntry, event_leaf_hash
from jitaccess.domain.evidence_findings import FindingKind, Verification


def check_log(
    entries: Sequence[LogEntry],
    by_id: dict[str, IdentityEvent],
    chains: dict[str, list[IdentityEvent]],
    out: Verification,
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
        if leaf != entry.leaf_hash or ev.hash != entry.event_hash:
            kind, message = changed_event(entry, ev, logged_as)
            out.add(kind, message, grant_id=ev.grant_id, event_id=ev.event_id, log_index=entry.log_index)
    for gid, gone in missing.items():
        _check_missing(gid, gone, chains.get(gid, []), out)
    _check_order(entries, by_id, out)
    return leaves


def changed_event(entry: LogEntry, ev: IdentityEvent, logged_as: dict[str, LogEntry]) -> tuple[FindingKind, str]:
    """What happened to an event that no longer matches its log entry; `logged_as` maps each
    logged event hash to its entry."""
    other = logged_as.get(ev.hash)
    if other is not None and other.event_id != ev.event_id:
        return (
            FindingKind.swapped_events,
            f"now holds the event logged as {other.event_id} (log position {other.log_index}): "
            "events of the chain were swapped or reordered",
        )
    if ev.computed_hash() != ev.hash:
        return (
            FindingKind.edited_event,
            f"its content no longer matches its hash, nor the event logged at position {entry.log_index}",
        )
    return (
        FindingKind.edited_event,
        f"rewritten with a recomputed hash: it differs from the event logged at position {entry.log_index}",
    )


def _check_missing(gid: str, gone: list[LogEntry], remaining: list[IdentityEvent], out: Verification) -> None:
    """Logged events of chain `gid` that are gone: the whole chain, some inside it, or its tail."""
    if not remaining:
        ids = ", ".join(e.event_id for e in gone)
        out.add(
            FindingKind.deleted_grant,
            f"all {len(gone)} logged event(s) of this chain are gone from the ledger ({ids})",
            grant_id=gid,
        )
        return
    last = max(e.seq for e in remaining)
    for e in gone:
        if e.seq < last:
            out.add_at(FindingKind.deleted_event, f"logged at position {e.log_index}, gone from the ledger", e)
    tail = [e for e in gone if e.seq > last]
    if tail:
        out.add_at(
            FindingKind.truncated_chain,
            f"the chain now ends at seq {last}, but seq {tail[0].seq}..{tail[-1].seq} were logged "
            f"(from position {tail[0].log_index}): its last event(s) were deleted",
            tail[0],
        )


def _check_order(entries: Sequence[LogEntry], by_id: dict[str, IdentityEvent], out: Verification) -> None:
    """The log holds each chain in seq order (the checkpointer only ever appends it that way)."""

    def seq_of(entry: LogEntry) -> int:
        ev = by_id.get(entry.event_id)
        return ev.seq if ev is not None else entry.seq

    seen: dict[str, LogEntry] = {}
    for entry in entries:
        prev = seen.get(entry.grant_id)
        if prev is not None and seq_of(entry) <= seq_of(prev):
            out.add_at(
                FindingKind.reordered_log,
                f"logged at position {entry.log_index}, after {prev.event_id} at position {prev.log_index}: "
                "the log's order was changed",
                entry,
            )
        seen[entry.grant_id] = entry


def check_chains(
    chains: dict[str, list[IdentityEvent]],
    entries: Sequence[LogEntry],
    known_chains: Iterable[str],
    out: Verification,
) -> None:
    """Each chain's hash links, events added behind the log's back, and grants with no event left."""
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
