"""`dev up` starting Temporal when a port it chose is taken before Temporal binds it (a race seen in
the bench): the start is tried again on ports chosen afresh, and a failure of another kind is not."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from jitaccess import devup
from jitaccess.dev.servers import StackError, free_port, port_open


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_a_port_taken_meanwhile_is_chosen_again(tmp_path: Path, taken_port: int, monkeypatch) -> None:
    chosen: list[int] = []

    def port(preferred: int, random_ports: bool) -> int:
        # the first UI port handed out is already taken, as if someone bound it after the check
        p = taken_port if preferred == 8233 and taken_port not in chosen else free_port()
        chosen.append(p)
        return p

    monkeypatch.setattr(devup, "_port", port)
    server = devup.start_dev_temporal(tmp_path, random_ports=True)
    try:
        assert len(chosen) == 4  # two attempts, a frontend and a UI port each
        assert chosen[1] == taken_port  # the first attempt's UI port: the one that failed it
        assert server.address == f"127.0.0.1:{chosen[2]}"  # the second attempt's frontend port
        assert port_open("127.0.0.1", chosen[2])
    finally:
        server.stop()


def test_other_failures_are_not_retried(tmp_path: Path, monkeypatch) -> None:
    calls: list[int] = []

    def failing(*args: object, **kwargs: object) -> None:
        calls.append(1)
        raise StackError("temporal exited with code 1:\nunrecognized pragma")

    monkeypatch.setattr(devup, "start_temporal", failing)
    with pytest.raises(StackError, match="pragma"):
        devup.start_dev_temporal(tmp_path, random_ports=True)
    assert calls == [1]
