"""The README's main job: `jitaccess dev up` starts the embedded stack, the CLI
drives a grant through it, and Ctrl-C stops every server it started."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import stat
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import hvac
import jwt
import pytest

from jitaccess.dev.servers import binary, port_open
from tests.support import eventually_sync, throwaway_postgres

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
        came_up(proc, tmp_path / "dev-up.log", dev_json)
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
        _wait_status(tmp_path, gid, "active", 10)
        token = _cli(tmp_path, "--as", "alice", "credential", gid).stdout.strip()
        mine = hvac.Client(
            url=dev["vault_addr"], token=token
        )  # no default policy: it can only do what the entitlement says
        mine.secrets.kv.v2.create_or_update_secret(path="platform/cli", secret={"v": "1"}, mount_point="secret")
        _cli(tmp_path, "--as", "alice", "revoke", gid, "--reason", "done")
        _wait_status(tmp_path, gid, "revoked", 10)
        with pytest.raises(hvac.exceptions.Forbidden):
            mine.secrets.kv.v2.read_secret_version(
                path="platform/cli", mount_point="secret", raise_on_deleted_version=True
            )
        verify = _cli(tmp_path, "--as", "ivan", "evidence", "verify", "--all")  # the auditor
        assert "1 of 1 chains verify" in verify.stdout
        assert "revocation.confirmed" in (tmp_path / "dev-up.log").read_text()  # the event stream
        assert token not in (tmp_path / "dev-up.log").read_text()
        assert token not in (tmp_path / ".jitaccess" / "events.jsonl").read_text()

        # issue 8: the workdir is the owner's alone, and the OpenBao root token is in dev.json (0600)
        # only: not in a server log, the SIEM feed, the console, nor any process's command line
        workdir = tmp_path / ".jitaccess"
        assert stat.S_IMODE(workdir.stat().st_mode) == 0o700
        root = dev["vault_root_token"]
        files = [p for p in workdir.rglob("*") if p.is_file()]
        assert {"ledger.db", "events.jsonl", "dev.json", "users.yaml"} <= {p.name for p in files}
        assert any(p.name.startswith("openbao-") for p in files)
        for p in files:
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
            if p.name != "dev.json":
                assert root not in p.read_text(errors="replace"), p
        assert root not in (tmp_path / "dev-up.log").read_text()
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            with contextlib.suppress(OSError):
                assert root.encode() not in cmdline.read_bytes(), cmdline

        _sign_in_paths(tmp_path, dev)
    finally:
        _stop(proc)
    assert proc.returncode == 0, (tmp_path / "dev-up.log").read_text()
    assert "stopped." in (tmp_path / "dev-up.log").read_text()
    for addr in (dev["temporal_address"], dev["vault_addr"].removeprefix("http://")):
        host, port = addr.rsplit(":", 1)
        assert not port_open(host, int(port)), f"{addr} still listening after Ctrl-C"


def _browser_signs_in(url: str, dev: dict, user: str) -> None:
    """What the person does in the browser: sign in at OpenBao (its UI calls the same API), which
    redirects to the CLI's loopback address with the code."""
    query = parse_qs(urlparse(url).query)
    api_url = url.replace("/ui/vault/identity/oidc/provider/", "/v1/identity/oidc/provider/")
    login = httpx.post(
        f"{dev['vault_addr']}/v1/auth/userpass/login/{user}", json={"password": dev["users"][user]["password"]}
    )
    vault_token = login.json()["auth"]["client_token"]
    answer = httpx.get(api_url, headers={"X-Vault-Token": vault_token}).json()
    assert answer.get("state") == query["state"][0], answer
    httpx.get(query["redirect_uri"][0], params={"code": answer["code"], "state": answer["state"]})


def _sign_in_paths(tmp: Path, dev: dict) -> None:
    """Issue 10: the dev stack's OpenBao is the OIDC identity provider for every CLI sign-in."""
    assert dev["identity"]["console_client_id"] and dev["users"]["deploy-bot"]["kind"] == "service"
    # step-up: secrets-admin-mfa needs its approver to have signed in with MFA in the last 15 minutes
    gid = _cli(tmp, "--as", "alice", "request", "secrets-admin-mfa", "--duration", "PT10M", "--reason", "mfa")
    gid = gid.stdout.split()[0]
    weak = _cli(tmp, "--as", "bob", "approve", gid, check=False)
    assert weak.returncode == 2 and "step_up_required" in weak.stderr, weak.stderr
    up = _cli(tmp, "--as", "bob", "auth", "login", "--step-up")  # password + TOTP at OpenBao
    assert "signed in as bob" in up.stderr and "mfa" in up.stderr, up.stderr
    _cli(tmp, "--as", "bob", "approve", gid)  # the cached step-up sign-in
    # the browser sign-in: authorization code + PKCE with a loopback redirect (this test is the browser)
    login = subprocess.Popen(
        [binary("jitaccess"), "auth", "login", "--no-browser"],
        cwd=tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert login.stderr is not None
    line = login.stderr.readline()
    assert line.startswith("sign in at: "), line
    _browser_signs_in(line.removeprefix("sign in at: ").strip(), dev, "carol")
    _, errs = login.communicate(timeout=60)
    assert login.returncode == 0 and "signed in as carol" in errs, errs
    token = _cli(tmp, "auth", "print-token").stdout.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == dev["identity"]["console_client_id"] and claims["username"] == "carol"
    assert claims["iss"].endswith("/v1/identity/oidc/provider/jitaccess")
    cache = Path(os.environ["JITACCESS_CONFIG_DIR"]) / "tokens.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    gid = _cli(tmp, "--as", "alice", "request", "secrets-admin", "--duration", "PT10M", "--reason", "r")
    gid = gid.stdout.split()[0]
    _cli(tmp, "approve", gid)  # no --as: carol, signed in through the browser
    assert "carol" in _cli(tmp, "--as", "alice", "status", gid).stdout
    _cli(tmp, "auth", "logout")
    gone = _cli(tmp, "status", gid, check=False)
    assert gone.returncode == 1 and "not signed in" in gone.stderr, gone.stderr


def _background_worker(pid: int) -> int | None:
    """The pid of dev up's background worker (a multiprocessing spawn child), if it runs."""
    for kid in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        with contextlib.suppress(OSError):
            if b"multiprocessing.spawn" in Path(f"/proc/{kid}/cmdline").read_bytes():
                return int(kid)
    return None


def _start(tmp_path: Path, log_name: str) -> tuple[subprocess.Popen, dict]:
    log = tmp_path / log_name
    proc = subprocess.Popen(
        [binary("jitaccess"), "dev", "up", "--random-ports"],
        cwd=tmp_path,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    came_up(proc, log, tmp_path / ".jitaccess" / "dev.json")
    return proc, json.loads((tmp_path / ".jitaccess" / "dev.json").read_text())


def came_up(proc: subprocess.Popen, log: Path, dev_json: Path) -> None:
    """Until `dev up` says the stack is up (and has written dev.json); fails at once if it exits."""

    def up() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"dev up exited with {proc.returncode}:\n{log.read_text()}")
        return dev_json.exists() and "stack is up" in log.read_text()

    eventually_sync(up, 90, "dev up: stack is up", interval=0.3)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


def _wait_status(tmp_path: Path, gid: str, want: str, timeout: float) -> str:
    def reached() -> str:
        out = _cli(tmp_path, "--as", "alice", "--json", "status", gid).stdout
        assert json.loads(out)["state"] == want, out
        return out

    return eventually_sync(reached, timeout, f"{gid} {want}", interval=0.5)


def test_a_restarted_dev_stack_carries_its_grants_on(tmp_path):
    """Issue 11: dev up keeps its keys (.jitaccess/keys.json, 0600) and Temporal's database, so after
    a restart the grants in flight are still readable (no 500: the payloads decrypt) and still end —
    one by its expiry timer, one by a revoke."""
    proc, dev = _start(tmp_path, "dev-up-1.log")
    try:
        expiring = _cli(
            tmp_path, "--as", "alice", "request", "secrets-readonly", "--duration", "PT60S", "--reason", "restart"
        ).stdout.split()[0]
        revoking = _cli(
            tmp_path, "--as", "alice", "request", "secrets-readonly", "--duration", "PT10M", "--reason", "restart"
        ).stdout.split()[0]
        for gid in (expiring, revoking):
            _wait_status(tmp_path, gid, "active", 30)
    finally:
        _stop(proc)
    keys = tmp_path / ".jitaccess" / "keys.json"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    first_keys = keys.read_text()

    proc, dev2 = _start(tmp_path, "dev-up-2.log")
    try:
        assert keys.read_text() == first_keys  # reused, not regenerated
        assert dev2["payload_key"] == dev["payload_key"]
        status = json.loads(_wait_status(tmp_path, revoking, "active", 30))  # readable after the restart
        assert status["grant_id"] == revoking
        _cli(tmp_path, "--as", "alice", "revoke", revoking, "--reason", "after restart")
        _wait_status(tmp_path, revoking, "revoked", 60)
        expired = json.loads(_wait_status(tmp_path, expiring, "revoked", 90))
        assert "expired" in (expired.get("end_reason") or ""), expired
        # reconciliation runs on the background worker, a process of dev up's own on its own task queue
        background = _background_worker(proc.pid)
        assert background is not None, "no background worker process under dev up"
        run = _cli(tmp_path, "--as", "erin", "reconcile")
        assert "orphan: 0, drift: 0, mismatch: 0" in " ".join(run.stdout.split()), run.stdout
        verify = _cli(tmp_path, "--as", "ivan", "evidence", "verify", "--all")
        assert re.search(r"\b(\d+) of \1 chains verify", verify.stdout), verify.stdout  # every chain, ours included
    finally:
        _stop(proc)
    assert proc.returncode == 0, (tmp_path / "dev-up-2.log").read_text()
    assert not Path(f"/proc/{background}").exists(), "the background worker outlived dev up"
    log2 = (tmp_path / "dev-up-2.log").read_text()
    assert "Traceback" not in log2 and "payload_key_unknown" not in log2


def test_dev_up_keeps_its_ledger_where_it_is_told(tmp_path):
    """`dev up --ledger URL`: the production ledger (PostgreSQL) under the embedded stack (the
    bench measures that configuration); migrated at start, the grant's chain stored there."""
    from jitaccess.ledger import Ledger

    with throwaway_postgres("jitaccess_devup_") as db:
        log = tmp_path / "dev-up.log"
        proc = subprocess.Popen(
            [binary("jitaccess"), "dev", "up", "--random-ports", "--ledger", db.url],
            cwd=tmp_path,
            stdout=open(log, "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        try:
            came_up(proc, log, tmp_path / ".jitaccess" / "dev.json")
            dev = json.loads((tmp_path / ".jitaccess" / "dev.json").read_text())
            assert dev["ledger_url"] == db.url and not (tmp_path / ".jitaccess" / "ledger.db").exists()
            gid = _cli(
                tmp_path, "--as", "alice", "request", "secrets-readonly", "--duration", "PT10M", "--reason", "pg"
            ).stdout.split()[0]
            _wait_status(tmp_path, gid, "active", 60)
        finally:
            _stop(proc)
        ledger = Ledger(db.url)
        try:
            assert "fulfilment.verified" in [e.type for e in ledger.events(gid)] and ledger.verify(gid).ok
        finally:
            ledger.close()
