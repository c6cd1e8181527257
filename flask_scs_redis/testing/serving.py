"""Serve a WSGI app with gunicorn on a free port, for tests over real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .server import free_port


@contextmanager
def gunicorn(
    app: str,
    *,
    pythonpath: str,
    env: dict[str, str],
    workers: int = 2,
    threads: int = 1,
    probe: str = "/",
    server_log: Any = None,
) -> Iterator[int]:
    """Serve the WSGI app ``module:callable`` with gunicorn on a free loopback port.

    Yields the port once the server answers ``probe`` (any status will do),
    and terminates it afterwards. ``env`` is added to this process's
    environment; ``server_log`` is a file for gunicorn's error log.
    """
    import http.client

    port = free_port()
    arguments = [
        sys.executable, "-m", "gunicorn",
        "--workers", str(workers), "--threads", str(threads),
        "--bind", f"127.0.0.1:{port}", "--pythonpath", pythonpath, app,
    ]  # fmt: skip
    # The arguments are our own: this interpreter, gunicorn and a named app.
    process = subprocess.Popen(  # noqa: S603
        arguments,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=server_log or subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                connection.request("GET", probe)
                connection.getresponse().read()
                connection.close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn did not start {app}") from None
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)
