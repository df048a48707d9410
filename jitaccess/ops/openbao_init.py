"""First start of an OpenBao in server mode (not dev): initialise, unseal, check the audit device,
and give jitaccess what it needs — the one helper the compose file (`openbao-init`) and the
end-to-end test share.

    python -m jitaccess.ops.openbao_init --addr http://openbao:8200 --state-dir /openbao/init \
        --token-file /run/jitaccess/jitaccess_vault_token --seed

Idempotent: run it at every start. It initialises OpenBao only when it is not yet initialised,
unseals it when sealed, mounts KV v2 at `secret/`, writes the jitaccess worker policy (and with
`--seed` the example entitlement policies), and writes a worker token to `--token-file` (0600)
unless the file already holds a live one.

NOT PRODUCTION KEY HANDLING. It initialises with ONE unseal key share and keeps it, with the root
token, in `<state-dir>/init.json` (0600) beside the server, so the stack can unseal itself after
a restart. In production: auto-unseal (a KMS or transit seal) or Shamir shares held by different
people, no stored unseal key, the root token revoked after setup, and workers signing in with an
auth method (AppRole, Kubernetes) instead of a token file (docs/operations.md).

Audit: OpenBao 2.x accepts audit devices only from its configuration file (declarative); the
helper checks that at least one is enabled and fails otherwise (`--allow-no-audit` to override).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from jitaccess.config.settings import EXAMPLES

WORKER_POLICY_NAME = "jitaccess-worker"
# What the providers call (jitaccess.providers.vault_*): child tokens carrying the entitlement's
# policies (sudo: policies the worker itself does not hold), their accessors, response wrapping,
# the database secrets engine and its leases, AppRole secret-IDs.
WORKER_POLICY = """
path "auth/token/create" { capabilities = ["create", "update", "sudo"] }
path "auth/token/accessors" { capabilities = ["list", "sudo"] }
path "auth/token/lookup-accessor" { capabilities = ["update"] }
path "auth/token/revoke-accessor" { capabilities = ["update"] }
path "auth/token/renew-accessor" { capabilities = ["update"] }
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self" { capabilities = ["update"] }
path "sys/wrapping/wrap" { capabilities = ["update"] }
path "sys/leases/lookup" { capabilities = ["update"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }
path "sys/leases/lookup/*" { capabilities = ["list", "sudo"] }
path "database/creds/*" { capabilities = ["read"] }
path "database/roles/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "database/roles" { capabilities = ["list"] }
path "auth/approle/role" { capabilities = ["list"] }
path "auth/approle/role/*" { capabilities = ["create", "read", "update", "delete", "list"] }
"""
WORKER_TOKEN_PERIOD = "768h"  # renewable; a worker token that is not renewed expires with its children


class InitError(RuntimeError):
    pass


class Bao:
    def __init__(self, addr: str, token: str | None = None, timeout: float = 30) -> None:
        self.c = httpx.Client(base_url=addr.rstrip("/"), timeout=timeout)
        self.token = token

    def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 204)) -> dict[str, Any]:
        headers = {"X-Vault-Token": self.token} if self.token else {}
        r = self.c.request(method, f"/v1/{path}", json=body, headers=headers)
        if r.status_code not in ok:
            errors = (
                r.json().get("errors") if r.headers.get("content-type", "").startswith("application/json") else r.text
            )
            raise InitError(f"{method} {path}: {r.status_code} {errors}")
        return r.json() if r.content else {}

    def health(self) -> int:
        return self.c.get("/v1/sys/health").status_code

    def close(self) -> None:
        self.c.close()


def _say(msg: str) -> None:
    print(f"openbao_init: {msg}", flush=True)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def wait_reachable(bao: Bao, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return bao.health()
        except httpx.HTTPError as e:
            if time.monotonic() > deadline:
                raise InitError(f"OpenBao did not answer within {timeout:.0f}s: {type(e).__name__}") from None
            time.sleep(0.5)


def init_and_unseal(bao: Bao, state_dir: Path, timeout: float = 60) -> dict[str, Any]:
    """Initialise (once, 1 key share: NOT for production) and unseal; returns init.json's content."""
    state = state_dir / "init.json"
    status = wait_reachable(bao, timeout)
    if status == 501:  # not initialised
        if state.exists():
            raise InitError(
                f"OpenBao is not initialised but {state} exists: it belongs to another storage; move it away"
            )
        init = bao.call("PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1})
        _write_private(state, json.dumps({"keys_base64": init["keys_base64"], "root_token": init["root_token"]}))
        _say(f"initialised; unseal key and root token in {state} (0600) - NOT production key handling")
    if not state.exists():
        raise InitError(f"OpenBao is initialised but {state} is missing: unseal it by hand, then run this again")
    keys = json.loads(state.read_text())
    if bao.call("GET", "sys/seal-status").get("sealed"):
        for key in keys["keys_base64"]:
            if not bao.call("PUT", "sys/unseal", {"key": key}).get("sealed"):
                break
        _say("unsealed")
    deadline = time.monotonic() + timeout
    while bao.health() != 200:  # raft elects itself leader shortly after unsealing
        if time.monotonic() > deadline:
            raise InitError(f"OpenBao is unsealed but not active after {timeout:.0f}s (health {bao.health()})")
        time.sleep(0.3)
    return keys


def configure(bao: Bao, *, seed_policies: dict[str, str] | None, allow_no_audit: bool) -> None:
    audit = bao.call("GET", "sys/audit").get("data") or {}
    if not audit and not allow_no_audit:
        raise InitError(
            "no audit device is enabled: declare one in the server's configuration "
            '(audit "file" "file" { options { file_path = "..." } }), as deploy/openbao/config.hcl does'
        )
    _say(f"audit devices: {', '.join(sorted(audit)) or 'none (allowed by --allow-no-audit)'}")
    mounts = bao.call("GET", "sys/mounts").get("data") or {}
    if "secret/" not in mounts:
        bao.call("POST", "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}})
        _say("mounted KV v2 at secret/")
    bao.call("PUT", f"sys/policies/acl/{WORKER_POLICY_NAME}", {"policy": WORKER_POLICY})
    for name, body in (seed_policies or {}).items():
        bao.call("PUT", f"sys/policies/acl/{name}", {"policy": body})
    if seed_policies:
        _say(f"policies: {', '.join([WORKER_POLICY_NAME, *sorted(seed_policies)])}")


def worker_token(bao: Bao, token_file: Path) -> str:
    """The token workers use (JITACCESS_VAULT_TOKEN, e.g. from a secrets file): kept while it is
    live (renewed), else a new periodic orphan token with the worker policy."""
    if token_file.exists():
        current = token_file.read_text().strip()
        probe = Bao(str(bao.c.base_url), current)
        try:
            probe.call("PUT", "auth/token/renew-self", {})
            _say(f"worker token in {token_file} is live (renewed)")
            return current
        except (InitError, httpx.HTTPError):
            _say(f"worker token in {token_file} is not live: making a new one")
        finally:
            probe.close()
    resp = bao.call(
        "POST",
        "auth/token/create-orphan",
        {
            "policies": [WORKER_POLICY_NAME],
            "no_default_policy": True,
            "period": WORKER_TOKEN_PERIOD,
            "display_name": "jitaccess-worker",
            "meta": {"purpose": "jitaccess worker"},
        },
    )
    token = resp["auth"]["client_token"]
    _write_private(token_file, token)
    _say(f"worker token written to {token_file} (0600)")
    return token


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--addr", default=os.environ.get("BAO_ADDR", "http://127.0.0.1:8200"))
    p.add_argument("--state-dir", type=Path, required=True, help="where init.json (unseal key, root token) is kept")
    p.add_argument("--token-file", type=Path, help="write the workers' OpenBao token here (0600)")
    p.add_argument("--seed", action="store_true", help="also write the example entitlement policies")
    p.add_argument("--policies", type=Path, default=EXAMPLES / "vault_policies.yaml", help="with --seed")
    p.add_argument("--allow-no-audit", action="store_true")
    p.add_argument("--timeout", type=float, default=120)
    a = p.parse_args(argv)
    bao = Bao(a.addr)
    try:
        keys = init_and_unseal(bao, a.state_dir, a.timeout)
        bao.token = keys["root_token"]
        seed = yaml.safe_load(a.policies.read_text()) if a.seed else None
        configure(bao, seed_policies=seed, allow_no_audit=a.allow_no_audit)
        if a.token_file:
            worker_token(bao, a.token_file)
    except (InitError, httpx.HTTPError, OSError) as e:
        print(f"openbao_init: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        bao.close()
    _say("ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
