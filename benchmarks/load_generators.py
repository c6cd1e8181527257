"""Load for the end-to-end runs: ``wrk`` where it is installed, else Python threads.

Each generator loads a server on a loopback port with a list of paths, taken
in turn, all with one session's cookie, and answers requests per second.
The Python one shares the machine's CPUs with the server and runs under the
GIL, so it can run out of breath before the server does, which narrows the
gaps between servers; ``wrk`` is the better measure.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import tempfile
import threading
import time


def first_cookie(port: int) -> str:
    """Start a session over HTTP with one write; return its cookie as a Cookie header value."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/write")
    response = connection.getresponse()
    response.read()
    connection.close()
    return (response.getheader("Set-Cookie") or "").split(";", 1)[0]


def wrk_rate(port: int, cookie: str, paths: list[str], seconds: float) -> float:
    script = (
        "local paths = {" + ",".join(f'"{path}"' for path in paths) + "}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #paths + 1\n"
        f'  return wrk.format("GET", paths[i], {{["Cookie"] = "{cookie}"}})\n'
        "end\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        output = subprocess.run(
            [
                "wrk",
                "-t2",
                "-c16",
                f"-d{seconds:g}s",
                "-s",
                handle.name,
                f"http://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(handle.name)
    line = next(line for line in output.splitlines() if line.startswith("Requests/sec:"))
    return float(line.split()[1])


def python_rate(port: int, cookie: str, paths: list[str], seconds: float) -> float:
    done = [0]
    lock = threading.Lock()
    started = time.monotonic()
    stop = started + seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        sent = 0
        while time.monotonic() < stop:
            connection.request("GET", paths[sent % len(paths)], headers={"Cookie": cookie})
            connection.getresponse().read()
            sent += 1
        with lock:
            done[0] += sent

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done[0] / (time.monotonic() - started)
