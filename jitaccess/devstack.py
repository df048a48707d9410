"""Moved to jitaccess.dev.servers (the embedded dev stack lives in jitaccess/dev/); this thin
re-export keeps `jitaccess.devstack` importable while other work still names it. Import from
jitaccess.dev.servers in new code."""

from jitaccess.dev.servers import (
    Server,
    StackError,
    binary,
    free_port,
    port_open,
    start_moto,
    start_openbao,
    start_temporal,
)

__all__ = ["Server", "StackError", "binary", "free_port", "port_open", "start_moto", "start_openbao", "start_temporal"]
