"""The lifecycle bench's parts (bench/lifecycle.py is the command):

- stack.py     runs `jitaccess dev up` as a user does, and stops it
- load.py      the load: N concurrent POST /v1/grants, the bare provider calls, the floor
- sequential.py  --sequential K: K requests one at a time before the burst
- sampling.py  what is sampled while it runs: progress, RSS, CPU of ours and of others
- analysis.py  the figures, from the ledger's events, Temporal's histories and the logs
- report.py    the printed report
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def log(msg: str) -> None:
    print(msg, flush=True)
