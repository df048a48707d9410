"""Bench only: `lifecycle.py --watch-stalls` puts this directory on `dev up`'s PYTHONPATH, so the
stack's Python process loads it at start-up and records, as JSON lines in
$JITACCESS_BENCH_STALL_LOG, what could stall the worker for a second or more:

- `gc`: every full (generation 2) collection, and any other one of 20 ms or more, with its length;
- `gil`: a watchdog thread that should wake every 20 ms woke 100 ms or more late, so something held
  the interpreter (a collection, a long C call) that long;
- `slow_callback`: one event-loop callback ran 100 ms or more;

with JITACCESS_BENCH_STALL_STACKS=1, each stall also has the stacks the watchdog sampled from every
busy thread while it lasted (counts per stack, innermost frame last; a walk every 20 ms). Off by
default: reading another thread's frames in CPython 3.11 killed `dev up` with a segfault in this
thread (a reference count through a NULL pointer, likeliest a cleared frame's code) 4 minutes into a 10,000-held run
(bench/README.md, thirteenth session), so stacks are for short runs only."""

from __future__ import annotations

import asyncio.events
import collections
import gc
import json
import os
import signal
import sys
import threading
import time
import types

_PATH = os.environ.get("JITACCESS_BENCH_STALL_LOG")
_TICK = 0.02
_LATE = 0.1
_IDLE = ("wait", "select", "poll", "_worker", "acquire", "sleep", "get", "_watch")
_STACKS = os.environ.get("JITACCESS_BENCH_STALL_STACKS") == "1"


def _write(rec: dict) -> None:
    rec["pid"] = os.getpid()
    with _lock:
        with open(_PATH, "a") as f:  # type: ignore[arg-type]
            f.write(json.dumps(rec) + "\n")


def _stack(frame) -> str:
    names = []
    # another thread's frames change under us: in 3.11 f_back has been seen to return a
    # method_descriptor mid-call, which killed the watchdog (and every later `gil` record) once
    while isinstance(frame, types.FrameType) and len(names) < 40:
        code = frame.f_code
        names.append(f"{os.path.basename(code.co_filename)}:{code.co_name}:{frame.f_lineno}")
        frame = frame.f_back
    return ";".join(reversed(names))


def _busy(frame) -> bool:
    return frame is not None and frame.f_code.co_name not in _IDLE


def _stacks_between(t0: float, t1: float) -> dict[str, int]:
    counts: collections.Counter[str] = collections.Counter()
    for t, stacks in list(_samples):
        if t0 - _TICK <= t <= t1 + _TICK:
            counts.update(stacks)
    return dict(counts.most_common(15))


def _current_frames() -> dict:
    """sys._current_frames() with the collector off. In 3.11 it holds the interpreter's thread-list
    lock while it builds the dict; a collection there runs `_on_gc`, which waits for the GIL, while
    the GIL's holder may be waiting for that lock (a thread state made or cleared): `dev up` hung
    for good that way 4 minutes into a 10,000-held run (bench/README.md, twelfth session)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return sys._current_frames()
    finally:
        if enabled:
            gc.enable()


def _watch() -> None:
    me = threading.get_ident()
    names = {}
    last = last_totals = time.perf_counter()
    while True:
        time.sleep(_TICK)
        now = time.perf_counter()
        if now - last - _TICK >= _LATE:
            _write(
                {
                    "kind": "gil",
                    "t": time.time(),
                    "late_ms": round((now - last - _TICK) * 1000, 1),
                    "stacks": _stacks_between(last, now),
                }
            )
        last = now
        if now - last_totals >= 10:
            last_totals = now
            _write({"kind": "gc_totals", "t": time.time(), "per_gen": _totals(), "threshold": gc.get_threshold()})
        if len(names) != threading.active_count():
            names = {t.ident: t.name for t in threading.enumerate()}
        if not _STACKS:
            continue
        try:
            frames = _current_frames().items()
            stacks = [f"{names.get(tid, tid)};{_stack(f)}" for tid, f in frames if tid != me and _busy(f)]
        except Exception:  # a frame torn mid-walk: skip this sample, keep watching
            continue
        _samples.append((now, stacks))


def _on_gc(phase: str, info: dict) -> None:
    global _gc_start
    if phase == "start":
        _gc_start = time.perf_counter()
        return
    ms = (time.perf_counter() - _gc_start) * 1000
    _gc_totals[info["generation"]][0] += 1
    _gc_totals[info["generation"]][1] += ms
    if info["generation"] == 2 or ms >= 20:
        _write(
            {
                "kind": "gc",
                "t": time.time(),
                "gen": info["generation"],
                "ms": round(ms, 1),
                "collected": info["collected"],
            }
        )


def _totals() -> list[list[float]]:
    """[collections, ms] per generation since start-up."""
    return [[n, round(ms, 1)] for n, ms in _gc_totals]


def _timed_run(self) -> None:
    t0 = time.perf_counter()
    _handle_run(self)
    t1 = time.perf_counter()
    if t1 - t0 >= _LATE:
        _write(
            {
                "kind": "slow_callback",
                "t": time.time(),
                "ms": round((t1 - t0) * 1000, 1),
                "callback": repr(self)[:300],
                "stacks": _stacks_between(t0, t1),
            }
        )


def _census(signum, frame) -> None:
    """SIGUSR2: what the collector tracks, by type (the 30 commonest), to see what a full pass walks;
    for each type named in $JITACCESS_BENCH_CENSUS_DETAIL, three of them with who refers to them."""
    objs = gc.get_objects()
    counts = collections.Counter(type(o).__qualname__ for o in objs)
    detail = {}
    for name in filter(None, os.environ.get("JITACCESS_BENCH_CENSUS_DETAIL", "").split(",")):
        found = [o for o in objs if type(o).__qualname__ == name][-3:]
        detail[name] = [
            {"repr": repr(o)[:200], "referrers": [_describe(r) for r in gc.get_referrers(o) if r is not objs][:6]}
            for o in found
        ]
    _write(
        {
            "kind": "census",
            "t": time.time(),
            "tracked": len(objs),
            "frozen": gc.get_freeze_count(),
            "top": counts.most_common(30),
            "detail": detail,
        }
    )


def _describe(o) -> str:
    if isinstance(o, dict):
        return "dict keys " + ",".join(map(str, list(o)[:8]))[:160]
    return f"{type(o).__qualname__} {repr(o)[:160]}"


if _PATH:
    _lock = threading.Lock()
    _samples: collections.deque = collections.deque(maxlen=int(30 / _TICK))
    _gc_start = 0.0
    _gc_totals = [[0, 0.0] for _ in range(3)]
    gc.callbacks.append(_on_gc)
    _handle_run = asyncio.events.Handle._run
    asyncio.events.Handle._run = _timed_run  # type: ignore[method-assign]
    threading.Thread(target=_watch, name="stallwatch", daemon=True).start()
    signal.signal(signal.SIGUSR2, _census)
    _write({"kind": "start", "t": time.time(), "argv": sys.argv[:4], "gc_threshold": gc.get_threshold()})
