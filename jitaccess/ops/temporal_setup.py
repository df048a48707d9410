"""The Temporal namespace's search attributes that GrantWorkflow keeps current, so operators can
ask visibility `Requester='alice' AND GrantState='active'`.

`python -m jitaccess.ops.temporal_setup` registers them (idempotent; the compose file's
`temporal-setup` service runs it, `dev up` and the test server pass them to `start-dev`). A worker
checks them at start (`ensure_search_attributes`) and refuses to run without them: a workflow
upserting an attribute the namespace does not know would fail its tasks until they exist.
On Temporal Cloud register them with `tcld namespace search-attributes add` (docs/operations.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client

from jitaccess.config.settings import ConfigError
from jitaccess.domain.search import SEARCH_ATTRIBUTES

KEYWORD = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
BOOL = IndexedValueType.INDEXED_VALUE_TYPE_BOOL
_TYPES = {"Keyword": KEYWORD, "Bool": BOOL}


async def missing_search_attributes(client: Client, namespace: str) -> dict[str, str]:
    resp = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    have = {**resp.custom_attributes, **resp.system_attributes}
    return {n: k for n, k in SEARCH_ATTRIBUTES.items() if n not in have}


async def register_search_attributes(client: Client, namespace: str) -> list[str]:
    """Add the ones missing; returns their names (empty when all were there)."""
    missing = await missing_search_attributes(client, namespace)
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=namespace, search_attributes={n: _TYPES[k] for n, k in missing.items()}
            )
        )
    return sorted(missing)


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """At worker start: make sure they exist (register them if this identity may), else refuse."""
    try:
        await register_search_attributes(client, namespace)
        return
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
    try:
        missing = await missing_search_attributes(client, namespace)
    except Exception:
        missing = dict(SEARCH_ATTRIBUTES)
    if missing:
        raise ConfigError(
            f"namespace {namespace!r} lacks the search attributes {', '.join(sorted(missing))} and this worker "
            f"could not register them ({error}). Register them (`python -m jitaccess.ops.temporal_setup`, or on "
            "Temporal Cloud `tcld namespace search-attributes add`), or set JITACCESS_SEARCH_ATTRIBUTES=false "
            "on the API and every worker"
        )


async def _main(address: str, namespace: str, attempts: int) -> int:
    for attempt in range(1, attempts + 1):
        try:
            client = await Client.connect(address, namespace=namespace)
            added = await register_search_attributes(client, namespace)
        except Exception as e:
            print(f"temporal_setup: attempt {attempt}/{attempts}: {type(e).__name__}: {e}", file=sys.stderr)
            await asyncio.sleep(3)
            continue
        print(f"temporal_setup: namespace {namespace}: registered {added or 'nothing (all present)'}")
        return 0
    return 1


def main() -> None:
    p = argparse.ArgumentParser(description="Register jitaccess's search attributes in a Temporal namespace")
    p.add_argument("--address", default=os.environ.get("JITACCESS_TEMPORAL_ADDRESS", "127.0.0.1:7233"))
    p.add_argument("--namespace", default=os.environ.get("JITACCESS_TEMPORAL_NAMESPACE", "default"))
    p.add_argument("--attempts", type=int, default=40, help="retries while the server starts (3 s apart)")
    a = p.parse_args()
    code = asyncio.run(_main(a.address, a.namespace, a.attempts))
    sys.stdout.flush()
    os._exit(code)  # sdk-python #300


if __name__ == "__main__":
    main()
