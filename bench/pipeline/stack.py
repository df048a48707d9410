"""The stack under test, started exactly as a user does: `jitaccess dev up --random-ports --dir DIR`
in its own session, stopped with SIGINT (SIGKILL for what it started, if it will not stop)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

from . import ROOT
from .sampling import cmdline, descendants, proc_status

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


class Stack:
    """`jitaccess dev up --random-ports --dir DIR` in its own session; stopped with SIGINT."""

    def __init__(
        self,
        workdir: Path,
        catalogue: Path | None = None,
        bytecode: bool = True,
        ledger: str = "sqlite",
        watch_stalls: bool = False,
    ) -> None:
        self.workdir = workdir
        # sqlite: dev up's default (one writer at a time, so a shared target's hold lock is the whole
        # database's); postgres: a fresh database, as production runs (row locks per target)
        self.ledger = ledger
        self.ledger_db: str | None = None
        # bytecode: let the stack cache bytecode (in <workdir>/pycache) as an installed package has it,
        # even when PYTHONDONTWRITEBYTECODE is set here: else the workflow sandbox compiles the workflow
        # module from source for every new workflow (~10 ms CPU each, bench/README.md)
        self.bytecode = bytecode
        self.catalogue = catalogue  # JITACCESS_CATALOGUE_FILE for dev up (the bench's own, see catalogue.py)
        # watch_stalls: load stallwatch/sitecustomize.py into the stack's Python process (stalls.py)
        self.stall_log = workdir / "stalls.jsonl" if watch_stalls else None
        self.proc: subprocess.Popen | None = None
        self.dev: dict = {}
        self.children: list[int] = []  # temporal + bao (own sessions), for the SIGKILL fallback
        self.stop_how = ""

    def start(self, timeout: float = 180) -> dict:
        exe = shutil.which(
            "jitaccess", path=os.pathsep.join([str(Path(sys.executable).parent), str(ROOT / ".venv" / "bin")])
        )
        if not exe:
            raise SystemExit("jitaccess not found next to this python or in .venv/bin; run with .venv/bin/python")
        self.log = open(self.workdir / "devup.log", "wb")
        env = {**os.environ, "COLUMNS": "200"}
        if self.catalogue:
            env["JITACCESS_CATALOGUE_FILE"] = str(self.catalogue)
        if self.bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(self.workdir / "pycache")
        if self.stall_log:
            watcher = str(Path(__file__).parent / "stallwatch")
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [watcher, env.get("PYTHONPATH")]))
            env["JITACCESS_BENCH_STALL_LOG"] = str(self.stall_log)
        args = [exe, "dev", "up", "--random-ports", "--dir", str(self.workdir)]
        if self.ledger == "postgres":
            self.ledger_db = "jitaccess_bench_" + secrets.token_hex(4)
            with psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=3) as c:
                c.execute(f'CREATE DATABASE "{self.ledger_db}"')
            args += ["--ledger", f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.ledger_db}"]
        self.proc = subprocess.Popen(
            args,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        deadline = time.monotonic() + timeout
        dev_json = self.workdir / "dev.json"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jitaccess dev up exited with {self.proc.returncode}:\n{self.log_tail()}")
            if dev_json.exists():
                try:
                    self.dev = json.loads(dev_json.read_text())
                    if httpx.get(self.dev["api_url"] + "/healthz", timeout=2).status_code == 200:
                        self.children = descendants(self.proc.pid)
                        return self.dev
                except (ValueError, KeyError, httpx.HTTPError):
                    pass
            time.sleep(0.2)
        raise RuntimeError(f"jitaccess dev up not healthy within {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        p = self.workdir / "devup.log"
        return "\n".join(p.read_text(errors="replace").splitlines()[-n:]) if p.exists() else ""

    def drop_ledger(self) -> None:
        """Drop the PostgreSQL ledger database this stack was given (after the figures are read)."""
        if self.ledger_db is None:
            return
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=3) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{self.ledger_db}" WITH (FORCE)')
        self.ledger_db = None

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.log.closed:
            return
        if self.proc.poll() is not None:  # it died: its servers may still run, and are ours to end
            self.stop_how = f"had exited with {self.proc.returncode}"
            self._end_leftovers()
            return
        self.children = sorted(set(self.children) | set(descendants(self.proc.pid)))
        try:
            os.killpg(self.proc.pid, signal.SIGINT)
            self.proc.wait(timeout)
            self.stop_how = f"SIGINT, exit {self.proc.returncode}"
        except subprocess.TimeoutExpired:
            self.stop_how = f"SIGINT ignored for {timeout:.0f}s: SIGKILL"
            for pid in [self.proc.pid] + self.children:  # only what this process started
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            self.proc.wait(10)
        except ProcessLookupError:
            pass
        self._end_leftovers()

    def _end_leftovers(self) -> None:
        """dev up stops Temporal and OpenBao itself; if one survived (or dev up died), it is ours to end."""
        for pid in self.children:
            if os.path.exists(f"/proc/{pid}") and proc_status(pid):
                self.stop_how += f"; leftover {pid} ({cmdline(pid)[:60]}) killed"
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        self.log.close()
