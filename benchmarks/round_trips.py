"""What one Redis command costs inside a Flask request, by how it is sent.

A bare Flask view is timed as it is, and sending one command: a GET or an
EVALSHA of this project's read script on a connection the view holds, and
a GET through redis-py's ``client.get`` (its pool, its retry wrapper). The
variants are timed in the same rounds, in process, with this process and
Redis pinned to one CPU where the OS allows it. The difference to bare Flask
is the least a session that sends that command can cost here.

    .venv/bin/python benchmarks/round_trips.py [--rounds 30] [--requests 300]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import redis
from flask import Flask

from flask_scs_redis import codec
from flask_scs_redis.clock import now_ms
from flask_scs_redis.record import Record, pack_record
from flask_scs_redis.scripts import READ
from flask_scs_redis.testing import RedisServer

from bench import call, environ_for
from machine import one_cpu


def view_sending(name: str, send: Callable[[], object]) -> Any:
    """A Flask app whose one view calls ``send``, as its WSGI callable."""
    app = Flask(name)

    @app.get("/")
    def view() -> str:
        send()
        return "ok"

    return app.wsgi_app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--requests", type=int, default=300, help="per variant and round")
    options = parser.parse_args()
    with RedisServer() as server, one_cpu(server.pid) as pinned:
        client = redis.Redis(port=server.port)
        started = now_ms()
        record, _ = pack_record(Record(1, started + 10**9, started, codec.encode({"n": 1})))
        client.set("key", record)
        sha = client.script_load(READ)
        held = client.connection_pool.get_connection()

        def command(*args: object) -> Callable[[], object]:
            return lambda: (held.send_command(*args), held.read_response())

        def read_script() -> object:
            now = now_ms()
            return command("EVALSHA", sha, 1, "key", now, now + 1_800_000)()

        variants = {
            "nothing (bare Flask)": view_sending("bare", lambda: None),
            "one GET, on a connection it holds": view_sending("get", command("GET", "key")),
            "one EVALSHA of the read script, held": view_sending("evalsha", read_script),
            "one GET through redis-py's client.get": view_sending(
                "client", lambda: client.get("key")
            ),
        }
        environ = environ_for("/", None)
        timings: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(options.rounds):
            for name, app in variants.items():
                began = time.perf_counter_ns()
                for _ in range(options.requests):
                    call(app, environ)
                timings[name].append((time.perf_counter_ns() - began) / options.requests / 1000)
    print(f"Pinned: {'yes' if pinned else 'no'}; median µs per request, {options.rounds} rounds")
    bare = statistics.median(timings["nothing (bare Flask)"])
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"  {name:40} {median:7.1f}  (+{median - bare:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
