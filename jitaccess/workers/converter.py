"""The payload converter: Pydantic v2 JSON, as the SDK's `pydantic_data_converter` writes it, with
one type-adapter cache per process instead of one per workflow.

The SDK builds a payload converter for every workflow instance it runs (`payload_converter_class()`),
and `PydanticPayloadConverter` keeps its TypeAdapter cache in the instance. So every grant built
`TypeAdapter(GrantInput)` and the other adapters its payloads need (a validator and a serializer
each) anew on its first task, and held them for as long as it stayed cached: CPU on every start and
cache miss, and heap that every full collection walks (bench/README.md, issue 15). Every instance
here shares one JSON converter: it holds no per-workflow state, and its adapter cache is a
thread-safe `functools.lru_cache`."""

from __future__ import annotations

from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)

_SHARED_JSON = PydanticJSONPlainPayloadConverter()


class SharedPydanticPayloadConverter(CompositePayloadConverter):
    """The SDK's default encodings, JSON through Pydantic (the process's one shared converter)."""

    def __init__(self) -> None:
        super().__init__(
            *(
                _SHARED_JSON if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


PYDANTIC_DATA_CONVERTER = DataConverter(payload_converter_class=SharedPydanticPayloadConverter)
"""What every jitaccess client and worker converts payloads with (bootstrap.data_converter adds the codec)."""
