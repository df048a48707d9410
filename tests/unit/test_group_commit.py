"""Group commit (jitaccess.ledger.group_commit): what is written together, what each caller gets back."""

from __future__ import annotations

import threading
import time

import pytest

from jitaccess.ledger.group_commit import GroupCommit


class Recorder:
    """A write function that records its batches; the first call can be held open."""

    def __init__(self, hold_first: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.entered, self.release = threading.Event(), threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, batch: list[str]) -> list[str | Exception]:
        self.batches.append(list(batch))
        self.entered.set()
        self.release.wait(5)
        return [ValueError(f"bad {r}") if r.startswith("bad") else r.upper() for r in batch]


def submit_in_thread(gc: GroupCommit, req: str, answers: dict) -> threading.Thread:
    def run() -> None:
        try:
            answers[req] = gc.submit(req)
        except Exception as e:
            answers[req] = e

    t = threading.Thread(target=run)
    t.start()
    return t


def wait_queued(gc: GroupCommit, n: int) -> None:
    deadline = time.monotonic() + 5
    while gc._queue.qsize() < n:
        assert time.monotonic() < deadline, "requests never queued"
        time.sleep(0.001)


def test_one_caller_at_a_time_writes_its_own_batch():
    rec = Recorder()
    gc = GroupCommit(rec)
    assert [gc.submit("a"), gc.submit("b")] == ["A", "B"]
    assert rec.batches == [["a"], ["b"]]


def while_one_writes(first: str, *others: str) -> tuple[Recorder, dict]:
    """`first` is being written (its write held open) while `others` are submitted; then all end."""
    rec = Recorder(hold_first=True)
    gc = GroupCommit(rec)
    answers: dict = {}
    threads = [submit_in_thread(gc, first, answers)]
    assert rec.entered.wait(5)
    threads += [submit_in_thread(gc, r, answers) for r in others]
    wait_queued(gc, len(others))
    rec.release.set()
    for t in threads:
        t.join(5)
    return rec, answers


def test_callers_arriving_while_one_writes_are_written_together():
    rec, answers = while_one_writes("a", "b", "c", "d")
    assert rec.batches[0] == ["a"] and sorted(rec.batches[1]) == ["b", "c", "d"] and len(rec.batches) == 2
    assert answers == {"a": "A", "b": "B", "c": "C", "d": "D"}


def test_a_failing_request_fails_only_its_caller():
    _, answers = while_one_writes("a", "b", "bad-c")
    assert answers["b"] == "B" and isinstance(answers["bad-c"], ValueError)


def test_a_broken_writer_fails_every_caller_of_its_batch_and_the_next_batch_is_written():
    calls = []

    def write(batch: list[str]) -> list[str | Exception]:
        calls.append(batch)
        if len(calls) == 1:
            raise ConnectionError("database went away")
        return [r.upper() for r in batch]

    gc = GroupCommit(write)
    with pytest.raises(ConnectionError):
        gc.submit("a")
    assert gc.submit("b") == "B"


def test_close_writes_what_is_queued_and_a_later_append_starts_a_new_writer():
    rec = Recorder(hold_first=True)
    gc = GroupCommit(rec)
    answers: dict = {}
    first = submit_in_thread(gc, "a", answers)
    assert rec.entered.wait(5)
    queued = submit_in_thread(gc, "b", answers)
    wait_queued(gc, 1)
    closing = threading.Thread(target=gc.close)
    closing.start()
    rec.release.set()
    for t in (first, queued, closing):
        t.join(5)
    assert answers == {"a": "A", "b": "B"} and gc._writer is None
    assert gc.submit("c") == "C" and rec.batches[-1] == ["c"]
    gc.close()


def test_a_forked_child_starts_its_own_writer():
    rec = Recorder()
    gc = GroupCommit(rec)
    assert gc.submit("a") == "A"
    parents = gc._writer
    gc._pid = -1  # as a forked child sees it: the parent's writer thread is not in this process
    assert gc.submit("b") == "B" and gc._writer is not parents
    gc.close()
