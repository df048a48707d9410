"""The production topology without Docker (the same pieces docker-compose.yml runs), end to end:

- OpenBao in **server mode** (raft storage, a declared audit device), initialised, unsealed and
  configured by the same helper the compose file runs (`python -m jitaccess.ops.openbao_init`),
  which also writes the workers' own (non-root) token;
- the ledger on PostgreSQL, a fresh database, its schema made by the one-shot `jitaccess db upgrade`;
- two grant worker processes (`python -m jitaccess.workers.main --role grants`), a background worker
  (`--role background`, on a task queue of its own) and the API (`jitaccess api`), each configured by
  environment only, secrets from files (JITACCESS_SECRETS_DIR), each worker serving /metrics;
- a grant requested through the API by a user signed in with OIDC, issued by a worker, its
  wrapped token unwrapped and used, expired, revoked and confirmed by read-back; the evidence in
  PostgreSQL verifies; a reconciliation asked of the API runs on the background worker; every worker
  stops gracefully on SIGTERM.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import hvac
import pytest

from jitaccess.config import load_users
from jitaccess.config.settings import EXAMPLES
from jitaccess.dev.identity import DevTokens, seed_dev_identity
from jitaccess.dev.servers import binary, free_port
from jitaccess.domain.commands import CommandSigner, SignerRole, new_private_key_text, public_key_text
from jitaccess.ledger import Ledger
from jitaccess.workers.codec import new_key
from tests.support import eventually, throwaway_postgres

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _bao_config(data: Path, port: int, cluster: int, audit: Path) -> str:
    """The shape of deploy/openbao/config.hcl, on loopback ports."""
    return f"""
storage "raft" {{
  path    = "{data}"
  node_id = "jitaccess-e2e"
}}
listener "tcp" {{
  address         = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cluster}"
  tls_disable     = true
}}
api_addr     = "http://127.0.0.1:{port}"
cluster_addr = "http://127.0.0.1:{cluster}"
audit "file" "file" {{
  options {{
    file_path = "{audit}"
  }}
}}
"""


class Procs:
    """Processes this test started, each in its own process group; stopped by pid at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs, self.procs = logs, {}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "ab") as out:
            p = subprocess.Popen(
                args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        self.procs[name] = p
        return p

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-4000:]

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        p = self.procs[name]
        if p.poll() is None:
            os.killpg(p.pid, sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout)
                return None
        return p.returncode

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


def _run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    r = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


async def _wait(what: str, ready, timeout: float, logs=lambda: "") -> None:
    """`eventually`, where a server not answering yet is not ready yet; the logs when it never is."""
    try:
        await eventually(ready, timeout, what, interval=0.3, ignoring=(httpx.HTTPError,))
    except AssertionError as e:
        raise AssertionError(f"{e}\n{logs()}") from None


@pytest.fixture
def postgres_db():
    with throwaway_postgres("jitaccess_topology") as db:
        yield db


async def test_api_and_two_workers_on_postgres_and_a_sealed_openbao(
    tmp_path, temporal_server, postgres_db, catalogue_file
):
    procs = Procs(tmp_path)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("JITACCESS_", "OTEL_"))}
    try:
        # -- OpenBao, server mode: sealed and uninitialised until the helper runs -------------------
        port, cluster = free_port(), free_port()
        (tmp_path / "bao-data").mkdir()
        config = tmp_path / "openbao.hcl"
        config.write_text(_bao_config(tmp_path / "bao-data", port, cluster, tmp_path / "audit.log"))
        procs.start("openbao", [binary("bao"), "server", f"-config={config}"], base_env)
        addr = f"http://127.0.0.1:{port}"
        await _wait(
            "openbao", lambda: httpx.get(f"{addr}/v1/sys/health").status_code == 501, 30, lambda: procs.log("openbao")
        )

        secrets_dir = tmp_path / "secrets"
        token_file = secrets_dir / "jitaccess_vault_token"
        init = [
            sys.executable,
            "-m",
            "jitaccess.ops.openbao_init",
            "--addr",
            addr,
            "--state-dir",
            str(tmp_path / "bao-init"),
        ]
        init += ["--token-file", str(token_file), "--seed"]
        out = _run(init, base_env).stdout
        assert "initialised" in out and "unsealed" in out and "audit devices: file/" in out, out
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        assert "initialised" not in _run(init, base_env).stdout  # idempotent: a second start changes nothing
        root = json.loads((tmp_path / "bao-init" / "init.json").read_text())["root_token"]
        worker_token = token_file.read_text()
        assert worker_token != root
        assert "root" not in hvac.Client(url=addr, token=worker_token).auth.token.lookup_self()["data"]["policies"]
        rootc = hvac.Client(url=addr, token=root)
        rootc.secrets.kv.v2.create_or_update_secret(path="platform/demo", secret={"v": "1"}, mount_point="secret")
        idp = seed_dev_identity(addr, root, load_users(EXAMPLES / "users.yaml"))  # OpenBao as the OIDC provider

        # -- the ledger: a fresh PostgreSQL database, schema by the one-shot upgrade ----------------
        ledger_url = postgres_db.url
        _run([sys.executable, "-m", "jitaccess.cli", "db", "upgrade", "--url", ledger_url], base_env)

        # -- keys: as in production, each process holds only its own --------------------------------
        api_key, worker_key, payload_key = new_private_key_text(), new_private_key_text(), new_key()
        api_public = public_key_text(CommandSigner.from_text(api_key, SignerRole.api).public_key)
        secrets_dir.mkdir(exist_ok=True)
        for name, value in {
            "jitaccess_payload_keys": payload_key,
            "jitaccess_worker_signing_key": worker_key,
            "jitaccess_command_signing_key": api_key,
        }.items():
            (secrets_dir / name).write_text(value)
        common = {
            **base_env,
            "JITACCESS_TEMPORAL_ADDRESS": temporal_server.address,
            "JITACCESS_TASK_QUEUE": f"topology-{secrets.token_hex(4)}",
            "JITACCESS_BACKGROUND_TASK_QUEUE": f"topology-background-{secrets.token_hex(4)}",
            "JITACCESS_LEDGER_URL": ledger_url,
            "JITACCESS_VAULT_ADDR": addr,
            "JITACCESS_CATALOGUE_FILE": str(catalogue_file),
        }
        worker_dir, api_dir = tmp_path / "worker-secrets", tmp_path / "api-secrets"
        for d, names in (
            (worker_dir, ["jitaccess_payload_keys", "jitaccess_worker_signing_key", "jitaccess_vault_token"]),
            (api_dir, ["jitaccess_payload_keys", "jitaccess_command_signing_key"]),
        ):
            d.mkdir()
            for n in names:
                (d / n).write_text((secrets_dir / n).read_text())
        worker_env = {
            **common,
            "JITACCESS_SECRETS_DIR": str(worker_dir),
            "JITACCESS_COMMAND_PUBLIC_KEYS": json.dumps([api_public]),
        }
        metrics_ports = [free_port(), free_port(), free_port()]
        workers = {"worker0": "grants", "worker1": "grants", "background": "background"}
        for (name, role), mport in zip(workers.items(), metrics_ports, strict=True):
            procs.start(
                name,
                [sys.executable, "-m", "jitaccess.workers.main", "--role", role],
                {**worker_env, "JITACCESS_METRICS_PORT": str(mport)},
            )
        api_port = free_port()
        api_env = {
            **common,
            "JITACCESS_SECRETS_DIR": str(api_dir),
            "JITACCESS_USERS_FILE": str(EXAMPLES / "users.yaml"),
            "JITACCESS_OIDC_ISSUERS": json.dumps([i.model_dump(mode="json") for i in idp.issuers]),
        }
        procs.start("api", [sys.executable, "-m", "jitaccess.cli", "api", "--port", str(api_port)], api_env)
        base = f"http://127.0.0.1:{api_port}"

        def ready() -> bool:
            for name in ("api", *workers):
                if procs.procs[name].poll() is not None:
                    pytest.fail(f"{name} exited:\n{procs.log(name)}")
            return httpx.get(f"{base}/readyz").status_code == 200 and all(
                httpx.get(f"http://127.0.0.1:{p}/metrics").status_code == 200 for p in metrics_ports
            )

        await _wait("api and workers", ready, 60, lambda: procs.log("api") + procs.log("worker0"))

        # -- a grant, end to end ---------------------------------------------------------------
        tokens = DevTokens(idp)
        async with httpx.AsyncClient(base_url=base, timeout=30) as api:
            alice = {"Authorization": f"Bearer {tokens['alice']}"}
            body = {"entitlement": "secrets-readonly", "duration": 6, "reason": "topology e2e"}
            r = await api.post("/v1/grants", json=body, headers=alice)
            assert r.status_code == 202, r.text
            gid = r.json()["grant_id"]

            def state_is(want: str):
                async def reached() -> bool:
                    r = await api.get(f"/v1/grants/{gid}", headers={"Authorization": f"Bearer {tokens['alice']}"})
                    if r.status_code != 200:
                        pytest.fail(f"GET {gid}: {r.status_code} {r.text}")
                    assert r.json()["state"] == want, f"{gid} is {r.json()['state']}"
                    return True

                return reached

            await _wait(f"{gid} active", state_is("active"), 30, lambda: procs.log("worker0") + procs.log("worker1"))
            r = await api.get(f"/v1/grants/{gid}/credential", headers=alice)
            assert r.status_code == 200, r.text
            granted = hvac.Client(url=addr, token=r.json()["wrapping_token"]).sys.unwrap()["auth"]["client_token"]
            mine = hvac.Client(url=addr, token=granted)
            assert mine.secrets.kv.v2.read_secret_version(
                path="platform/demo", mount_point="secret", raise_on_deleted_version=True
            )
            await _wait(f"{gid} revoked", state_is("revoked"), 40)

            # reconciliation, asked of the API, runs on the background worker (its queue's only poller)
            erin = {"Authorization": f"Bearer {tokens['erin']}"}
            r = await api.post("/v1/reconciliation/runs", json={"dry_run": True}, headers=erin)
            assert r.status_code == 200, r.text + procs.log("background")
            assert r.json()["error"] is None and r.json()["counts"]["failed"] == 0, r.json()
        with pytest.raises(hvac.exceptions.Forbidden):
            mine.secrets.kv.v2.read_secret_version(
                path="platform/demo", mount_point="secret", raise_on_deleted_version=True
            )

        # the evidence is in PostgreSQL and verifies; OpenBao's audit device saw the issuance
        ledger = Ledger(ledger_url)
        try:
            await eventually(lambda: "revocation.confirmed" in [e.type for e in ledger.events(gid)], 10, "revoked")
            assert ledger.verify(gid).ok
        finally:
            ledger.close()
        assert (tmp_path / "audit.log").stat().st_size > 0

        # each worker serves its metrics: the SDK's, and jitaccess's from whichever worker did the work
        async with httpx.AsyncClient() as c:
            texts = [(await c.get(f"http://127.0.0.1:{p}/metrics")).text for p in metrics_ports]
        assert "reconcile_scan" in texts[2] and "reconcile_scan" not in texts[0] + texts[1]
        assert all("temporal_" in t for t in texts)
        assert any(
            'jitaccess_provider_call_seconds_count{operation="issue",outcome="ok",provider="vault_token"}' in t
            for t in texts
        )
        assert any('outcome="revoked"' in t for t in texts)

        # SIGTERM: each worker stops polling, lets running activities finish, and exits 0
        for name in workers:
            assert procs.stop(name, signal.SIGTERM, timeout=30) == 0, procs.log(name)
    finally:
        procs.stop_all()
