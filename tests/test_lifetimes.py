"""Flask's lifetime semantics: PERMANENT_SESSION_LIFETIME is a sliding window.

Held against real Flask cookie sessions and real Flask-Session 0.8 on the same
Redis, and then each of our keys on its own (README: Lifetimes).
"""

from __future__ import annotations

import time
import warnings
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from flask import Flask, session
from flask.testing import FlaskClient
from flask_session import Session as FlaskSession

from flask_scs_redis import ConfigurationError, RedisSessions
from flask_scs_redis.users import PRUNE_EVERY

from harness import Count, MakeApp, set_cookie_headers


def logged_in_app(kind: str, redis_client: redis.Redis, **config: Any) -> Flask:
    """An app whose /login makes a permanent session, on ``kind`` of sessions."""
    app = Flask(f"{__name__}.{kind}")
    app.config.update(TESTING=True, SECRET_KEY="test secret", **config)
    if kind == "flask-session":
        app.config.update(SESSION_TYPE="redis", SESSION_REDIS=redis_client)
        FlaskSession(app)
    elif kind == "scs":
        app.config.update(SCS_REDIS=redis_client)
        RedisSessions(app)

    @app.get("/login")
    def login() -> str:
        session.permanent = True
        session["user"] = "ann"
        return "ok"

    @app.get("/whoami")
    def whoami() -> str:
        return str(session.get("user"))

    return app


def test_an_active_user_stays_as_with_flask_and_flask_session_and_an_idle_one_is_out(
    redis_client: redis.Redis,
) -> None:
    """The issue's measurement: a short lifetime, one request more often than that."""
    lifetime = timedelta(seconds=1.5)
    kinds = ["cookie", "flask-session", "scs"]
    clients: dict[str, FlaskClient] = {}
    for kind in kinds:
        app = logged_in_app(kind, redis_client, PERMANENT_SESSION_LIFETIME=lifetime)
        clients[kind] = app.test_client()
        assert clients[kind].get("/login").status_code == 200
    seen: dict[str, list[str]] = {kind: [] for kind in kinds}
    for _ in range(6):  # 3 s of activity: twice the lifetime
        time.sleep(0.5)
        for kind in kinds:
            seen[kind].append(clients[kind].get("/whoami").text)
    assert seen == {kind: ["ann"] * 6 for kind in kinds}
    time.sleep(lifetime.total_seconds() + 0.6)  # idle for longer than the window
    assert {kind: clients[kind].get("/whoami").text for kind in kinds} == dict.fromkeys(
        kinds, "None"
    )


def test_reads_alone_keep_a_non_permanent_session_alive(make_app: MakeApp) -> None:
    client = make_app(PERMANENT_SESSION_LIFETIME=timedelta(seconds=1)).test_client()
    client.get("/incr")
    for _ in range(4):
        time.sleep(0.5)
        assert client.get("/read").text == "1"
    time.sleep(1.3)
    assert client.get("/read").text == "None"


def remaining(text: str) -> timedelta:
    return datetime.fromisoformat(text) - datetime.now(timezone.utc)


def test_by_default_there_is_no_absolute_cap(make_app: MakeApp, redis_client: redis.Redis) -> None:
    app = make_app()
    app.add_url_rule("/expires", "expires", lambda: session.expires.isoformat())
    client = app.test_client()
    client.get("/incr")
    assert remaining(client.get("/deadline").text) > timedelta(days=365 * 99)
    # The record lives a window (Flask's default of 31 days) past its last use.
    assert timedelta(days=30) < remaining(client.get("/expires").text) <= timedelta(days=31)
    (key,) = redis_client.keys("scs:session:*")
    assert timedelta(days=30) < timedelta(milliseconds=redis_client.pttl(key))


def test_scs_lifetime_caps_even_an_active_session(make_app: MakeApp) -> None:
    client = make_app(SCS_LIFETIME=1.5).test_client()
    client.get("/incr")
    assert remaining(client.get("/deadline").text) <= timedelta(seconds=1.5)
    alive = []
    for _ in range(5):
        time.sleep(0.45)
        alive.append(client.get("/read").text == "1")
    assert alive == [True, True, True, False, False]


def test_scs_idle_timeout_is_the_window_instead_of_permanent_session_lifetime(
    make_app: MakeApp, redis_client: redis.Redis
) -> None:
    client = make_app(
        SCS_IDLE_TIMEOUT=60, PERMANENT_SESSION_LIFETIME=timedelta(days=1)
    ).test_client()
    header = set_cookie_headers(client.get("/permanent"))[0]
    assert "Max-Age=59;" in header or "Max-Age=60;" in header
    (key,) = redis_client.keys("scs:session:*")
    assert 55_000 < redis_client.pttl(key) <= 60_000


def test_permanent_session_lifetime_is_read_at_request_time(
    make_app: MakeApp, redis_client: redis.Redis
) -> None:
    app = make_app()
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(minutes=5)
    client = app.test_client()
    header = set_cookie_headers(client.get("/permanent"))[0]
    assert "Max-Age=299;" in header or "Max-Age=300;" in header
    (key,) = redis_client.keys("scs:session:*")
    assert 290_000 < redis_client.pttl(key) <= 300_000
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(minutes=1)
    client.get("/read")
    assert 55_000 < redis_client.pttl(key) <= 60_000


def test_a_permanent_cookie_is_refreshed_with_the_window_on_each_read(make_app: MakeApp) -> None:
    client = make_app(PERMANENT_SESSION_LIFETIME=timedelta(seconds=30)).test_client()
    client.get("/permanent")
    first = client.get_cookie("session")
    time.sleep(1.1)
    (header,) = set_cookie_headers(client.get("/read"))
    assert "Max-Age=29;" in header or "Max-Age=30;" in header
    again = client.get_cookie("session")
    assert first is not None and again is not None and first.value == again.value
    assert first.expires is not None and again.expires is not None
    assert again.expires > first.expires  # slid with the record


@pytest.mark.parametrize(
    ("config", "permanent"),
    [
        ({}, False),
        ({"SCS_PERMANENT": True}, True),
        ({"SESSION_PERMANENT": True}, True),
        ({"SESSION_PERMANENT": False}, False),
        ({"SESSION_PERMANENT": True, "SCS_PERMANENT": False}, False),
        ({"SESSION_PERMANENT": False, "SCS_PERMANENT": True}, True),
    ],
)
def test_scs_permanent_or_else_session_permanent_makes_new_sessions_permanent(
    make_app: MakeApp, config: dict[str, bool], permanent: bool
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # SESSION_PERMANENT is honoured, so not warned about
        app = make_app(**config)
    header = set_cookie_headers(app.test_client().get("/incr"))[0]
    assert ("Expires=" in header) is permanent
    assert ("Max-Age=" in header) is permanent


def test_session_permanent_is_checked_and_named_in_the_message() -> None:
    app = Flask(__name__)
    app.config["SESSION_PERMANENT"] = "yes"
    with pytest.raises(ConfigurationError, match="SESSION_PERMANENT must be True or False"):
        RedisSessions(app)


def test_entries_of_sessions_that_ended_idle_are_pruned_from_the_user_index(
    make_app: MakeApp, redis_client: redis.Redis, count: Count
) -> None:
    """With no absolute cap, an entry's deadline is far off: its record's end must prune it."""
    app = make_app(SCS_IDLE_TIMEOUT=1)
    for _ in range(PRUNE_EVERY - 1):
        app.test_client().get("/set?key=_user_id&value=42")
    (index,) = redis_client.keys("scs:session:*:user")
    assert redis_client.zcard(index) == PRUNE_EVERY - 1
    time.sleep(1.2)  # every one of them ends idle
    client = app.test_client()
    with count() as counted:
        client.get("/set?key=_user_id&value=42")  # the PRUNE_EVERY-th entry
    assert counted.by_command["exists"] == PRUNE_EVERY - 1  # one pipelined check
    assert redis_client.zcard(index) == 1
    with count() as counted:
        app.test_client().get("/set?key=_user_id&value=42")
    assert "exists" not in counted.by_command  # checked once per PRUNE_EVERY joins
    assert redis_client.zcard(index) == 2
