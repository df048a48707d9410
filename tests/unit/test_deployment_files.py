"""docker-compose.yml and the Dockerfile: the compose file validates (`docker-compose config -q`)
with secrets made by the project's own helper, and the topology keeps each key where it belongs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from jitaccess.ops.make_secrets import make

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def compose_config(tmp_path) -> dict:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose; .ci/run installs it)")
    made = make(tmp_path / "secrets")
    assert "jitaccess_command_signing_key" in made and make(tmp_path / "secrets") == []  # idempotent
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in (tmp_path / "secrets").iterdir())
    env = {**os.environ, "JITACCESS_SECRETS_PATH": str(tmp_path / "secrets")}
    r = subprocess.run([exe, "config", "-q"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([exe, "config"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)


def test_compose_validates_and_has_the_whole_topology(compose_config):
    services = compose_config["services"]
    assert set(services) >= {
        "postgres",
        "temporal",
        "temporal-ui",
        "temporal-setup",
        "openbao",
        "openbao-init",
        "db-migrate",
        "api",
        "worker-1",
        "worker-2",
        "background-worker",
        "prometheus",
    }
    for name, svc in services.items():  # every image pinned
        image = svc["image"]
        assert ":" in image and not image.endswith(":latest"), (name, image)
    # the UI decodes through the API's codec endpoint; the API allows that origin only
    assert services["temporal-ui"]["environment"]["TEMPORAL_CODEC_ENDPOINT"].endswith("/codec")
    assert "http://localhost:8080" in services["api"]["environment"]["JITACCESS_CODEC_CORS_ORIGINS"]
    # the API signs commands; workers hold only its public half and their own key
    secrets_of = {
        n: {s["source"] if isinstance(s, dict) else s for s in svc.get("secrets", [])} for n, svc in services.items()
    }
    assert "jitaccess_command_signing_key" in secrets_of["api"]
    # reconciliation and checkpoints on their own queue and worker: grant workers never poll it (issue 15)
    assert services["api"]["environment"]["JITACCESS_BACKGROUND_TASK_QUEUE"] == "jitaccess-background"
    assert services["worker-1"]["command"] == services["worker-2"]["command"] == ["worker", "--role", "grants"]
    assert services["background-worker"]["command"] == ["worker", "--role", "background"]
    for w in ("worker-1", "worker-2", "background-worker"):
        assert services[w]["environment"]["JITACCESS_BACKGROUND_TASK_QUEUE"] == "jitaccess-background"
        assert "jitaccess_command_signing_key" not in secrets_of[w]
        assert {
            "jitaccess_command_public_keys",
            "jitaccess_worker_signing_key",
            "jitaccess_payload_keys",
        } <= secrets_of[w]
        assert services[w]["environment"]["JITACCESS_METRICS_PORT"] == "9464"
        deps = services[w]["depends_on"]
        assert deps["db-migrate"]["condition"] == "service_completed_successfully"
        assert deps["openbao-init"]["condition"] == "service_completed_successfully"
    assert services["db-migrate"]["command"] == ["db", "upgrade"]
    assert "--state-dir=/openbao/init" in services["openbao-init"]["command"]
    prom = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert {"api:8000", "worker-1:9464", "worker-2:9464", "background-worker:9464"} <= targets
    hcl = (REPO / "deploy/openbao/config.hcl").read_text()
    assert 'storage "raft"' in hcl and 'audit "file"' in hcl and "-dev" not in hcl


def test_dockerfile_is_multi_stage_pinned_non_root_and_holds_no_secret():
    text = (REPO / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, re.M)
    assert base and re.search(r":\d+\.\d+\.\d+-", base.group(1)), "base image pinned to a patch version"
    assert re.search(r"^USER 10001", text, re.M)
    assert "secrets" in (REPO / ".dockerignore").read_text().split()
    assert not re.search(r"(?i)^(ENV|ARG)\s+\S*(KEY|TOKEN|PASSWORD)", text, re.M)
