"""The background worker `dev up` runs as a process of its own (jitaccess.dev.background_worker): it
gets its settings without them showing in its command line or environment, and it never outlives
`dev up`, not even a `dev up` killed outright. (`dev up` end to end, reconciliation included:
tests/e2e/test_cli_dev_up.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from jitaccess.dev.servers import free_port
from jitaccess.ledger.migrate import upgrade
from tests.support import eventually_sync

REPO = Path(__file__).resolve().parents[2]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")  # exited; reaped by whoever adopted it


def test_the_reconcile_worker_stops_when_dev_up_is_killed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    upgrade(url)
    log = tmp_path / "events.jsonl"
    secret = "vault-token-" + os.urandom(8).hex()
    parent = tmp_path / "parent.py"
    parent.write_text(
        textwrap.dedent(
            f"""
            import time
            from pathlib import Path
            from jitaccess.config import Settings
            from jitaccess.dev.background_worker import start_background_worker

            if __name__ == "__main__":
                settings = Settings(
                    temporal_address="127.0.0.1:{free_port()}",  # nothing there: it waits for Temporal
                    background_task_queue="background",
                    ledger_url="{url}",
                    vault_token="{secret}",
                )
                print(start_background_worker(settings, Path("{log}")).pid, flush=True)
                time.sleep(300)
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(parent)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())
        eventually_sync(lambda: log.exists() and "temporal_unreachable" in log.read_text(), 60, "the worker waiting")
        assert secret.encode() not in Path(f"/proc/{child}/cmdline").read_bytes()
        assert secret.encode() not in Path(f"/proc/{child}/environ").read_bytes()
        proc.send_signal(signal.SIGKILL)  # dev up gone without a word
        proc.wait(10)
        eventually_sync(lambda: _gone(child), 20, "the orphaned background worker stopping")
    finally:
        proc.kill()
