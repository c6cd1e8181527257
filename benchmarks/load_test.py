"""Load test: many clients, a few shared sessions, and not one lost update.

Runs a real multi-process server (gunicorn, 2 workers with threads) on a
throwaway Redis (or ``SCS_REDIS_URL``). Every request adds a key of its own to
one of a few shared sessions, so requests of one session overlap all the time.
Afterwards every key must be in its session, and no response may be a 5xx.

    .venv/bin/python benchmarks/load_test.py [--clients 32] [--requests 50]
        [--sessions 4] [--adapter flask|wsgi]

Exit status 0 means no key was lost and no request failed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from flask import Flask, session
from werkzeug.wrappers import Request, Response

from flask_scs_redis import RedisSessions, RedisStore, SessionMiddleware
from flask_scs_redis.testing import RedisServer
from flask_scs_redis.testing.serving import gunicorn


def create_app(adapter: str = "flask") -> Any:
    """The app under load: ``/add/<key>`` adds a key, ``/keys`` lists them (``SCS_REDIS_URL``)."""
    redis_url = os.environ["SCS_REDIS_URL"]
    if adapter == "flask":
        app = Flask(__name__)
        app.config["SCS_REDIS_URL"] = redis_url
        RedisSessions(app)

        @app.get("/add/<key>")
        def add(key: str) -> str:
            session[key] = True
            return "ok"

        @app.get("/keys")
        def keys() -> str:
            return json.dumps(sorted(session.keys()))

        return app

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        values = environ["scs.session"]
        if request.path.startswith("/add/"):
            values[request.path.removeprefix("/add/")] = True
            response = Response("ok")
        else:
            response = Response(json.dumps(sorted(values.keys())))
        return response(environ, start_response)

    return SessionMiddleware(wsgi_app, RedisStore.from_url(redis_url), cookie_persist=False)


@dataclass
class Report:
    """What one run did."""

    adapter: str
    requests_sent: int
    server_errors: int
    other_errors: int
    keys_expected: int
    keys_lost: int
    seconds: float

    @property
    def requests_per_second(self) -> float:
        return self.requests_sent / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> bool:
        return self.keys_lost == 0 and self.server_errors == 0 and self.other_errors == 0


@contextmanager
def serve(redis_url: str, adapter: str, *, server_log: Any = None) -> Iterator[int]:
    """Serve :func:`create_app` with gunicorn, 2 workers of 8 threads; yield the port."""
    with gunicorn(
        f"load_test:create_app('{adapter}')",
        pythonpath=str(Path(__file__).parent),
        env={"SCS_REDIS_URL": redis_url},
        threads=8,
        probe="/keys",
        server_log=server_log,
    ) as port:
        yield port


def _get(
    connection: http.client.HTTPConnection, path: str, token: str | None
) -> tuple[int, str, str | None]:
    """GET ``path`` with the session cookie; return the status, body and any new token."""
    connection.request("GET", path, headers={"Cookie": f"session={token}"} if token else {})
    response = connection.getresponse()
    body = response.read().decode()
    cookie = response.getheader("Set-Cookie")
    new_token = cookie.split(";", 1)[0].removeprefix("session=") if cookie else None
    return response.status, body, new_token


def load(port: int, *, clients: int, requests: int, sessions: int, adapter: str) -> Report:
    """Send ``clients`` x ``requests`` requests over ``sessions`` shared sessions."""
    setup = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    tokens = []
    for number in range(sessions):
        status, _, token = _get(setup, f"/add/start-{number}", None)
        assert status == 200, status
        tokens.append(token)
    setup.close()
    expected: list[set[str]] = [{f"start-{number}"} for number in range(sessions)]
    counts = {"sent": 0, "server_errors": 0, "other_errors": 0}
    lock = threading.Lock()

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for request in range(requests):
            which = (number + request) % sessions
            key = f"k{number}-{request}"
            with lock:
                expected[which].add(key)
                counts["sent"] += 1
            try:
                status, _, _ = _get(connection, f"/add/{key}", tokens[which])
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                with lock:
                    counts["other_errors"] += 1
                continue
            if status >= 500:
                with lock:
                    counts["server_errors"] += 1
        connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(number,)) for number in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started

    lost = 0
    check = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for token, keys in zip(tokens, expected):
        status, body, _ = _get(check, "/keys", token)
        stored = set(json.loads(body)) if status == 200 else set()
        lost += len(keys - stored)
    check.close()
    return Report(
        adapter=adapter,
        requests_sent=counts["sent"],
        server_errors=counts["server_errors"],
        other_errors=counts["other_errors"],
        keys_expected=sum(len(keys) for keys in expected),
        keys_lost=lost,
        seconds=round(seconds, 2),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=50, help="per client")
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--adapter", choices=["flask", "wsgi", "both"], default="both")
    parser.add_argument("--server-log", type=argparse.FileType("a"), help="gunicorn's error log")
    arguments = parser.parse_args()
    adapters = ["flask", "wsgi"] if arguments.adapter == "both" else [arguments.adapter]
    reports = []
    with ExitStack() as stack:
        redis_url = os.environ.get("SCS_REDIS_URL") or stack.enter_context(RedisServer()).url
        for adapter in adapters:
            with serve(redis_url, adapter, server_log=arguments.server_log) as port:
                reports.append(
                    load(
                        port,
                        clients=arguments.clients,
                        requests=arguments.requests,
                        sessions=arguments.sessions,
                        adapter=adapter,
                    )
                )
    for report in reports:
        print(
            f"{report.adapter:>5}: {report.requests_sent} requests in {report.seconds} s"
            f" ({report.requests_per_second:.0f}/s) over {arguments.sessions} shared sessions;"
            f" keys lost: {report.keys_lost} of {report.keys_expected};"
            f" 5xx: {report.server_errors}; other errors: {report.other_errors}"
        )
        print(json.dumps({**asdict(report), "ok": report.ok}))
    return 0 if all(report.ok for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
