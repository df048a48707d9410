"""Evidence bundles, SIEM exports (validated against the OCSF 1.5.0 User Access Management and
CloudEvents 1.0 JSON schemas, vendored under tests/fixtures) and the checkpointer on Temporal."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest
from cloudevents.core.formats.json import JSONFormat
from typer.testing import CliRunner

from jitaccess.cli import app
from jitaccess.domain.events import IdentityEvent, verify_chain
from jitaccess.ledger import Ledger
from jitaccess.ledger.evidence_log import checkpoints, latest_checkpoint, read_exports
from jitaccess.workers.checkpointing import ensure_checkpoint_schedule
from jitaccess.workflows.checkpoint import CheckpointWorkflow
from tests.conftest import running_worker
from tests.integration.evidence_support import Pristine, copy_sqlite, generate, make_settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
runner = CliRunner()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, temporal_server, openbao, catalogue_file, command_keys) -> Pristine:
    return generate(tmp_path_factory.mktemp("evidence"), temporal_server, openbao, catalogue_file, command_keys)


def run(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.stdout


# -- bundles -------------------------------------------------------------------------------------
def test_a_bundle_answers_the_auditors_questions_and_verifies_alone(pristine, tmp_path):
    gid = pristine.approved[0]
    run(
        "evidence",
        "export",
        gid,
        "--ledger",
        pristine.url,
        "--out",
        str(tmp_path),
        "--public-key",
        str(pristine.public_key),
    )
    bundle = tmp_path / gid
    assert {p.name for p in bundle.iterdir()} == {
        "events.json",
        "proof.json",
        "checkpoint.json",
        "report.html",
        "README.txt",
    }
    proof = json.loads((bundle / "proof.json").read_text())
    events = json.loads((bundle / "events.json").read_text())
    assert [i["event_id"] for i in proof["inclusion"]] == [e["event_id"] for e in events]
    assert proof["public_key_id"].startswith("ed25519:") and proof["not_yet_checkpointed"] == []
    html = (bundle / "report.html").read_text()
    approval = next(e for e in events if e["type"] == "approval.granted")
    decided = next(e for e in events if e["type"] == "policy.decided")
    for needle in [
        "alice",  # who asked
        "workflow test",  # why
        decided["data"]["rule"],  # which rule
        decided["data"]["policy_version"],  # which policy version
        "member of security",  # who approved with what authority
        approval["data"]["command"]["signature"],  # and the command signature
        "jit-platform-admin",  # what exactly was granted
        "Verified live at the target",  # when it became usable
        "invalid accessor",  # how removal was confirmed
        "Residual window",
    ]:
        assert needle in html, needle

    out = run(
        "evidence",
        "verify-bundle",
        str(bundle),
        "--public-key",
        str(pristine.public_key),
        "--command-key",
        str(pristine.command_key),
        "--json",
    )
    result = json.loads(out)
    assert result["ok"], result
    assert "2 signed command(s) re-verified" in result["notes"]

    # an edited event in the bundle no longer matches its proof (nor its chain)
    events[3]["data"]["comment"] = "approved by the CISO"
    (bundle / "events.json").write_text(json.dumps(events))
    res = runner.invoke(
        app, ["evidence", "verify-bundle", str(bundle), "--public-key", str(pristine.public_key), "--json"]
    )
    assert res.exit_code == 1
    problems = json.loads(res.stdout)["problems"]
    assert any(f"{gid}:4: not included in checkpoint" in p for p in problems)
    assert any(p.startswith("chain:") for p in problems)


def test_a_bundle_with_a_forged_checkpoint_is_refused(pristine, tmp_path):
    gid = pristine.revoked
    run("evidence", "export", gid, "--ledger", pristine.url, "--out", str(tmp_path))
    cp_file = tmp_path / gid / "checkpoint.json"
    cp = json.loads(cp_file.read_text())
    cp["tree_size"] += 1
    cp_file.write_text(json.dumps(cp))
    res = runner.invoke(
        app, ["evidence", "verify-bundle", str(tmp_path / gid), "--public-key", str(pristine.public_key)]
    )
    assert res.exit_code == 1 and "signature does not verify" in res.output


# -- SIEM exports ----------------------------------------------------------------------------------
def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_ocsf_export_validates_against_the_ocsf_schema(pristine):
    schema = json.loads((FIXTURES / "ocsf" / "user_access-1.5.0.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    docs = lines(run("export", "--format", "ocsf", "--ledger", pristine.url))
    assert docs
    for doc in docs:
        errors = sorted(validator.iter_errors(doc), key=str)
        assert not errors, (doc["metadata"]["uid"], [e.message for e in errors[:3]])
        assert doc["type_uid"] == doc["class_uid"] * 100 + doc["activity_id"]
        assert doc["metadata"]["version"] == "1.5.0" and doc["actor"]["user"]["uid"] and doc["user"]["uid"] == "alice"
    by_type = {d["unmapped"]["event_type"]: d for d in docs}
    assert by_type["credential.issued"]["activity_id"] == 1  # Assign Privileges
    assert by_type["revocation.confirmed"]["activity_id"] == 2  # Revoke Privileges
    assert by_type["approval.granted"]["actor"]["user"]["uid"] == "bob"
    assert (
        "secrets-admin" in by_type["approval.granted"]["privileges"]
        or "secrets-readonly" in by_type["approval.granted"]["privileges"]
    )
    assert {d["status"] for d in docs} == {"Success"} and {d["severity_id"] for d in docs} == {1}


def test_cloudevents_export_validates_against_the_cloudevents_schema(pristine):
    schema = json.loads((FIXTURES / "cloudevents" / "cloudevents-1.0.schema.json").read_text())
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    text = run("export", "--format", "cloudevents", "--ledger", pristine.url)
    docs = lines(text)
    for doc in docs:
        assert not list(validator.iter_errors(doc)), doc["id"]
        assert doc["specversion"] == "1.0" and doc["type"].startswith("io.jitaccess.") and doc["subject"]
        event = IdentityEvent.model_validate(doc["data"])
        assert event.computed_hash() == event.hash and event.event_id == doc["id"] and event.at == doc["time"]
    # and the SDK reads them back
    back = JSONFormat().read(None, text.splitlines()[0])
    assert back.get_attributes()["source"] == "urn:jitaccess:identity-events"


def test_jsonl_export_is_the_events_as_stored_and_since_filters(pristine):
    led = Ledger(pristine.url)
    try:
        events = [
            IdentityEvent.model_validate(d) for d in lines(run("export", "--format", "jsonl", "--ledger", pristine.url))
        ]
        chains = {gid: [e for e in events if e.grant_id == gid] for gid in {e.grant_id for e in events}}
        assert all(verify_chain(gid, sorted(evs, key=lambda e: e.seq)).ok for gid, evs in chains.items())
        assert len(events) == latest_checkpoint(led).tree_size
        later = sorted(e.at for e in events)[len(events) // 2]
        since = lines(
            run("export", "--format", "jsonl", "--since", later.replace("Z", "+00:00"), "--ledger", pristine.url)
        )
        assert since and all(d["at"] >= later for d in since) and len(since) < len(events)
    finally:
        led.close()


# -- the checkpointer on Temporal ------------------------------------------------------------------
async def test_the_checkpoint_workflow_signs_and_exports_and_the_schedule_is_created(
    pristine, tmp_path, temporal_server, openbao, catalogue_file, command_keys
):
    settings = make_settings(tmp_path, temporal_server, openbao, catalogue_file, command_keys)
    url = copy_sqlite(pristine.url, tmp_path / "copy.db")
    shutil.copy(pristine.key_file, settings.checkpoint_key_file)
    shutil.copytree(pristine.export_dir, settings.checkpoint_dir)
    settings = settings.model_copy(update={"ledger_url": url, "checkpoint_interval": timedelta(hours=1)})
    async with running_worker(settings) as (client, ledger):
        first = await client.execute_workflow(
            CheckpointWorkflow.run, id=f"checkpoint-{tmp_path.name}", task_queue=settings.task_queue
        )
        assert first["created"] is False and first["checkpoint"]["number"] == 2  # nothing new since #2
        ledger.append([_extra_event()])
        second = await client.execute_workflow(
            CheckpointWorkflow.run, id=f"checkpoint-{tmp_path.name}-2", task_queue=settings.task_queue
        )
        assert second["created"] and second["appended"] == 1 and second["checkpoint"]["number"] == 3
        assert [c.number for c in read_exports(settings.checkpoint_dir)] == [1, 2, 3]
        assert [c.number for c in checkpoints(ledger)] == [1, 2, 3]
        handle = await ensure_checkpoint_schedule(client, settings, schedule_id=f"ckpt-{tmp_path.name}")
        assert handle is not None
        desc = await handle.describe()
        assert [i.every for i in desc.schedule.spec.intervals] == [timedelta(hours=1)]
        await handle.delete()
        assert (
            await ensure_checkpoint_schedule(client, settings.model_copy(update={"checkpoint_key_file": None})) is None
        )


async def test_with_a_background_queue_checkpoints_run_on_the_background_worker(
    pristine, tmp_path, temporal_server, openbao, catalogue_file, command_keys
):
    """Issue 15: a checkpoint hashes every event since the last one (0.56 s at ~8,000, holding up
    the revokes beside it); with JITACCESS_BACKGROUND_TASK_QUEUE its schedule starts it there, and a
    `--role background` worker alone signs and exports it."""
    settings = make_settings(tmp_path, temporal_server, openbao, catalogue_file, command_keys)
    url = copy_sqlite(pristine.url, tmp_path / "copy.db")
    shutil.copy(pristine.key_file, settings.checkpoint_key_file)
    shutil.copytree(pristine.export_dir, settings.checkpoint_dir)
    split = settings.model_copy(
        update={
            "ledger_url": url,
            "checkpoint_interval": timedelta(hours=1),
            "background_task_queue": f"{settings.task_queue}-background",
        }
    )
    async with running_worker(split, role="background") as (client, ledger):
        handle = await ensure_checkpoint_schedule(client, split, schedule_id=f"ckpt-bg-{tmp_path.name}")
        assert handle is not None
        try:
            assert (await handle.describe()).schedule.action.task_queue == split.background_task_queue
        finally:
            await handle.delete()
        ledger.append([_extra_event()])
        made = await client.execute_workflow(
            CheckpointWorkflow.run, id=f"checkpoint-bg-{tmp_path.name}", task_queue=split.background_queue
        )
        assert made["created"] and made["appended"] == 1 and made["checkpoint"]["number"] == 3
        assert [c.number for c in read_exports(split.checkpoint_dir)] == [1, 2, 3]


def _extra_event() -> IdentityEvent:
    from datetime import UTC, datetime

    from jitaccess.domain.events import make_event
    from jitaccess.domain.principals import SYSTEM_ACTOR

    return make_event(
        "delegation-test", None, "delegation.granted", datetime.now(UTC), SYSTEM_ACTOR, {"delegate": "erin"}
    )


def test_cli_checkpoint_creates_a_dev_key_and_signs(tmp_path):
    from jitaccess.ledger.migrate import upgrade

    url = f"sqlite:///{tmp_path}/l.db"
    upgrade(url)
    led = Ledger(url)
    led.append([_extra_event()])
    led.close()
    key = tmp_path / "k" / "checkpoint.key"
    out = run(
        "evidence", "checkpoint", "--ledger", url, "--key-file", str(key), "--create-key", "--dir", str(tmp_path / "cp")
    )
    assert "checkpoint #1: 1 events" in out
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert "nothing new since checkpoint #1" in run("evidence", "checkpoint", "--ledger", url, "--key-file", str(key))
    pub = tmp_path / "k.pub"
    pub.write_text(run("evidence", "public-key", "--key-file", str(key)))
    report = json.loads(
        run(
            "evidence",
            "verify",
            "--all",
            "--ledger",
            url,
            "--public-key",
            str(pub),
            "--json",
            "--checkpoints",
            str(tmp_path / "cp"),
        )
    )
    assert report["ok"] and report["checkpoints"] == 1


def test_the_api_evidence_helpers_use_the_same_verifier(pristine):
    from jitaccess.domain.commands import public_key_text
    from jitaccess.evidence.api import grant_log_proof, ledger_evidence
    from jitaccess.ledger.evidence_log import load_checkpoint_key

    public = public_key_text(load_checkpoint_key(pristine.key_file).public_key())
    settings = pristine.settings.model_copy(update={"checkpoint_key_file": None, "checkpoint_public_keys": [public]})
    led = Ledger(pristine.url)
    try:
        report = ledger_evidence(led, settings)
        assert report["ok"] and report["checkpoints"] == 2 and report["commands_verified"] == 5
        proof = grant_log_proof(led, pristine.revoked)
        assert proof["checkpoint"]["number"] == 2 and proof["not_yet_checkpointed"] == []
        assert len(proof["inclusion"]) == len(led.events(pristine.revoked))
    finally:
        led.close()
