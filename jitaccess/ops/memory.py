"""Process memory: glibc's malloc arenas, capped in worker processes; the start-up heap, frozen;
the cyclic collector's young generation, collected less often.

glibc gives each thread that contends for malloc its own arena (up to 8 per core) and rarely
returns their free space; a worker's 64 activity threads plus the workflow cache's churn left RSS
~30 KB higher per held grant with the default, flat with 2 arenas (bench/README.md, issue 15).
`mallopt(M_ARENA_MAX)` is what the MALLOC_ARENA_MAX environment variable sets, applied from inside
so every way of starting a worker gets it."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os

M_ARENA_MAX = -8  # glibc malloc.h


def limit_malloc_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas at `arenas` for threads that create one from now on. No-op (False)
    for 0, when MALLOC_ARENA_MAX is set (glibc already applied it), or off glibc."""
    if arenas <= 0 or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to cap
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))


def freeze_startup_heap() -> int:
    """Take what the process built while starting (modules, classes, functions, the app: ~250,000
    objects in a worker) out of the cyclic collector's reach, after collecting what is already
    garbage. It lives as long as the process, yet every full collection walked it, and a full
    collection stops every thread: with 1,000–2,000 grants cached, 0.4–0.65 s per pass, an expiry
    waiting behind it (bench/README.md, issue 15). Returns how many objects are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def set_young_threshold(threshold: int) -> tuple[int, int, int]:
    """Collect the young generation every `threshold` net new tracked objects instead of
    CPython 3.11's 700 (0: keep it). A full pass is due at most every threshold0 × threshold1 ×
    threshold2 of them, and each one stops every thread for as long as it walks the heap
    (0.1–0.35 s with 500 grants cached): at 2,000 held grants and one reconciliation, 2,000 cut
    the full passes from 22 to 6–10 for ~10 MB more RSS; 10,000 cut them to 1 but held ~90 MB more,
    the cyclic garbage of evicted workflows waiting for a pass (bench/README.md, issue 15).
    Returns the thresholds in force."""
    if threshold > 0:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(threshold, older, oldest)
    return gc.get_threshold()
