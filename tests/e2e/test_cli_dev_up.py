"""The README's main job: `jitaccess dev up` starts the embedded stack, the CLI
drives a grant through it, and Ctrl-C stops every server it started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import hvac
import pytest

from jitaccess.devstack import binary, port_open

pytestmark = pytest.mark.slow


def _cli(tmp: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [binary("jitaccess"), *args],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    if check:
        assert r.returncode == 0, f"{args}: {r.stdout}\n{r.stderr}"
    return r


def test_dev_up_then_cli_request_approve_credential_revoke_verify(tmp_path):
    log = open(tmp_path / "dev-up.log", "w")
    proc = subprocess.Popen(
        [binary("jitaccess"), "dev", "up", "--random-ports"],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    dev_json = tmp_path / ".jitaccess" / "dev.json"
    try:
        deadline = time.monotonic() + 90
        while not (dev_json.exists() and "stack is up" in (tmp_path / "dev-up.log").read_text()):
            assert proc.poll() is None, (tmp_path / "dev-up.log").read_text()
            assert time.monotonic() < deadline, "dev up did not come up in 90s"
            time.sleep(0.3)
        dev = json.loads(dev_json.read_text())
        assert set(dev) >= {"api_url", "temporal_address", "vault_addr", "vault_root_token", "ledger_url", "users"}
        assert set(dev["users"]) >= {"alice", "bob", "carol", "dave"}

        gid = _cli(
            tmp_path, "--as", "alice", "request", "secrets-admin", "--duration", "PT10M", "--reason", "rotate"
        ).stdout.split()[0]
        assert gid.startswith("grant-")
        bad = _cli(tmp_path, "--as", "dave", "approve", gid, check=False)
        assert bad.returncode == 2 and "not_an_approver" in bad.stderr
        _cli(tmp_path, "--as", "bob", "approve", gid, "--comment", "ok")
        for _ in range(100):
            if "active" in _cli(tmp_path, "--as", "alice", "status", gid).stdout:
                break
            time.sleep(0.1)
        token = _cli(tmp_path, "--as", "alice", "credential", gid).stdout.strip()
        mine = hvac.Client(
            url=dev["vault_addr"], token=token
        )  # no default policy: it can only do what the entitlement says
        mine.secrets.kv.v2.create_or_update_secret(path="platform/cli", secret={"v": "1"}, mount_point="secret")
        _cli(tmp_path, "--as", "alice", "revoke", gid, "--reason", "done")
        for _ in range(100):
            if "revoked" in _cli(tmp_path, "--as", "alice", "status", gid).stdout:
                break
            time.sleep(0.1)
        with pytest.raises(hvac.exceptions.Forbidden):
            mine.secrets.kv.v2.read_secret_version(
                path="platform/cli", mount_point="secret", raise_on_deleted_version=True
            )
        verify = _cli(tmp_path, "--as", "carol", "evidence", "verify", "--all")
        assert "1 of 1 chains verify" in verify.stdout
        assert "revocation.confirmed" in (tmp_path / "dev-up.log").read_text()  # the event stream
        assert token not in (tmp_path / "dev-up.log").read_text()
        assert token not in (tmp_path / ".jitaccess" / "events.jsonl").read_text()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert proc.returncode == 0, (tmp_path / "dev-up.log").read_text()
    assert "stopped." in (tmp_path / "dev-up.log").read_text()
    for addr in (dev["temporal_address"], dev["vault_addr"].removeprefix("http://")):
        host, port = addr.rsplit(":", 1)
        assert not port_open(host, int(port)), f"{addr} still listening after Ctrl-C"
