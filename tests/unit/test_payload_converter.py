"""The payload converter (jitaccess.workers.converter): the SDK's Pydantic JSON, byte for byte,
with one type-adapter cache per process however many workflow instances the SDK builds it for."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, TypeAdapter
from temporalio.contrib.pydantic import pydantic_data_converter

from jitaccess.workers.converter import PYDANTIC_DATA_CONVERTER


class Sample(BaseModel):
    grant_id: str
    duration: timedelta
    at: datetime
    groups: tuple[str, ...] = ()


def type_adapters() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, TypeAdapter))


def test_payloads_are_the_sdk_pydantic_converters_byte_for_byte() -> None:
    values = [Sample(grant_id="g-1", duration=timedelta(minutes=30), at=datetime(2026, 12, 4, tzinfo=UTC)), None, 7]
    ours = PYDANTIC_DATA_CONVERTER.payload_converter.to_payloads(values)
    sdk = pydantic_data_converter.payload_converter.to_payloads(values)
    assert ours == sdk
    back = PYDANTIC_DATA_CONVERTER.payload_converter.from_payloads(ours, [Sample, type(None), int])
    assert back == values


def test_a_converter_per_workflow_shares_one_adapter_per_type() -> None:
    """The SDK calls payload_converter_class() for every workflow instance: 50 of them decoding
    one type build its TypeAdapter once here, and 50 times with the SDK's own class."""

    class Fresh(BaseModel):  # a type no converter has seen: every cache is cold for it
        n: int

    payload = PYDANTIC_DATA_CONVERTER.payload_converter.to_payloads([Fresh(n=1)])

    def adapters_built_by(data_converter) -> int:
        before = type_adapters()
        converters = [
            data_converter.payload_converter_class() for _ in range(50)
        ]  # held, as cached workflows hold theirs
        assert all(c.from_payloads(payload, [Fresh]) == [Fresh(n=1)] for c in converters)
        return type_adapters() - before

    assert adapters_built_by(PYDANTIC_DATA_CONVERTER) == 1
    assert adapters_built_by(pydantic_data_converter) == 50
