"""Benchmarks: this project against its anchors, all in one run on one machine.

Contenders: Flask's signed-cookie sessions (no Redis: the in-process
baseline), Flask-Session 0.8 on Redis, this project's Flask extension, and
this project's WSGI middleware on a bare WSGI app. Each of this project's two
adapters also runs with encryption at rest on, beside the same adapter with it
off, in the read and write scenarios' turns. The in-process runs pin this
process and Redis to one CPU where the OS allows it.

    .venv/bin/python benchmarks/bench.py [--requests 3000] [--json bench-results.json]

It prints a table and writes every number to a JSON file, so that runs can be
compared across commits. Timings are never asserted in tests; the number of
Redis commands per request is, in the test suite.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gc
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from flask import Flask, session
from werkzeug.test import EnvironBuilder

from flask_scs_redis import RedisSessions, RedisStore, SessionAdmin, SessionMiddleware
from flask_scs_redis.record import Record, pack_record, unpack_record
from flask_scs_redis.testing import CommandCounter, RedisServer
from flask_scs_redis.testing.serving import gunicorn

CONTENDERS = ["cookie", "flask-session", "scs", "scs-wsgi"]
SCENARIOS = ["none", "read", "write", "new", "idle-read", "mixed"]
# The fewest Redis round trips each scenario can cost.
FLOOR_ROUND_TRIPS = {"none": 0, "read": 1, "write": 2, "new": 1, "idle-read": 1, "mixed": 1.0}
MIXED = ["/read"] * 60 + ["/none"] * 20 + ["/write"] * 20
# Encryption at rest on: each such contender beside the adapter it encrypts.
ENCRYPTED = {"scs+enc": "scs", "scs-wsgi+enc": "scs-wsgi"}
ENCRYPTED_SCENARIOS = ["read", "write"]
ENCRYPTION_KEY = "benchmark-encryption-key-of-32-bytes-or-more"
WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


def create_app(contender: str, idle: bool = False) -> WSGIApp:
    """The app a contender serves; Redis is at ``BENCH_REDIS_URL``."""
    redis_url = os.environ["BENCH_REDIS_URL"]
    encrypt = contender in ENCRYPTED
    contender, enc = ENCRYPTED.get(contender, contender), "-enc" if encrypt else ""
    if contender == "scs-wsgi":
        store = RedisStore.from_url(redis_url, prefix=f"bench:wsgi{enc}:")
        return SessionMiddleware(
            _bare_app,
            store,
            cookie_persist=False,
            idle_timeout=1800 if idle else None,
            encrypt=encrypt,
            encryption_keys=[ENCRYPTION_KEY] if encrypt else [],
        )
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "benchmark"
    if contender == "flask-session":
        from flask_session import Session as FlaskSession

        app.config.update(
            SESSION_TYPE="redis",
            SESSION_REDIS=redis.Redis.from_url(redis_url),
            SESSION_KEY_PREFIX="bench:fs:",
            SESSION_PERMANENT=False,
        )
        FlaskSession(app)
    elif contender == "scs":
        app.config.update(SCS_REDIS_URL=redis_url, SCS_KEY_PREFIX=f"bench:scs{enc}:")
        if encrypt:
            app.config.update(SCS_ENCRYPT=True, SCS_ENCRYPTION_KEYS=[ENCRYPTION_KEY])
        if idle:
            app.config["SCS_IDLE_TIMEOUT"] = 1800
        RedisSessions(app)

    @app.get("/none")
    def untouched() -> str:
        return "ok"

    @app.get("/read")
    def read() -> str:
        return str(session.get("n"))

    @app.get("/write")
    def write() -> str:
        session["n"] = session.get("n", 0) + 1
        return "ok"

    app.add_url_rule("/idle-read", view_func=read, endpoint="idle-read")
    app.add_url_rule("/new", view_func=write, endpoint="new")
    return app.wsgi_app  # type: ignore[return-value]


def _bare_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    session = environ["scs.session"]
    path = environ["PATH_INFO"]
    if path in ("/write", "/new"):
        session["n"] = session.get("n", 0) + 1
        body = b"ok"
    elif path in ("/read", "/idle-read"):
        body = str(session.get("n")).encode()
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
    _start_response.headers = headers  # type: ignore[attr-defined]
    return None


def call(app: WSGIApp, environ: dict[str, Any]) -> list[tuple[str, str]]:
    """Run one request in process, as a WSGI server would; return the response headers."""
    body = app(dict(environ), _start_response)
    for _ in body:
        pass
    close = getattr(body, "close", None)
    if close is not None:
        close()
    return _start_response.headers  # type: ignore[attr-defined, no-any-return]


def environ_for(path: str, cookie: str | None) -> dict[str, Any]:
    headers = {"Cookie": cookie} if cookie else {}
    return EnvironBuilder(path=path, headers=headers).get_environ()


def session_cookie(app: WSGIApp) -> str:
    """Start a session with one write; return its cookie as a Cookie header value."""
    for name, value in call(app, environ_for("/write", None)):
        if name.lower() == "set-cookie" and value.startswith("session="):
            return value.split(";", 1)[0]
    raise RuntimeError("the app set no session cookie")


def all_sealed(client: redis.Redis, prefix: str) -> bool:
    """Whether there are session records under ``prefix``, and every one holds its values sealed."""
    keys = RedisStore(client, prefix=prefix).keys
    blobs = [client.get(key) for key in client.scan_iter(match=keys.record_pattern)]
    return bool(blobs) and all(isinstance(b, bytes) and unpack_record(b).sealed for b in blobs)


def time_requests(app: WSGIApp, environs: list[dict[str, Any]], count: int) -> list[float]:
    """Microseconds of ``count`` requests, cycling through ``environs``."""
    timings = []
    for number in range(count):
        environ = environs[number % len(environs)]
        started = time.perf_counter_ns()
        call(app, environ)
        timings.append((time.perf_counter_ns() - started) / 1000)
    return timings


def interleaved(
    runs: dict[str, tuple[WSGIApp, list[dict[str, Any]]]], count: int, rounds: int = 10
) -> dict[str, list[float]]:
    """Time every run in turns, so that drift in the machine's speed hits all alike."""
    for app, environs in runs.values():
        for environ in environs[:50] * 4:  # warm up
            call(app, environ)
    timings: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    gc.collect()
    for round_number in range(rounds):
        turn = names[round_number % len(names) :] + names[: round_number % len(names)]
        for name in turn:
            app, environs = runs[name]
            timings[name] += time_requests(app, environs, count // rounds)
    return timings


def summary(timings: list[float]) -> dict[str, float]:
    ordered = sorted(timings)
    return {
        "median_us": round(statistics.median(ordered), 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99) - 1], 1),
    }


def commands_per_request(
    client: redis.Redis, app: WSGIApp, environs: list[dict[str, Any]]
) -> float:
    with CommandCounter(client) as counted:
        for environ in environs:
            call(app, environ)
    return round(counted.total / len(environs), 2)


def scenario_environs(scenario: str, cookie: str) -> list[dict[str, Any]]:
    if scenario == "new":
        return [environ_for("/new", None)]
    if scenario == "mixed":
        paths = list(MIXED)
        random.Random(7).shuffle(paths)
        return [environ_for(path, cookie) for path in paths]
    return [environ_for(f"/{scenario}", cookie)]


def in_process(client: redis.Redis, requests: int) -> dict[str, Any]:
    names = CONTENDERS + list(ENCRYPTED)
    apps = {c: (create_app(c), create_app(c, idle=True)) for c in names}
    cookies = {c: session_cookie(apps[c][0]) for c in names}
    for prefix in ("bench:scs-enc:", "bench:wsgi-enc:"):
        assert all_sealed(client, prefix), f"encryption at rest is not on under {prefix}"
    results: dict[str, Any] = {c: {} for c in names}
    results["redis-get"] = {}
    client.set("bench:rtt", b"x" * 100)

    def one_get(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        client.get("bench:rtt")
        return []

    for scenario in SCENARIOS:
        timed = names if scenario in ENCRYPTED_SCENARIOS else CONTENDERS
        runs = {
            c: (
                apps[c][1 if scenario == "idle-read" else 0],
                scenario_environs(scenario, cookies[c]),
            )
            for c in timed
        }
        # The floor's unit, a redis-py GET, timed in the same turns as the contenders:
        # a GET alone in a tight loop runs faster than one amid a request.
        runs["redis-get"] = (one_get, [{}])
        for contender, timings in interleaved(runs, requests).items():
            app, environs = runs[contender]
            entry = summary(timings)
            if contender != "redis-get":
                sample = environs if scenario == "mixed" else environs * 20
                entry["commands"] = commands_per_request(client, app, sample)
            results[contender][scenario] = entry
    return results


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    scs = results["scs"]
    table: dict[str, Any] = {}
    for scenario in SCENARIOS:
        round_trip = results["redis-get"][scenario]["median_us"]
        floor = results["cookie"][scenario]["median_us"] + FLOOR_ROUND_TRIPS[scenario] * round_trip
        mine = scs[scenario]["median_us"]
        table[scenario] = {
            "redis_get_us": round_trip,
            "floor_us": round(floor, 1),
            "scs_vs_floor": round(mine / floor, 2),
            "scs_vs_cookie": round(mine / results["cookie"][scenario]["median_us"], 2),
            "flask_session_over_scs": round(
                results["flask-session"][scenario]["median_us"] / mine, 2
            ),
            "scs_wsgi_vs_floor": round(results["scs-wsgi"][scenario]["median_us"] / floor, 2),
        }
    return table


def encryption_ratios(results: dict[str, Any]) -> dict[str, Any]:
    """Each adapter with encryption at rest on over the same adapter with it off."""
    table: dict[str, Any] = {}
    for encrypted, adapter in ENCRYPTED.items():
        table[adapter] = {}
        for scenario in ENCRYPTED_SCENARIOS:
            off, on = results[adapter][scenario], results[encrypted][scenario]
            table[adapter][scenario] = {
                "off_us": off["median_us"],
                "on_us": on["median_us"],
                "on_over_off": round(on["median_us"] / off["median_us"], 2),
                "added_us": round(on["median_us"] - off["median_us"], 1),
            }
    return table


def end_to_end(redis_url: str, seconds: int) -> dict[str, Any]:
    """Requests per second for the mixed scenario, served by gunicorn with 2 workers."""
    results = {}
    for contender in CONTENDERS:
        with gunicorn(
            f"bench:create_app('{contender}')",
            pythonpath=str(Path(__file__).parent),
            env={"BENCH_REDIS_URL": redis_url},
            probe="/none",
        ) as port:
            import http.client

            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", "/write")
            response = connection.getresponse()
            response.read()
            cookie = (response.getheader("Set-Cookie") or "").split(";", 1)[0]
            connection.close()
            paths = list(MIXED)
            random.Random(7).shuffle(paths)
            if shutil.which("wrk"):
                rate, tool = _wrk(port, cookie, paths, seconds), "wrk"
            else:
                rate, tool = _python_load(port, cookie, paths, seconds), "python"
            results[contender] = {"requests_per_second": round(rate), "load_generator": tool}
    return results


def _wrk(port: int, cookie: str, paths: list[str], seconds: int) -> float:
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
            ["wrk", "-t2", "-c16", f"-d{seconds}s", "-s", handle.name, f"http://127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(handle.name)
    line = next(line for line in output.splitlines() if line.startswith("Requests/sec:"))
    return float(line.split()[1])


def _python_load(port: int, cookie: str, paths: list[str], seconds: int) -> float:
    import http.client

    done = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

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
    return done[0] / seconds


def fill(client: redis.Redis, prefix: str, count: int, start: int = 0) -> None:
    """Store ``count`` real session records under ``prefix``, pipelined."""
    deadline = int(time.time() * 1000) + 3_600_000
    blob, _ = pack_record(Record(1, deadline, 0, b"\x82\xa8_user_id\xa1u\xa1n\x01"))
    for first in range(start, start + count, 10_000):
        pipe = client.pipeline(transaction=False)
        for number in range(first, min(first + 10_000, start + count)):
            digest = hashlib.sha256(str(number).encode()).digest()
            pipe.set(prefix + base64.urlsafe_b64encode(digest).rstrip(b"=").decode(), blob)
        pipe.execute()


def scale(client: redis.Redis, requests: int, largest: int) -> dict[str, Any]:
    """Per-request cost as the store grows, and the time to count and iterate 100,000."""
    app = create_app("scs")
    cookie = session_cookie(app)
    read = [environ_for("/read", cookie)]
    results: dict[str, Any] = {}
    stored = 0
    for size in (1_000, largest):
        fill(client, "bench:scs:", size - stored, start=stored)
        stored = size
        timings = interleaved({"scs": (app, read)}, requests)["scs"]
        results[f"read_with_{size}_sessions"] = summary(timings)
    # A database of their own, so that SCAN walks these 100,000 and not the million too.
    iterate_client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"].rsplit("/", 1)[0] + "/1")
    prefix = "bench:iterate:"
    fill(iterate_client, prefix, 100_000)
    admin = SessionAdmin(RedisStore(iterate_client, prefix=prefix))
    started = time.perf_counter()
    counted = admin.count()
    results["count_100000_seconds"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    iterated = sum(1 for _ in admin.iter_sessions())
    results["iterate_100000_seconds"] = round(time.perf_counter() - started, 2)
    assert counted == iterated == 100_000, (counted, iterated)
    return results


def print_table(report: dict[str, Any]) -> None:
    results, table = report["in_process"], report["ratios"]
    pinned = "; this process and Redis on one CPU" if report.get("pinned_to_one_cpu") else ""
    print(
        f"\nIn process (app.wsgi_app called directly), {report['requests']} requests each{pinned}"
    )
    header = f"{'scenario':<10}" + "".join(f"{c:>22}" for c in CONTENDERS)
    print(header + f"{'GET':>7}{'floor':>8}{'scs/floor':>11}{'fs/scs':>8}")
    for scenario in SCENARIOS:
        cells = "".join(_cell(results[c][scenario]) for c in CONTENDERS)
        ratio = table[scenario]
        print(
            f"{scenario:<10}{cells}{ratio['redis_get_us']:>7.0f}{ratio['floor_us']:>8.0f}"
            f"{ratio['scs_vs_floor']:>10.2f}x"
            f"{ratio['flask_session_over_scs']:>7.2f}x"
        )
    print("(each cell: median µs, p99 µs, Redis commands per request; GET: one redis-py GET,")
    print(" timed in the same turns; floor: the cookie baseline plus the fewest GETs)")
    print("\nEncryption at rest, on beside off, timed in the same turns as the cells above:")
    print(f"{'adapter':<10}{'scenario':<10}{'off':>22}{'on':>22}{'on/off':>8}{'added':>10}")
    for encrypted, adapter in ENCRYPTED.items():
        for scenario in ENCRYPTED_SCENARIOS:
            cells = "".join(_cell(results[c][scenario]) for c in (adapter, encrypted))
            ratio = report["encryption"][adapter][scenario]
            print(
                f"{adapter:<10}{scenario:<10}{cells}{ratio['on_over_off']:>7.2f}x"
                f"{ratio['added_us']:>7.1f} µs"
            )
    print("\nEnd to end, mixed, gunicorn with 2 workers:")
    for contender, entry in report["end_to_end"].items():
        print(
            f"  {contender:<14}{entry['requests_per_second']:>8} req/s ({entry['load_generator']})"
        )
    print("\nScale:")
    for name, value in report["scale"].items():
        print(f"  {name:<28}{value}")


def _cell(entry: dict[str, Any]) -> str:
    """A table cell: median µs, p99 µs, Redis commands per request."""
    return f"{entry['median_us']:>9.1f} µs {entry['p99_us']:>5.0f} {entry['commands']:>4g}c"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=3000, help="timed requests per cell")
    parser.add_argument("--seconds", type=int, default=5, help="of load per end-to-end run")
    parser.add_argument("--largest", type=int, default=1_000_000, help="sessions for the scale run")
    parser.add_argument("--json", default="bench-results.json", help="where to write the numbers")
    arguments = parser.parse_args()
    # Always a throwaway server of our own: the scale run stores a million sessions.
    with RedisServer() as server:
        redis_url = server.url
        os.environ["BENCH_REDIS_URL"] = redis_url
        client = redis.Redis.from_url(redis_url)
        report: dict[str, Any] = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "commit": _commit(),
            "python": platform.python_version(),
            "redis": client.info("server")["redis_version"],
            "hiredis": _has_hiredis(),
            "cpus": os.cpu_count(),
            "requests": arguments.requests,
        }
        with one_cpu(server.pid) as pinned:
            report["pinned_to_one_cpu"] = pinned
            report["in_process"] = in_process(client, arguments.requests)
            report["ratios"] = ratios(report["in_process"])
            report["encryption"] = encryption_ratios(report["in_process"])
            report["scale"] = scale(client, arguments.requests, arguments.largest)
        report["end_to_end"] = end_to_end(redis_url, arguments.seconds)
    print_table(report)
    Path(arguments.json).write_text(json.dumps(report, indent=2))
    print(f"\nwrote {arguments.json}")
    return 0


@contextmanager
def one_cpu(redis_pid: int | None) -> Iterator[bool]:
    """Pin this process and Redis to one CPU, and yield whether that could be done.

    A round trip between two CPUs adds a wake-up of the other CPU at random
    (some 45 µs on the 2-core development machine); on one CPU every round
    trip pays the same. The end-to-end runs, with their several workers, are
    not pinned.
    """
    if not hasattr(os, "sched_setaffinity") or redis_pid is None:
        yield False
        return
    mine, theirs = os.sched_getaffinity(0), os.sched_getaffinity(redis_pid)
    cpu = {min(mine & theirs or mine)}
    try:
        os.sched_setaffinity(0, cpu)
        os.sched_setaffinity(redis_pid, cpu)
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        os.sched_setaffinity(0, mine)
        with contextlib.suppress(OSError):  # Redis may be gone already
            os.sched_setaffinity(redis_pid, theirs)


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True, cwd=Path(__file__).parent,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _has_hiredis() -> bool:
    try:
        import hiredis  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
