"""The benchmark's baselines: a bare Flask app, and the floor.

``bare`` serves the benchmark's routes with no session at all: no secret
key (so Flask's own interface opens a null session and signs nothing), and
views that touch no session. ``floor`` is that bare app whose views send,
inside the request, the very Redis commands this project's Flask extension
sends for each route, on a plain redis-py client with the extension's own
scripts, and set the cookie where the extension sets one. What it leaves out
is the session engine itself: no token hashing, no record packed or parsed,
no values decoded, no state kept. So ``scs / floor`` is what the extension
costs over the least any Redis-backed session must cost here and now, and
``floor - bare`` is what its Redis round trips cost inside a request.

The benchmark checks that the floor sends the extension's commands, one for
one, per scenario (see ``tests/test_bench.py``).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

import redis
from flask import Flask, Response, make_response, request

from flask_scs_redis import codec
from flask_scs_redis.clock import milliseconds, now_ms
from flask_scs_redis.options import DEFAULT_LIFETIME
from flask_scs_redis.record import Record, pack_record
from flask_scs_redis.scripts import COMPARE_AND_SET, READ

COOKIE = "session"
PREFIX = "bench:floor:"
#: The extension's sliding window under SCS_IDLE_TIMEOUT, as the benchmark sets it.
IDLE_TIMEOUT = timedelta(seconds=1800)


def create_bare_app() -> Flask:
    """The benchmark's routes, served with no session."""
    app = Flask(__name__)

    @app.get("/none")
    def untouched() -> str:
        return "ok"

    for route in ("/read", "/read-permanent", "/idle-read", "/write", "/new"):
        app.add_url_rule(route, view_func=untouched, endpoint=route)
    return app


def create_floor_app(redis_url: str, *, idle: bool = False, permanent: bool = False) -> Flask:
    """The bare app plus, in each view, the commands the extension sends for it.

    A read is one EVALSHA of the extension's read script, which slides the
    expiry; a write is that read and one EVALSHA of its compare-and-set
    script; a request without a cookie that writes is one SET NX PXAT. With
    ``idle`` the window slides by the benchmark's idle timeout, else by
    Flask's ``PERMANENT_SESSION_LIFETIME`` (the extension's default); with
    ``permanent`` every response that reads the session sends its cookie
    again, with an expiry, as a permanent session's does.
    """
    app = Flask(__name__)
    client = redis.Redis.from_url(redis_url)
    read_script = client.register_script(READ)
    compare_and_set = client.register_script(COMPARE_AND_SET)
    window = IDLE_TIMEOUT if idle else app.permanent_session_lifetime
    window_ms, lifetime_ms = milliseconds(window), milliseconds(DEFAULT_LIFETIME)
    # One record, stored by every write: the floor reads and writes, it does not pack.
    started_ms = now_ms()
    deadline_ms = started_ms + lifetime_ms
    record, tag = pack_record(Record(1, deadline_ms, started_ms, codec.encode({"n": 1})))

    def read(token: str, now: int) -> Any:
        return read_script(keys=[PREFIX + token], args=[now, now + window_ms])

    def with_cookie(token: str, now: int) -> Response:
        response = make_response("ok")
        if permanent:
            expires = datetime.fromtimestamp((now + window_ms) / 1000, tz=timezone.utc)
            max_age = window_ms // 1000
            response.set_cookie(COOKIE, token, max_age=max_age, expires=expires, httponly=True)
        else:
            response.set_cookie(COOKIE, token, httponly=True)
        return response

    @app.get("/none")
    def untouched() -> str:
        return "ok"

    @app.get("/read")
    def read_only() -> Response | str:
        token, now = request.cookies.get(COOKIE), now_ms()
        if token is None or read(token, now) is None:
            return "ok"
        return with_cookie(token, now) if permanent else "ok"

    @app.get("/write")
    def write() -> Response:
        token, now = request.cookies.get(COOKIE), now_ms()
        if token is not None and read(token, now) is not None:
            compare_and_set(keys=[PREFIX + token], args=[tag, record, deadline_ms])
        else:
            token = secrets.token_urlsafe(32)  # a new session: a token of its own
            client.set(PREFIX + token, record, pxat=now + lifetime_ms, nx=True)
        return with_cookie(token, now)

    app.add_url_rule("/read-permanent", view_func=read_only, endpoint="read-permanent")
    app.add_url_rule("/idle-read", view_func=read_only, endpoint="idle-read")
    app.add_url_rule("/new", view_func=write, endpoint="new")
    return app
