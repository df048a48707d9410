"""Property-based API fuzzing (issue 8): schemathesis generates valid and invalid requests from the
OpenAPI document for every operation and sends them to the real API (uvicorn + a real worker,
Temporal and OpenBao), authenticated as dev users. Every response must be < 500 and documented
in the OpenAPI (status code, content type, and the documented body schema — the error model for
every 4xx). Bounded: a fixed number of examples per operation, mode and user, no shrinking."""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 12  # per operation, generation mode and user
USERS = ("alice", "carol")  # a requester, and an approver who may delegate and run reconciliation
ONBOARDING = {  # production: it waits for approval, so nothing is issued
    "template": "batch-job",
    "reason": "fuzz target",
    "workload": {
        "service": "fuzz-target",
        "owning_team": "platform-leads",
        "environment": "production",
        "repository": "git@example.com:fuzz.git",
    },
}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass
class Tally:
    cases: int = 0
    statuses: collections.Counter = field(default_factory=collections.Counter)
    server_errors: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def fuzz(base: str, tokens: dict[str, str], real_ids: dict[str, list[str]]) -> Tally:
    """Every operation, as each user, in both modes; operations on a grant or onboarding also with
    its path parameter fixed to real objects (pending, active), so the fuzzed bodies reach the
    workflow's validators and not only the 404 of an unknown ID."""
    spec = requests.get(f"{base}/openapi.json", timeout=30).json()
    # depth, not breadth: random strings are never a catalogue id, so valid requests name real ones
    # (negative mode still sends every other kind of value)
    catalogue = requests.get(f"{base}/v1/catalog", headers=_auth(tokens, "alice"), timeout=30).json()
    props = spec["components"]["schemas"]
    props["GrantRequestBody"]["properties"]["entitlement"] = {
        "type": "string",
        "enum": [e["id"] for e in catalogue["entitlements"]],
    }
    props["GrantRequestBody"]["properties"]["reason"]["minLength"] = 1
    props["GrantRequestBody"]["required"] = ["entitlement", "reason"]
    props["WorkloadContext"]["properties"]["environment"] = {"type": "string", "enum": ["staging", "production"]}
    props["DelegationBody"]["properties"]["delegate"] = {"type": "string", "enum": sorted(tokens)}
    props["OnboardingRequest"]["properties"]["template"] = {"type": "string", "enum": ["batch-job", "payments-api"]}
    schema = schemathesis.openapi.from_dict(spec)
    tally = Tally()
    session = requests.Session()
    for result in schema.get_all_operations():
        op = result.ok()
        params = [p["name"] for p in op.definition.raw.get("parameters", []) if p["in"] == "path"]
        fixed: list[dict[str, str] | None] = [None]
        for name in params:
            fixed += [{name: i} for i in real_ids.get(name, [])]
        for path_parameters in fixed:
            for user in USERS:
                for mode in GenerationMode:
                    _fuzz_one(base, session, op, user, _auth(tokens, user), mode, tally, path_parameters)
    return tally


def _auth(tokens: dict[str, str], user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[user]}"}


def _fuzz_one(base, session, op, user, headers, mode: GenerationMode, tally: Tally, path_parameters=None) -> None:
    @hsettings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,  # the same cases every run: a failure is reproducible
        phases=[Phase.explicit, Phase.generate],  # no shrinking: every failure is recorded as found
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def run(case) -> None:
        tally.cases += 1
        response = case.call(base_url=base, session=session, headers=headers, timeout=60)
        tally.statuses[response.status_code] += 1
        what = f"{user} {mode.value} {case.method} {case.formatted_path} -> {response.status_code}"
        if response.status_code >= 500:
            tally.server_errors.append(f"{what}: {response.text[:300]}")
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Exception, BaseExceptionGroup) as e:  # a check failed: keep going, report them all at the end
            tally.failures.append(f"{what}: {str(e)[:600]}")

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (an operation without parameters or body)
        assert mode is GenerationMode.NEGATIVE, op.label


async def test_fuzz_the_api_no_server_errors_every_status_documented(api):
    async def grant(entitlement: str, state: str) -> str:
        body = {"entitlement": entitlement, "duration": "PT10M", "reason": "fuzz target"}
        r = await api.call("alice", "POST", "/v1/grants", json=body)
        assert r.status_code == 202, r.text
        await api.wait_state("alice", r.json()["grant_id"], state)
        return r.json()["grant_id"]

    pending = await grant("secrets-admin", "awaiting_approval")  # carol may approve/deny it
    active = await grant("secrets-readonly", "active")  # alice may extend/revoke it, fetch its credential
    r = await api.call("deploy-bot", "POST", "/v1/onboardings", json=ONBOARDING)
    assert r.status_code == 202, r.text
    real_ids = {"grant_id": [pending, active], "oid": [r.json()["onboarding_id"]]}

    started = time.monotonic()
    tally = await asyncio.to_thread(fuzz, api.base, api.tokens, real_ids)
    took = time.monotonic() - started
    print(
        f"\nschemathesis: {tally.cases} cases in {took:.0f}s, statuses {dict(sorted(tally.statuses.items()))}, "
        f"5xx: {len(tally.server_errors)}, check failures: {len(tally.failures)}"
    )
    assert tally.cases >= 1000
    assert not tally.server_errors, "\n".join(tally.server_errors[:20])
    assert not tally.failures, "\n".join(tally.failures[:20])
