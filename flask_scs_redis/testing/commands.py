"""Count the commands a Redis server ran, to pin down round trips in tests."""

from __future__ import annotations

import os
import time
from types import TracebackType
from typing import Any

import redis

# Commands a client sends on its own when it connects.
_BOOKKEEPING = frozenset({"hello", "client", "auth", "select", "ping"})


class CommandCounter:
    """Count the commands clients send to a server between entering and leaving a block.

    It watches the server with MONITOR, so it sees what was sent, one entry
    per command, pipelined or not. Commands that a Lua script runs are kept
    apart in :attr:`in_scripts`, so an EVALSHA counts once in
    :attr:`by_command`, as the one round trip it is. Connection bookkeeping
    (HELLO, CLIENT SETINFO, SELECT, AUTH, PING) is left out.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        #: Commands sent by clients, by lower-case name.
        self.by_command: dict[str, int] = {}
        #: Commands run inside Lua scripts, by lower-case name.
        self.in_scripts: dict[str, int] = {}
        self._marker = f"command-counter-{os.getpid()}-{id(self)}-{time.monotonic_ns()}"
        self._monitor: Any = None

    @property
    def total(self) -> int:
        """How many commands clients sent in the block."""
        return sum(self.by_command.values())

    def __enter__(self) -> CommandCounter:
        self._monitor = self.client.monitor()  # type: ignore[no-untyped-call]
        self._monitor.__enter__()  # returns once the server confirmed MONITOR
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.client.echo(self._marker)
        try:
            while True:
                entry = self._monitor.next_command()
                if self._marker in entry["command"]:
                    break
                name = entry["command"].split(" ", 1)[0].lower()
                if entry.get("client_type") == "lua":
                    self.in_scripts[name] = self.in_scripts.get(name, 0) + 1
                elif name not in _BOOKKEEPING:
                    self.by_command[name] = self.by_command.get(name, 0) + 1
        finally:
            self._monitor.__exit__(kind, exc, tb)
