"""Checkpointers racing event writers, on SQLite and PostgreSQL: every event gets exactly one log
position, positions have no gap, each chain is logged in seq order, and every checkpoint verifies
as a prefix of the final log."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from jitaccess.domain.commands import load_private_key, new_private_key_text
from jitaccess.domain.events import make_event
from jitaccess.domain.principals import SYSTEM_ACTOR
from jitaccess.evidence.offline import verify_ledger
from jitaccess.ledger import Ledger
from jitaccess.ledger.evidence_log import checkpoints, log_entries, make_checkpoint
from jitaccess.ledger.migrate import upgrade


def test_checkpointers_racing_writers_keep_one_consistent_log(fresh_ledger_url):
    url = fresh_ledger_url
    upgrade(url)
    key = load_private_key(new_private_key_text())
    ledger = Ledger(url)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    writing = threading.Event()
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for c in range(12):
                prev = None
                for s in range(4):  # one transaction per event, as the workflow's activities write them
                    prev = make_event(
                        f"grant-w{w}-{c}", prev, "step", t0 + timedelta(seconds=s), SYSTEM_ACTOR, {"s": s}
                    )
                    ledger.append([prev])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def checkpointer() -> None:
        try:
            while writing.is_set():
                make_checkpoint(ledger, key)
        except BaseException as e:  # pragma: no cover
            errors.append(e)

    writing.set()
    writers = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    ckpts = [threading.Thread(target=checkpointer) for _ in range(2)]
    for t in writers + ckpts:
        t.start()
    for t in writers:
        t.join()
    writing.clear()
    for t in ckpts:
        t.join()
    assert not errors, errors
    make_checkpoint(ledger, key)
    try:
        entries = log_entries(ledger)
        assert [e.log_index for e in entries] == list(range(4 * 12 * 4))
        seqs: dict[str, list[int]] = {}
        for e in entries:
            seqs.setdefault(e.grant_id, []).append(e.seq)
        assert all(v == [1, 2, 3, 4] for v in seqs.values()) and len(seqs) == 48
        cps = checkpoints(ledger)
        assert len(cps) >= 2 and [c.number for c in cps] == list(range(1, len(cps) + 1))
        report = verify_ledger(ledger, public_keys=[key.public_key()])
        assert report.ok, report.findings
        assert report.checkpoints == len(cps) and report.pending == 0
    finally:
        ledger.close()
