"""Benchmarks: this project against its anchors and its floor, in one run on one machine.

Contenders:

- ``bare``: a Flask app serving the same routes with no session at all;
- ``floor``: that bare app sending, inside each request, the very Redis
  commands this project's Flask extension sends for it, on a plain redis-py
  client (see ``floor.py``): the least a Redis-backed session costs here;
- ``cookie``: Flask's signed-cookie sessions (no Redis);
- ``flask-session``: Flask-Session 0.8 on Redis;
- ``scs``: this project's Flask extension, and ``scs-wsgi``: its WSGI
  middleware on a bare WSGI app. Each also runs with encryption at rest on
  (``scs+enc``, ``scs-wsgi+enc``) in the read and write scenarios.

Scenarios: ``none`` (the session is not touched), ``read``,
``read-permanent`` (a read of a permanent session, whose cookie is sent
again), ``write``, ``new`` (a write without a cookie), ``idle-read`` (a read
with an idle timeout) and ``mixed`` (60 % read, 20 % none, 20 % write).

In process, each request calls the app's WSGI callable directly, and every
cell (a contender in a scenario) is timed in the same thirty short rounds,
each round taking the cells in a fresh order, so that the machine's drift,
and other work on it, hits all alike. This process and Redis run pinned to
one CPU where the OS allows it (``--no-pin`` to not). End to end, each
contender is served by gunicorn with 2 workers and loaded with the mixed
scenario by ``wrk`` if it is on PATH, else by a Python load generator, in
one-second rounds taken in turns; these runs are never pinned. The scale
runs time a read with 1,000 and with ``--largest`` sessions stored, and
counting and iterating 100,000.

    .venv/bin/python benchmarks/bench.py [--requests 3000] [--seconds 5]
        [--largest 1000000] [--pin | --no-pin] [--json bench-results.json]

It prints the machine, the versions, every cell's median and p99 and Redis
commands per request, the ratios to the floor and to Flask-Session, and the
performance targets of issue 17, each MET or NOT MET; and it writes all of
it to a JSON file, so that runs can be compared across commits. Timings are
never asserted in tests; the Redis commands per request are, in the test
suite, as is that the floor sends the very commands ``scs`` sends.
"""

from __future__ import annotations

import argparse
import base64
import gc
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Hashable, Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import redis
from flask import Flask, session
from werkzeug.test import EnvironBuilder

from flask_scs_redis import RedisSessions, RedisStore, SessionAdmin, SessionMiddleware
from flask_scs_redis.record import Record, pack_record, unpack_record
from flask_scs_redis.testing import CommandCounter, RedisServer
from flask_scs_redis.testing.serving import gunicorn

from floor import create_bare_app, create_floor_app
from load_generators import first_cookie, python_rate, wrk_rate
from machine import describe_machine, one_cpu, versions

CONTENDERS = ["bare", "floor", "cookie", "flask-session", "scs", "scs-wsgi"]
SCENARIOS = ["none", "read", "read-permanent", "write", "new", "idle-read", "mixed"]
# The scenarios served by an app of their own: with an idle timeout, or permanent sessions.
VARIANTS = {"idle-read": "idle", "read-permanent": "permanent"}
MIXED = ["/read"] * 60 + ["/none"] * 20 + ["/write"] * 20
# Many short rounds: a burst of other work on the machine then spans whole rounds.
ROUNDS = 30
# Encryption at rest on: each such contender beside the adapter it encrypts.
ENCRYPTED = {"scs+enc": "scs", "scs-wsgi+enc": "scs-wsgi"}
ENCRYPTED_SCENARIOS = ["read", "write"]
ENCRYPTION_KEY = "benchmark-encryption-key-of-32-bytes-or-more"
WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]
Name = TypeVar("Name", bound=Hashable)


def create_app(
    contender: str, idle: bool = False, permanent: bool = False, redis_url: str | None = None
) -> WSGIApp:
    """The app a contender serves, on Redis at ``redis_url``, else at ``BENCH_REDIS_URL``.

    ``idle`` gives its sessions an idle timeout, ``permanent`` makes them
    permanent (a persistent cookie, sent again on every request that reads it).
    """
    redis_url = redis_url or os.environ["BENCH_REDIS_URL"]
    if contender == "bare":
        return create_bare_app().wsgi_app
    if contender == "floor":
        return create_floor_app(redis_url, idle=idle, permanent=permanent).wsgi_app
    encrypt = contender in ENCRYPTED
    contender, enc = ENCRYPTED.get(contender, contender), "-enc" if encrypt else ""
    if contender == "scs-wsgi":
        store = RedisStore.from_url(redis_url, prefix=f"bench:wsgi{enc}:")
        return SessionMiddleware(
            _bare_app,
            store,
            cookie_persist=permanent,
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
            SESSION_PERMANENT=permanent,
        )
        FlaskSession(app)
    elif contender == "scs":
        app.config.update(
            SCS_REDIS_URL=redis_url, SCS_KEY_PREFIX=f"bench:scs{enc}:", SCS_PERMANENT=permanent
        )
        if encrypt:
            app.config.update(SCS_ENCRYPT=True, SCS_ENCRYPTION_KEYS=[ENCRYPTION_KEY])
        if idle:
            app.config["SCS_IDLE_TIMEOUT"] = 1800
        RedisSessions(app)
    # Flask's cookie sessions have no such setting: the write that starts one makes it permanent.
    make_permanent = permanent and contender == "cookie"

    @app.get("/none")
    def untouched() -> str:
        return "ok"

    @app.get("/read")
    def read() -> str:
        return str(session.get("n"))

    @app.get("/write")
    def write() -> str:
        session["n"] = session.get("n", 0) + 1
        if make_permanent:
            session.permanent = True
        return "ok"

    app.add_url_rule("/read-permanent", view_func=read, endpoint="read-permanent")
    app.add_url_rule("/idle-read", view_func=read, endpoint="idle-read")
    app.add_url_rule("/new", view_func=write, endpoint="new")
    return app.wsgi_app  # type: ignore[return-value]


def _bare_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    session = environ["scs.session"]
    path = environ["PATH_INFO"]
    if path in ("/write", "/new"):
        session["n"] = session.get("n", 0) + 1
        body = b"ok"
    elif path in ("/read", "/read-permanent", "/idle-read"):
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


def time_requests(
    app: WSGIApp, environs: list[dict[str, Any]], count: int, start: int = 0
) -> list[float]:
    """Microseconds of ``count`` requests, cycling through ``environs`` from ``start``."""
    timings = []
    for number in range(start, start + count):
        environ = environs[number % len(environs)]
        started = time.perf_counter_ns()
        call(app, environ)
        timings.append((time.perf_counter_ns() - started) / 1000)
    return timings


def in_turn(names: list[Name], round_number: int) -> list[Name]:
    """``names`` in round ``round_number``'s order: shuffled afresh, but alike in every run."""
    order = list(names)
    random.Random(round_number).shuffle(order)
    return order


def interleaved(
    runs: dict[Name, tuple[WSGIApp, list[dict[str, Any]]]], count: int, rounds: int = ROUNDS
) -> dict[Name, list[float]]:
    """Time every run in turns, so that drift in the machine's speed hits all alike.

    Each run is timed for ``count`` requests, ``count / rounds`` in each round
    (with fewer requests than rounds, one a round).
    """
    rounds = min(rounds, count)
    for app, environs in runs.values():
        time_requests(app, environs, max(min(200, count), len(environs)))  # warm up
    timings: dict[Name, list[float]] = {name: [] for name in runs}
    gc.collect()
    for round_number in range(rounds):
        for name in in_turn(list(runs), round_number):
            app, environs = runs[name]
            # Each round takes the mixed scenario's paths up where the last left them.
            timings[name] += time_requests(app, environs, count // rounds, len(timings[name]))
    return timings


def summary(timings: list[float]) -> dict[str, float]:
    ordered = sorted(timings)
    return {
        "median_us": round(statistics.median(ordered), 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99) - 1], 1),
    }


def commands_per_request(
    client: redis.Redis, app: WSGIApp, environs: list[dict[str, Any]]
) -> dict[str, Any]:
    """The Redis commands sent per request, in all and by name, and those run by scripts."""
    with CommandCounter(client) as counted:
        for environ in environs:
            call(app, environ)

    def per_request(counts: dict[str, int]) -> dict[str, float]:
        return {name: round(count / len(environs), 2) for name, count in sorted(counts.items())}

    return {
        "commands": round(counted.total / len(environs), 2),
        "sent": per_request(counted.by_command),
        "in_scripts": per_request(counted.in_scripts),
    }


def scenario_environs(scenario: str, cookie: str) -> list[dict[str, Any]]:
    if scenario == "new":
        return [environ_for("/new", None)]
    if scenario == "mixed":
        return [environ_for(path, cookie) for path in mixed_paths()]
    return [environ_for(f"/{scenario}", cookie)]


def mixed_paths() -> list[str]:
    """The mixed scenario's paths, in the one order every run takes them."""
    paths = list(MIXED)
    random.Random(7).shuffle(paths)
    return paths


def in_process(client: redis.Redis, requests: int) -> dict[str, Any]:
    """Each contender's median and p99 µs per scenario, and the Redis commands it sends."""
    names = CONTENDERS + list(ENCRYPTED)
    variants: dict[str, dict[str, Any]] = {
        "plain": {},
        "idle": {"idle": True},
        "permanent": {"permanent": True},
    }
    apps = {c: {v: create_app(c, **options) for v, options in variants.items()} for c in names}
    with_sessions = [c for c in names if c != "bare"]
    cookies = {c: {v: session_cookie(apps[c][v]) for v in variants} for c in with_sessions}
    cookies["bare"] = cookies["floor"]  # the same Cookie header to parse, though nothing reads it
    for prefix in ("bench:scs-enc:", "bench:wsgi-enc:"):
        assert all_sealed(client, prefix), f"encryption at rest is not on under {prefix}"
    # Every cell in the same rounds, so that cells of two scenarios compare as well as two
    # contenders of one (a permanent read beside a read, say).
    runs: dict[tuple[str, str], tuple[WSGIApp, list[dict[str, Any]]]] = {}
    for scenario in SCENARIOS:
        variant = VARIANTS.get(scenario, "plain")
        for c in names if scenario in ENCRYPTED_SCENARIOS else CONTENDERS:
            runs[c, scenario] = (apps[c][variant], scenario_environs(scenario, cookies[c][variant]))
    results: dict[str, Any] = {c: {} for c in names}
    for (contender, scenario), timings in interleaved(runs, requests).items():
        app, environs = runs[contender, scenario]
        entry: dict[str, Any] = summary(timings)
        sample = environs if scenario == "mixed" else environs * 20
        entry.update(commands_per_request(client, app, sample))
        results[contender][scenario] = entry
    return results


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """Per scenario: this project over the measured floor, and Flask-Session over it."""
    table: dict[str, Any] = {}
    for scenario in SCENARIOS:
        median = {c: results[c][scenario]["median_us"] for c in CONTENDERS}
        scs, floor = median["scs"], median["floor"]
        table[scenario] = {
            "bare_us": median["bare"],
            "floor_us": floor,
            "scs_us": scs,
            "scs_over_floor_us": round(scs - floor, 1),
            "scs_vs_floor": round(scs / floor, 2),
            "scs_wsgi_vs_floor": round(median["scs-wsgi"] / floor, 2),
            "scs_vs_cookie": round(scs / median["cookie"], 2),
            "flask_session_over_scs": round(median["flask-session"] / scs, 2),
        }
    return table


def permanent_read_extra_us(results: dict[str, Any], contender: str = "scs") -> float:
    """What a permanent session's read costs ``contender`` over a read of one that is not."""
    cells = results[contender]
    return round(float(cells["read-permanent"]["median_us"] - cells["read"]["median_us"]), 1)


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


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 17's performance targets, each with its measured value and whether it is met."""
    table = report["ratios"]
    measured: list[tuple[str, float, str, float, str]] = [
        (f"{s}: Flask-Session / scs", table[s]["flask_session_over_scs"], ">=", bound, "x")
        for s, bound in (("read", 1.8), ("write", 1.15), ("new", 1.25))
    ]
    measured += [
        (f"{s}: scs / floor", table[s]["scs_vs_floor"], "<=", 1.15, "x")
        for s in ("read", "write", "new")
    ]
    measured.append(
        ("permanent read: scs over a read", report["permanent_read_extra_us"], "<=", 10, " µs")
    )
    end_to_end = report["end_to_end"]["scs_over_flask_session"]
    measured.append(("end to end, mixed: scs / Flask-Session req/s", end_to_end, ">=", 1.3, "x"))
    return [
        {
            "target": name,
            "measured": value,
            "bound": f"{relation} {bound}{unit}",
            "unit": unit.strip(),
            "met": value >= bound if relation == ">=" else value <= bound,
        }
        for name, value, relation, bound, unit in measured
    ]


def end_to_end(redis_url: str, seconds: int) -> dict[str, Any]:
    """Requests per second for the mixed scenario, served by gunicorn with 2 workers.

    Every contender's server runs throughout; each is loaded for one second
    per round, in turns, so that the machine's drift hits all alike.
    """
    paths = mixed_paths()
    tool = "wrk" if shutil.which("wrk") else "python"
    load = wrk_rate if tool == "wrk" else python_rate
    rates: dict[str, list[float]] = {c: [] for c in CONTENDERS}
    with ExitStack() as servers:
        ports = {
            c: servers.enter_context(
                gunicorn(
                    f"bench:create_app('{c}')",
                    pythonpath=str(Path(__file__).parent),
                    env={"BENCH_REDIS_URL": redis_url},
                    probe="/none",
                )
            )
            for c in CONTENDERS
        }
        cookies = {c: first_cookie(port) for c, port in ports.items() if c != "bare"}
        cookies["bare"] = cookies["floor"]
        for contender, port in ports.items():
            python_rate(port, cookies[contender], paths, 0.5)  # warm up
        for round_number in range(seconds):
            for contender in in_turn(CONTENDERS, round_number):
                rates[contender].append(load(ports[contender], cookies[contender], paths, 1))
    per_contender = {
        c: {"requests_per_second": round(statistics.mean(r)), "per_round": [round(x) for x in r]}
        for c, r in rates.items()
    }
    return {
        "load_generator": tool,
        "workers": 2,
        "rounds": seconds,
        "contenders": per_contender,
        "scs_over_flask_session": round(
            statistics.mean(rates["scs"]) / statistics.mean(rates["flask-session"]), 2
        ),
        "scs_vs_floor": round(statistics.mean(rates["scs"]) / statistics.mean(rates["floor"]), 2),
    }


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


def scale(requests: int, largest: int) -> dict[str, Any]:
    """Per-request cost as the store grows, and the time to count and iterate 100,000."""
    server_url = os.environ["BENCH_REDIS_URL"].rsplit("/", 1)[0]
    # Each store size in a database of its own, so that both reads are timed in the same rounds.
    runs: dict[str, tuple[WSGIApp, list[dict[str, Any]]]] = {}
    for size, database in ((1_000, 2), (largest, 3)):
        app = create_app("scs", redis_url=f"{server_url}/{database}")
        cookie = session_cookie(app)
        fill(redis.Redis.from_url(f"{server_url}/{database}"), "bench:scs:", size - 1)
        runs[f"read_with_{size}_sessions"] = (app, [environ_for("/read", cookie)])
    results: dict[str, Any] = {
        name: summary(timings) for name, timings in interleaved(runs, requests).items()
    }
    # A database of their own, so that SCAN walks these 100,000 and not the million too.
    iterate_client = redis.Redis.from_url(f"{server_url}/1")
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


def print_report(report: dict[str, Any]) -> None:
    machine, found = report["machine"], report["versions"]
    print(
        f"\nMachine: {machine['cpu']}, {machine['cpus']} CPUs ({machine['cpus_usable']} usable),"
        f" {machine['os']}, {machine['python']}"
    )
    print("Versions: " + ", ".join(f"{name} {version}" for name, version in found.items()))
    pinning = report["pinning"]
    if pinning["in_effect"]:
        pinned = "yes, this process and Redis on one CPU"
    else:
        pinned = (
            "no, as asked (--no-pin)" if not pinning["asked"] else "no, the OS does not allow it"
        )
    print(f"Pinned: {pinned}")
    print_in_process(report)
    print("\nEnd to end, mixed, gunicorn with 2 workers each, loaded by", end=" ")
    e2e = report["end_to_end"]
    print(f"{e2e['load_generator']} in {e2e['rounds']} one-second rounds taken in turns:")
    for contender, entry in e2e["contenders"].items():
        rounds = " ".join(str(rate) for rate in entry["per_round"])
        print(f"  {contender:<14}{entry['requests_per_second']:>8} req/s  (rounds: {rounds})")
    print(f"  scs / Flask-Session: {e2e['scs_over_flask_session']:.2f}x;", end=" ")
    print(f"scs / floor: {e2e['scs_vs_floor']:.2f}x")
    print("\nScale:")
    for name, value in report["scale"].items():
        print(f"  {name:<28}{value}")
    print("\nTargets (issue 17):")
    for target in report["targets"]:
        value = (
            f"{target['measured']:.2f}x" if target["unit"] == "x" else f"{target['measured']} µs"
        )
        verdict = "MET" if target["met"] else "NOT MET"
        print(f"  {target['target']:<46}{value:>9}   {target['bound']:<10}{verdict}")


def print_in_process(report: dict[str, Any]) -> None:
    results, table = report["in_process"], report["ratios"]
    print(
        f"\nIn process (app.wsgi_app called directly), {report['requests']} requests per cell,"
        f" every cell timed in the same {ROUNDS} rounds:"
    )
    print(f"{'':<15}" + "".join(f"{c:>18}" for c in CONTENDERS))
    print(f"{'scenario':<15}" + f"{'median':>8}{'p99':>6}{'cmd':>4}" * len(CONTENDERS))
    for scenario in SCENARIOS:
        print(f"{scenario:<15}" + "".join(_cell(results[c][scenario]) for c in CONTENDERS))
    print("(µs; cmd: Redis commands sent per request; floor: bare plus the commands scs sends)")
    print(
        f"\n{'scenario':<15}{'bare':>8}{'floor':>8}{'scs':>8}{'scs-floor':>11}"
        f"{'scs/floor':>11}{'wsgi/floor':>12}{'scs/cookie':>12}{'fs/scs':>9}"
    )
    for scenario in SCENARIOS:
        ratio = table[scenario]
        print(
            f"{scenario:<15}{ratio['bare_us']:>8.1f}{ratio['floor_us']:>8.1f}{ratio['scs_us']:>8.1f}"
            f"{ratio['scs_over_floor_us']:>8.1f} µs{ratio['scs_vs_floor']:>10.2f}x"
            f"{ratio['scs_wsgi_vs_floor']:>11.2f}x{ratio['scs_vs_cookie']:>11.2f}x"
            f"{ratio['flask_session_over_scs']:>8.2f}x"
        )
    extra, floor_extra = report["permanent_read_extra_us"], report["floor_permanent_read_extra_us"]
    print(
        f"permanent_read_extra_us = scs[read-permanent] - scs[read] = {extra} µs"
        f" (the floor's: {floor_extra} µs)"
    )
    print("\nEncryption at rest, on beside off, timed in the same rounds as the cells above:")
    print(f"{'adapter':<10}{'scenario':<10}{'off':>18}{'on':>18}{'on/off':>8}{'added':>10}")
    for encrypted, adapter in ENCRYPTED.items():
        for scenario in ENCRYPTED_SCENARIOS:
            cells = "".join(_cell(results[c][scenario]) for c in (adapter, encrypted))
            ratio = report["encryption"][adapter][scenario]
            print(
                f"{adapter:<10}{scenario:<10}{cells}{ratio['on_over_off']:>7.2f}x"
                f"{ratio['added_us']:>7.1f} µs"
            )


def _cell(entry: dict[str, Any]) -> str:
    """A table cell: median µs, p99 µs, Redis commands per request."""
    return f"{entry['median_us']:>8.1f}{entry['p99_us']:>6.0f}{entry['commands']:>4g}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=3000, help="timed requests per cell")
    parser.add_argument("--seconds", type=int, default=5, help="one-second end-to-end rounds")
    parser.add_argument("--largest", type=int, default=1_000_000, help="sessions for the scale run")
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run this process and Redis on one CPU in process, where the OS allows it",
    )
    parser.add_argument("--json", default="bench-results.json", help="where to write the numbers")
    arguments = parser.parse_args()
    if arguments.requests < 1 or arguments.seconds < 1:
        parser.error("--requests and --seconds must be 1 or more")
    started = time.monotonic()
    # Always a throwaway server of our own: the scale run stores a million sessions.
    with RedisServer() as server:
        redis_url = server.url
        os.environ["BENCH_REDIS_URL"] = redis_url
        client = redis.Redis.from_url(redis_url)
        report: dict[str, Any] = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": describe_machine(),
            "versions": versions(client),
            "requests": arguments.requests,
        }
        with one_cpu(server.pid, pin=arguments.pin) as pinned:
            report["pinning"] = {"asked": arguments.pin, "in_effect": pinned}
            _progress("in process")
            report["in_process"] = in_process(client, arguments.requests)
            report["ratios"] = ratios(report["in_process"])
            report["permanent_read_extra_us"] = permanent_read_extra_us(report["in_process"])
            # What sending the cookie again costs any session: the target's context.
            report["floor_permanent_read_extra_us"] = permanent_read_extra_us(
                report["in_process"], "floor"
            )
            report["encryption"] = encryption_ratios(report["in_process"])
            _progress("scale")
            report["scale"] = scale(arguments.requests, arguments.largest)
        _progress("end to end")
        report["end_to_end"] = end_to_end(redis_url, arguments.seconds)
    report["targets"] = targets(report)
    report["run_seconds"] = round(time.monotonic() - started)
    print_report(report)
    Path(arguments.json).write_text(json.dumps(report, indent=2))
    print(f"\nran for {report['run_seconds']} s; wrote {arguments.json}")
    return 0


def _progress(stage: str) -> None:
    print(f"bench: {stage}...", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
