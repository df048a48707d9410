"""Process memory (jitaccess.ops.memory): the malloc arena cap, applied on glibc and skipped when
told to; the frozen start-up heap; the young-generation threshold."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

import pytest

from jitaccess.ops.memory import limit_malloc_arenas, set_young_threshold


def test_zero_or_the_environment_variable_leaves_glibc_alone(monkeypatch) -> None:
    assert limit_malloc_arenas(0) is False
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas(2) is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_the_cap_holds_for_threads_started_after_it() -> None:
    """A fresh interpreter: 16 threads that each malloc at once get at most 2 arenas (glibc's
    malloc_info lists one <heap> per arena); without the cap the same run gets more."""
    script = textwrap.dedent(
        """
        import ctypes, ctypes.util, os, sys, tempfile, threading
        from jitaccess.ops.memory import limit_malloc_arenas
        if sys.argv[1] == "cap":
            assert limit_malloc_arenas(2)
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.malloc.restype = libc.fdopen.restype = ctypes.c_void_p
        go = threading.Barrier(16)
        def churn():
            go.wait()
            for _ in range(2000):
                libc.free(ctypes.c_void_p(libc.malloc(4096)))
        ts = [threading.Thread(target=churn) for _ in range(16)]
        [t.start() for t in ts]; [t.join() for t in ts]
        with tempfile.TemporaryFile("w+") as f:
            fp = libc.fdopen(os.dup(f.fileno()), b"w")
            libc.malloc_info(0, ctypes.c_void_p(fp)); libc.fclose(ctypes.c_void_p(fp))
            f.seek(0); print(f.read().count("<heap nr="))
        """
    )
    env_free = {k: v for k, v in __import__("os").environ.items() if k != "MALLOC_ARENA_MAX"}

    def arenas(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, env=env_free)
        assert out.returncode == 0, out.stderr
        return int(out.stdout.strip())

    assert arenas("cap") <= 2
    assert arenas("default") > 2


def test_the_startup_heap_is_frozen_after_its_garbage_is_collected() -> None:
    """A fresh interpreter: what start-up left reachable is frozen (a full collection no longer
    walks it), what it left as cyclic garbage is collected first rather than frozen for good, and
    what is built afterwards is still collected."""
    script = textwrap.dedent(
        """
        import gc, weakref
        from jitaccess.ops.memory import freeze_startup_heap

        class Node:
            pass

        def cycle():
            a, b = Node(), Node()
            a.other, b.other = b, a
            return a

        gc.disable()  # nothing collects behind the test's back
        kept = [cycle() for _ in range(10_000)]  # reachable: lives as long as the process
        dropped = cycle()
        dropped_ref = weakref.ref(dropped)
        del dropped  # start-up garbage in a cycle: only the collector frees it
        frozen = freeze_startup_heap()
        assert dropped_ref() is None, "start-up garbage was frozen instead of collected"
        assert frozen >= 20_000, frozen
        tracked = {id(o) for o in gc.get_objects()}  # what a full collection walks
        assert not any(id(n) in tracked for n in kept), "the reachable start-up heap is still walked"
        later = cycle()
        later_ref = weakref.ref(later)
        del later
        gc.collect()
        assert later_ref() is None, "a cycle built after the freeze was not collected"
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_the_young_threshold_is_raised_and_the_older_ones_kept() -> None:
    before = gc.get_threshold()
    try:
        assert set_young_threshold(0) == before  # 0: CPython's own
        assert set_young_threshold(2000) == (2000, before[1], before[2])
    finally:
        gc.set_threshold(*before)
