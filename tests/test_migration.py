"""SCS_MIGRATE_FROM: switching from Flask-Session or Flask's cookies logs nobody out.

The old apps here are the real thing: Flask-Session 0.8 on the same Redis,
and a plain Flask app with its signed-cookie sessions. A user logs in there,
then the app is switched to this extension and the browser's cookie is sent
to it as it is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, cast

import msgpack
import pytest
import redis
from flask import Flask, session
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SecureCookieSessionInterface
from flask.testing import FlaskClient
from flask_session import Session as FlaskSession  # type: ignore[import-untyped]
from itsdangerous import Signer, TimestampSigner, URLSafeTimedSerializer
from markupsafe import Markup
from werkzeug.test import TestResponse

from flask_scs_redis import ConfigurationError, RedisSessions
from flask_scs_redis.testing import RedisServer
from flask_scs_redis.testing.topologies import RedisClusterServers
from flask_scs_redis.tokens import is_well_formed, new_token

from harness import (
    Count,
    cookie_token,
    http_get,
    serving,
    set_cookie_headers,
    stored_keys,
    stored_sessions,
)
from views import build_flask_app

SECRET = "the-secret-key-both-apps-share"
USER = "42"
CART = [{"sku": "apple", "qty": 2}, {"sku": "pear", "qty": 1}]
CSRF = "IjY0ZjE5YzFkZDI3YjQ2ZTk4ZWI4ODU2ODZhN2YxNzI0Ig"
# What Flask-Session 0.8 stores for the login below: it adds _permanent itself.
LOGGED_IN = {"_permanent": True, "_user_id": USER, "cart": CART, "csrf_token": CSRF}
# Every type Flask's cookie serializer tags, and a dict that looks like a tag.
TAGGED: dict[str, Any] = {
    "pair": (1, "two"),
    "markup": Markup("<b>bold</b>"),
    "uuid": uuid.UUID("0b6a3c6e-6c1e-4ad5-9f7e-3b1f5f0f6a11"),
    "when": datetime(2024, 5, 17, 12, 30, 45, tzinfo=timezone.utc),  # HTTP dates: no microseconds
    "raw": b"\x00\xffbytes",
    "nested": {"a": {"b": [1, 2.5, None, True, {"c": (3, "four")}]}},
    "lookalike": {" t": ["not", "a", "tuple"]},
}


# The old apps.


def add_login(app: Flask, **extra: Any) -> None:
    """A login as Flask-Login and Flask-WTF leave it, and a cart."""

    @app.get("/login")
    def login() -> str:
        session["_user_id"] = USER
        session["cart"] = CART
        session["csrf_token"] = CSRF
        session.update(extra)
        return "ok"


def flask_session_app(redis_client: redis.Redis, **config: Any) -> Flask:
    """A Flask-Session 0.8 app on ``redis_client``, with extra config as keywords."""
    # Flask-Session falls back to a Redis on localhost:6379 for any other client.
    assert type(redis_client) is redis.Redis, "Flask-Session takes a redis.Redis only"
    app = Flask(__name__)
    app.config.update(
        TESTING=True,
        SECRET_KEY=SECRET,
        SESSION_TYPE="redis",
        SESSION_REDIS=redis_client,
        **config,
    )
    if config.get("SESSION_USE_SIGNER"):
        with pytest.warns(DeprecationWarning, match="use_signer"):
            FlaskSession(app)
    else:
        FlaskSession(app)
    add_login(app)
    return app


def cookie_session_app(secret_key: str = SECRET, **extra: Any) -> Flask:
    """A plain Flask app, its sessions in signed cookies; the login adds ``extra``."""
    app = Flask(__name__)
    app.config.update(TESTING=True, SECRET_KEY=secret_key)
    add_login(app, **extra)

    @app.get("/values")
    def values() -> str:
        return json.dumps(sorted(session.keys()))

    return app


def logged_in(old_app: Flask) -> str:
    """Log in on ``old_app``; return the session cookie its browser now holds."""
    client = old_app.test_client()
    assert client.get("/login").status_code == 200
    cookie = cookie_token(client)
    assert cookie is not None
    return cookie


def flask_session_sid(cookie: str) -> str:
    """The sid in a Flask-Session cookie, signed or not."""
    return cookie.split(".")[0]


def backdated_cookie(values: dict[str, Any], age: timedelta, secret_key: str = SECRET) -> str:
    """A cookie session signed as Flask signs one, ``age`` ago."""

    class Backdated(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age.total_seconds())

    serializer = URLSafeTimedSerializer(
        secret_key,
        salt=SecureCookieSessionInterface.salt,
        serializer=TaggedJSONSerializer(),
        signer=Backdated,
        signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha1},
    )
    return serializer.dumps(values)


# The new app: this extension, and a view that hands the test what it saw.


def new_app(
    redis_client: redis.Redis, sources: tuple[str, ...] = ("flask-session",), **config: Any
) -> Flask:
    """The shared views on this extension, migrating from ``sources``."""
    config.setdefault("SECRET_KEY", SECRET)
    app = build_flask_app(redis_client, SCS_MIGRATE_FROM=list(sources), **config)
    seen: list[dict[str, Any]] = []
    app.extensions["seen"] = seen

    @app.get("/values")
    def values() -> str:
        seen.append(dict(session))
        return "ok"

    @app.get("/mine-now")
    def mine_now() -> str:
        return str(len(RedisSessions().user_sessions(USER)))

    return app


def switched(app: Flask, cookie: str) -> FlaskClient:
    """A browser of ``app`` that holds ``cookie``, as after the switch."""
    client = app.test_client()
    client.set_cookie("session", cookie)
    return client


def visit(client: FlaskClient) -> tuple[TestResponse, dict[str, Any]]:
    """GET /values: the response, and the session's values as the view saw them."""
    response = client.get("/values")
    assert response.status_code == 200
    seen = cast("list[dict[str, Any]]", client.application.extensions["seen"])
    return response, seen.pop()


def values_of(client: FlaskClient) -> dict[str, Any]:
    """The session's values as a view sees them."""
    return visit(client)[1]


def same_types(left: Any, right: Any) -> bool:
    """Equal, and of the same type all the way down; in any order, as Flask sorts keys."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same_types(left[k], right[k]) for k in left)
    if isinstance(left, (list, tuple)):
        return len(left) == len(right) and all(same_types(a, b) for a, b in zip(left, right))
    if isinstance(left, datetime):
        return bool(left.isoformat() == right.isoformat())  # the offset too
    return bool(left == right)


def assert_same_types(seen: dict[str, Any], expected: dict[str, Any]) -> None:
    assert seen.keys() == expected.keys()
    for name, value in expected.items():
        assert same_types(seen[name], value), (name, seen[name], value)


# 1-3. Flask-Session.


def test_a_flask_session_user_stays_logged_in_under_a_new_token(
    redis_client: redis.Redis, count: Count
) -> None:
    sid = logged_in(flask_session_app(redis_client))
    assert redis_client.exists(f"session:{sid}") == 1
    app = new_app(redis_client)
    client = switched(app, sid)

    response, seen = visit(client)

    assert seen == LOGGED_IN
    assert len(set_cookie_headers(response)) == 1
    token = cookie_token(client)
    assert token is not None and len(token) == 43 and is_well_formed(token)
    assert token != sid
    assert redis_client.exists(f"session:{sid}") == 0  # taken up once, and only once
    assert stored_sessions(redis_client) == [LOGGED_IN]
    with count() as counted:
        response, seen = visit(client)
    assert seen == LOGGED_IN
    assert counted.by_command == {"evalsha": 1}  # ours now: one read, no look at session:
    assert cookie_token(client) == token
    # The old cookie, replayed, names nothing any more.
    assert values_of(switched(app, sid)) == {}
    assert stored_sessions(redis_client) == [LOGGED_IN]


def test_a_signed_flask_session_cookie_is_taken_up(redis_client: redis.Redis) -> None:
    cookie = logged_in(flask_session_app(redis_client, SESSION_USE_SIGNER=True))
    sid = flask_session_sid(cookie)
    assert cookie != sid  # signed indeed
    client = switched(new_app(redis_client, SESSION_USE_SIGNER=True), cookie)

    assert values_of(client) == LOGGED_IN
    token = cookie_token(client)
    assert token is not None and is_well_formed(token) and token != sid
    assert redis_client.exists(f"session:{sid}") == 0
    assert stored_sessions(redis_client) == [LOGGED_IN]
    assert values_of(client) == LOGGED_IN


def test_with_the_signer_on_an_unsigned_sid_is_not_taken_up(
    redis_client: redis.Redis, count: Count
) -> None:
    """Flask-Session never issued an unsigned sid then: one is a guess or a leak of the key."""
    sid = flask_session_sid(logged_in(flask_session_app(redis_client, SESSION_USE_SIGNER=True)))
    client = switched(new_app(redis_client, SESSION_USE_SIGNER=True), sid)

    with count() as counted:
        response, seen = visit(client)

    assert seen == {}
    assert set_cookie_headers(response) == []
    assert counted.by_command == {"evalsha": 1}  # Flask-Session's record is not even read
    assert redis_client.exists(f"session:{sid}") == 1
    assert stored_sessions(redis_client) == []


def test_a_sid_signed_with_another_key_is_not_taken_up(redis_client: redis.Redis) -> None:
    sid = flask_session_sid(logged_in(flask_session_app(redis_client, SESSION_USE_SIGNER=True)))
    forged = Signer("not-the-key", salt="flask-session", key_derivation="hmac").sign(sid).decode()
    client = switched(new_app(redis_client, SESSION_USE_SIGNER=True), forged)

    assert values_of(client) == {}
    assert redis_client.exists(f"session:{sid}") == 1
    assert stored_sessions(redis_client) == []


def test_a_sid_signed_with_a_rotated_out_key_is_taken_up(redis_client: redis.Redis) -> None:
    cookie = logged_in(flask_session_app(redis_client, SESSION_USE_SIGNER=True))
    app = new_app(
        redis_client,
        SESSION_USE_SIGNER=True,
        SECRET_KEY="the-new-key",
        SECRET_KEY_FALLBACKS=[SECRET],
    )
    assert values_of(switched(app, cookie)) == LOGGED_IN
    assert stored_sessions(redis_client) == [LOGGED_IN]


def test_a_flask_session_record_in_json_is_taken_up(redis_client: redis.Redis) -> None:
    sid = logged_in(flask_session_app(redis_client, SESSION_SERIALIZATION_FORMAT="json"))
    record = redis_client.get(f"session:{sid}")
    assert record is not None and json.loads(record) == LOGGED_IN  # JSON indeed
    client = switched(new_app(redis_client), sid)

    assert values_of(client) == LOGGED_IN
    assert redis_client.exists(f"session:{sid}") == 0
    assert stored_sessions(redis_client) == [LOGGED_IN]


def test_a_custom_flask_session_key_prefix_is_followed(redis_client: redis.Redis) -> None:
    sid = logged_in(flask_session_app(redis_client, SESSION_KEY_PREFIX="myapp:"))
    assert redis_client.exists(f"myapp:{sid}") == 1
    client = switched(new_app(redis_client, SESSION_KEY_PREFIX="myapp:"), sid)

    assert values_of(client) == LOGGED_IN
    assert redis_client.exists(f"myapp:{sid}") == 0


@pytest.mark.parametrize("serialization", ["msgpack", "json"])
def test_values_come_back_as_flask_session_itself_read_them(
    redis_client: redis.Redis, serialization: str
) -> None:
    """Flask-Session keeps no types beyond its format's: a tuple is read back as a list, say."""
    old = flask_session_app(redis_client, SESSION_SERIALIZATION_FORMAT=serialization)
    old_seen: list[dict[str, Any]] = []

    @old.get("/typed")
    def typed() -> str:
        session["when"] = datetime(2024, 5, 17, 12, 30, 45, 123456, timezone(timedelta(hours=2)))
        session["naive"] = datetime(2024, 5, 17, 12, 30, 45)
        session["uuid"] = uuid.UUID(int=5)
        session["pair"] = (1, 2)
        session["raw"] = b"\x00\xff"
        session["big"] = 2**70 if serialization == "json" else 2**63
        session["float"] = 0.1
        return "ok"

    @old.get("/show")
    def show() -> str:
        old_seen.append(dict(session))
        return "ok"

    old_client = old.test_client()
    assert old_client.get("/typed").status_code == 200
    assert old_client.get("/show").status_code == 200
    (expected,) = old_seen
    assert type(expected["when"]) is (datetime if serialization == "msgpack" else str)
    sid = cookie_token(old_client)
    assert sid is not None
    client = switched(new_app(redis_client), sid)

    assert_same_types(values_of(client), expected)
    assert_same_types(values_of(client), expected)  # read back from Redis


def test_a_short_flask_session_sid_is_taken_up(redis_client: redis.Redis) -> None:
    """A sid of SESSION_ID_LENGTH=16 is no token of ours: our store is not even asked."""
    sid = logged_in(flask_session_app(redis_client, SESSION_ID_LENGTH=16))
    assert len(sid) == 22 and not is_well_formed(sid)
    client = switched(new_app(redis_client), sid)

    assert values_of(client) == LOGGED_IN
    assert redis_client.exists(f"session:{sid}") == 0
    assert stored_sessions(redis_client) == [LOGGED_IN]


# 4. Flask's signed-cookie sessions.


def test_a_cookie_session_comes_back_with_its_types(redis_client: redis.Redis) -> None:
    cookie = logged_in(cookie_session_app(**TAGGED))
    client = switched(new_app(redis_client, ("cookie",)), cookie)
    expected = {"_user_id": USER, "cart": CART, "csrf_token": CSRF, **TAGGED}

    assert_same_types(values_of(client), expected)
    token = cookie_token(client)
    assert token is not None and is_well_formed(token)
    (stored,) = stored_sessions(redis_client)
    assert_same_types(stored, expected)
    assert_same_types(values_of(client), expected)  # read back from Redis


def test_a_cookie_signed_with_a_rotated_out_key_is_taken_up(redis_client: redis.Redis) -> None:
    cookie = logged_in(cookie_session_app("the-old-key"))
    app = new_app(
        redis_client, ("cookie",), SECRET_KEY="the-new-key", SECRET_KEY_FALLBACKS=["the-old-key"]
    )

    assert values_of(switched(app, cookie)) == {"_user_id": USER, "cart": CART, "csrf_token": CSRF}


def test_a_cookie_signed_with_an_unknown_key_is_not_taken_up(redis_client: redis.Redis) -> None:
    cookie = logged_in(cookie_session_app("some-other-apps-key"))
    client = switched(new_app(redis_client, ("cookie",)), cookie)

    response, seen = visit(client)

    assert seen == {}
    assert set_cookie_headers(response) == []
    assert stored_keys(redis_client) == []


def test_a_cookie_older_than_the_permanent_session_lifetime_is_not_taken_up(
    redis_client: redis.Redis,
) -> None:
    lifetime = timedelta(days=31)  # Flask's default
    login = {"_user_id": USER, "cart": CART}
    recent = backdated_cookie(login, lifetime - timedelta(hours=1))
    stale = backdated_cookie(login, lifetime + timedelta(hours=1))
    # Flask itself takes the one and not the other: the cookies are as it signs them.
    old = cookie_session_app()
    assert json.loads(switched(old, recent).get("/values").text) == ["_user_id", "cart"]
    assert json.loads(switched(old, stale).get("/values").text) == []
    app = new_app(redis_client, ("cookie",), PERMANENT_SESSION_LIFETIME=lifetime)

    assert values_of(switched(app, recent)) == login
    assert values_of(switched(app, stale)) == {}
    assert stored_sessions(redis_client) == [login]


@pytest.mark.parametrize("values", [[1, 2], "42", {}], ids=["list", "str", "empty"])
def test_a_signed_cookie_that_holds_no_session_is_not_taken_up(
    redis_client: redis.Redis, values: Any
) -> None:
    cookie = backdated_cookie(values, timedelta(0))
    client = switched(new_app(redis_client, ("cookie",)), cookie)

    response, seen = visit(client)

    assert seen == {}
    assert set_cookie_headers(response) == []
    assert redis_client.dbsize() == 0


# 5. What it costs.


def test_a_token_unknown_to_both_stores_costs_one_get_and_is_never_adopted(
    redis_client: redis.Redis, count: Count
) -> None:
    planted = new_token()
    client = switched(new_app(redis_client), planted)

    with count() as counted:
        response, seen = visit(client)

    assert seen == {}
    assert counted.by_command == {"evalsha": 1, "get": 1}
    assert counted.in_scripts == {"get": 1}  # our read found nothing to slide
    assert set_cookie_headers(response) == []
    assert redis_client.dbsize() == 0
    # A write starts a session of its own: the planted token is never taken.
    assert client.get("/set?key=a&value=b").status_code == 200
    token = cookie_token(client)
    assert token is not None and token != planted


def test_a_request_with_our_own_cookie_costs_only_our_read(
    redis_client: redis.Redis, count: Count
) -> None:
    client = new_app(redis_client, ("flask-session", "cookie")).test_client()
    assert client.get("/incr").text == "1"

    with count() as counted:
        assert client.get("/read").text == "1"

    assert counted.by_command == {"evalsha": 1}


def test_a_request_that_never_touches_the_session_costs_nothing(
    redis_client: redis.Redis, count: Count
) -> None:
    sid = logged_in(flask_session_app(redis_client))
    app = new_app(redis_client, ("flask-session", "cookie"))
    ours = app.test_client()
    assert ours.get("/incr").text == "1"

    with count() as counted:
        for client in [switched(app, sid), ours, app.test_client()]:
            response = client.get("/none")
            assert response.status_code == 200
            assert set_cookie_headers(response) == []

    assert counted.by_command == {}
    assert redis_client.exists(f"session:{sid}") == 1  # nothing taken, nothing lost


def test_logging_out_with_our_own_cookie_costs_nothing_extra(
    redis_client: redis.Redis, count: Count
) -> None:
    """Every token of ours could be a Flask-Session sid: it is forgotten there only if not ours."""
    client = new_app(redis_client).test_client()
    assert client.get("/incr").text == "1"

    with count() as counted:
        assert client.get("/logout").status_code == 200

    assert counted.by_command == {"evalsha": 1}  # as test_round_trips: one script, no DEL


@pytest.mark.parametrize(("ours", "theirs"), [("session:", "session:"), ("s", "session:")])
def test_a_key_prefix_that_would_hold_flask_sessions_records_is_refused(
    redis_client: redis.Redis, ours: str, theirs: str
) -> None:
    """Our reads would take their records for corrupt ones of ours, and delete them."""
    with pytest.raises(ConfigurationError, match="would hold Flask-Session's records"):
        new_app(redis_client, SCS_KEY_PREFIX=ours, SESSION_KEY_PREFIX=theirs)
    new_app(redis_client, SCS_KEY_PREFIX="session:scs:", SESSION_KEY_PREFIX=theirs)
    build_flask_app(redis_client, SCS_KEY_PREFIX=ours)  # not migrating: no records to lose


# 6. Logging out right after the switch.


@pytest.mark.parametrize("path", ["/logout", "/read-then-logout", "/clear"])
def test_logging_out_after_the_switch_ends_the_old_session_too(
    redis_client: redis.Redis, path: str
) -> None:
    sid = logged_in(flask_session_app(redis_client))
    app = new_app(redis_client)

    assert switched(app, sid).get(path).status_code == 200

    assert redis_client.exists(f"session:{sid}") == 0
    assert stored_sessions(redis_client) == []
    replayed = switched(app, sid)
    assert values_of(replayed) == {}
    assert stored_sessions(redis_client) == []


# 7. Hostile records and cookies.

UNPICKLED: list[str] = []


def note_unpickled(tag: str) -> str:
    """Called only if a pickle is loaded."""
    UNPICKLED.append(tag)
    return tag


class Canary:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return note_unpickled, ("unpickled",)


def deeply_nested_json(depth: int) -> bytes:
    return b'{"a": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.fixture
def unpickled() -> Iterator[list[str]]:
    UNPICKLED.clear()
    yield UNPICKLED
    UNPICKLED.clear()


HOSTILE_RECORDS = {
    "pickle 5": pickle.dumps({"_user_id": USER}, protocol=5),
    "pickle 2": pickle.dumps({"_user_id": USER}, protocol=2),
    "pickle 0": pickle.dumps({"_user_id": USER}, protocol=0),
    "garbage": b"\x00\xff\xfe garbage \x81",
    "empty": b"",
    "json list": b'["_user_id", "42"]',
    "json string": b'"42"',
    "json null": b"null",
    "msgpack list": msgpack.packb(["_user_id", "42"]),
    "msgpack int": msgpack.packb(42),
    "msgpack map then junk": msgpack.packb({"_user_id": USER}) + b"junk",
    "msgpack map, truncated": msgpack.packb({"_user_id": USER, "cart": CART})[:-3],
    "msgpack map, bad utf-8": b"\x81\xa1a\xa2\xff\xfe",
    "msgpack map, a timestamp out of range": b"\x81\xa1t\xc7\x0c\xff"
    + bytes(4)
    + (2**62).to_bytes(8, "big"),
    "msgpack map, deeper than msgpack reads": b"\x81\xa1a" + b"\x91" * 5000 + b"\x90",
    "msgpack map, deeper than the codec stores": b"\x81\xa1a" + b"\x91" * 1100 + b"\x90",
    "json, deeper than Python recurses": deeply_nested_json(100_000),
    "json, deeper than the codec stores": deeply_nested_json(1100),
    "json, an int too long to read": b'{"n": 1' + b"0" * 5000 + b"}",
}


@pytest.mark.parametrize("blob", HOSTILE_RECORDS.values(), ids=HOSTILE_RECORDS.keys())
def test_a_hostile_flask_session_record_is_not_taken_up(
    redis_client: redis.Redis, blob: bytes
) -> None:
    sid = new_token()
    redis_client.set(f"session:{sid}", blob)
    client = switched(new_app(redis_client), sid)

    response, seen = visit(client)

    assert seen == {}
    assert set_cookie_headers(response) == []
    assert stored_keys(redis_client) == []
    assert redis_client.get(f"session:{sid}") == blob  # left as it was


# msgspec writes no msgpack extension but the timestamp. Any other would be
# stored as it is and read back here as our codec's type of that code (code 2
# as Markup, HTML that templates no longer escape) or not at all (code 42).
@pytest.mark.parametrize(("code", "data"), [(42, b"?"), (2, b"<script>alert(1)</script>")])
def test_a_record_holding_a_msgpack_extension_is_not_taken_up(
    redis_client: redis.Redis, code: int, data: bytes
) -> None:
    blob = msgpack.packb({"_user_id": USER, "x": msgpack.ExtType(code, data)})
    sid = new_token()
    redis_client.set(f"session:{sid}", blob)
    client = switched(new_app(redis_client), sid)

    assert values_of(client) == {}
    assert redis_client.get(f"session:{sid}") == blob
    assert stored_keys(redis_client) == []


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_a_pickled_record_is_never_unpickled(
    redis_client: redis.Redis, unpickled: list[str], protocol: int
) -> None:
    blob = pickle.dumps({"_user_id": Canary()}, protocol=protocol)
    assert pickle.loads(blob) == {"_user_id": "unpickled"} and unpickled == ["unpickled"]
    unpickled.clear()
    sid = new_token()
    redis_client.set(f"session:{sid}", blob)

    assert values_of(switched(new_app(redis_client), sid)) == {}
    assert unpickled == []


ODD_COOKIES = [
    "",
    '""',
    ".",
    "..",
    "a.b.c",
    "A" * 256,
    "A" * 257,
    "A" * 20_000,
    "%00",
    "\\x00",
    '"\\"quoted\\""',
    "caf\xe9",
    "*",
    "session:*",
    "a b",
    new_token() + "*",
    "." + "A" * 5000 + ".",
    "eyJfdXNlcl9pZCI6IjQyIn0.ZmFrZQ.c2lnbmF0dXJl",  # the shape of a Flask cookie, unsigned
]


@pytest.mark.parametrize(
    "sources", [("flask-session",), ("cookie",), ("flask-session", "cookie")], ids=str
)
def test_odd_cookies_get_an_empty_session(
    redis_client: redis.Redis, sources: tuple[str, ...]
) -> None:
    app = new_app(redis_client, sources)
    client = app.test_client(use_cookies=False)
    for cookie in ODD_COOKIES:
        response = client.get("/values", headers={"Cookie": f"session={cookie}"})
        assert response.status_code == 200, cookie
        seen = cast("list[dict[str, Any]]", app.extensions["seen"])
        assert seen.pop() == {}, cookie
    assert redis_client.dbsize() == 0


# 8. A session too large to keep here.


def test_a_session_too_large_to_store_is_left_where_it_is(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    old = flask_session_app(redis_client)

    @old.get("/fill")
    def fill() -> str:
        session["cart"] = "x" * 1000
        return "ok"

    old_client = old.test_client()
    assert old_client.get("/login").status_code == 200
    assert old_client.get("/fill").status_code == 200
    sid = cookie_token(old_client)
    assert sid is not None
    blob = redis_client.get(f"session:{sid}")
    assert blob is not None and len(blob) > 1000
    app = new_app(redis_client, SCS_MAX_SIZE=200)

    with caplog.at_level(logging.WARNING, logger="flask_scs_redis"):
        response, seen = visit(switched(app, sid))

    assert seen == {}
    assert set_cookie_headers(response) == []
    assert redis_client.get(f"session:{sid}") == blob  # nothing lost
    assert stored_keys(redis_client) == []
    assert "a session of the old store was not taken up" in caplog.text
    assert "x" * 100 not in caplog.text  # never the values


# 9. Both sources at once.


@pytest.mark.parametrize(
    ("sources", "signer"),
    [(("flask-session", "cookie"), False), (("cookie", "flask-session"), True)],
    ids=["flask-session first", "cookie first, signed sids"],
)
def test_with_both_sources_each_kind_of_cookie_is_taken_up(
    redis_client: redis.Redis, count: Count, sources: tuple[str, ...], signer: bool
) -> None:
    """A signed sid has a dot, as a Flask cookie has: each source is tried in turn."""
    old_cookie = logged_in(flask_session_app(redis_client, SESSION_USE_SIGNER=signer))
    sid = flask_session_sid(old_cookie)
    cookie = logged_in(cookie_session_app(**TAGGED))
    app = new_app(redis_client, sources, SESSION_USE_SIGNER=signer)

    assert values_of(switched(app, old_cookie)) == LOGGED_IN
    with count() as counted:
        seen = values_of(switched(app, cookie))
    assert_same_types(seen, {"_user_id": USER, "cart": CART, "csrf_token": CSRF, **TAGGED})
    assert "get" not in counted.by_command  # a Flask cookie names no Flask-Session record
    assert redis_client.exists(f"session:{sid}") == 0
    assert len(stored_sessions(redis_client)) == 2


# 10. The user index.


def test_a_session_taken_up_is_indexed_under_its_user(redis_client: redis.Redis) -> None:
    sid = logged_in(flask_session_app(redis_client))
    app = new_app(redis_client)
    client = switched(app, sid)
    assert values_of(client) == LOGGED_IN

    mine = client.get("/mine").text
    assert mine.endswith("*") and "," not in mine  # one session, this one
    with app.app_context():
        (info,) = RedisSessions().user_sessions(USER)
    assert info.id == mine.removesuffix("*")

    assert client.get("/log-out-everywhere").text == "1"
    assert values_of(client) == {}
    assert client.get("/mine-now").text == "0"
    assert stored_sessions(redis_client) == []
    assert values_of(switched(app, sid)) == {}  # and the old cookie is no way back in


# Requests in parallel at the switch, over real HTTP.


def test_parallel_first_requests_each_take_the_session_up_and_keep_the_user(
    redis_client: redis.Redis,
) -> None:
    """A page's requests that all read the old session before any saves each take it up.

    Whichever answer the browser keeps last, its cookie names a session of the user.
    """
    sid = logged_in(flask_session_app(redis_client))
    app = new_app(redis_client)
    parallel = 6
    all_read = threading.Barrier(parallel, timeout=10)

    @app.get("/page")
    def page() -> str:
        user = session.get("_user_id")
        all_read.wait()  # every request has read before any saves
        return str(user)

    answers: list[tuple[int, list[tuple[str, str]], bytes]] = []
    with serving(app) as port:
        threads = [
            threading.Thread(
                target=lambda: answers.append(http_get(port, "/page", {"Cookie": f"session={sid}"}))
            )
            for _ in range(parallel)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
    assert [(status, body) for status, _, body in answers] == [(200, USER.encode())] * parallel
    tokens = {
        value.split(";")[0].removeprefix("session=")
        for _, headers, _ in answers
        for name, value in headers
        if name == "Set-Cookie"
    }
    assert len(tokens) == parallel  # a copy each, each under a token of ours
    for token in tokens:
        client = switched(app, token)
        assert values_of(client) == LOGGED_IN
    assert redis_client.exists(f"session:{sid}") == 0


@pytest.mark.cluster
def test_a_flask_session_record_is_taken_up_on_a_cluster(redis_client: redis.Redis) -> None:
    """The old record and ours land on different nodes: each step is one key.

    Flask-Session 0.8 takes no Cluster client (it falls back to a Redis on
    localhost), so its record is written by it on one server and copied,
    byte for byte, into the Cluster.
    """
    sid = logged_in(flask_session_app(redis_client))
    blob = redis_client.get(f"session:{sid}")
    assert blob is not None
    with RedisClusterServers(replicas_per_primary=0) as servers:
        cluster = servers.client()
        try:
            cluster.set(f"session:{sid}", blob, ex=3600)
            app = new_app(cluster)
            client = switched(app, sid)
            assert values_of(client) == LOGGED_IN
            assert cluster.exists(f"session:{sid}") == 0
            assert values_of(client) == LOGGED_IN  # now from our record, on its own node
            assert client.get("/logout").status_code == 200
            assert values_of(switched(app, sid)) == {}
        finally:
            cluster.close()


def test_flask_session_records_are_read_where_session_redis_still_points(
    redis_client: redis.Redis, fresh_redis_server: RedisServer
) -> None:
    """Flask-Session kept its records in another Redis: SESSION_REDIS, left set, says which."""
    sid = logged_in(flask_session_app(redis_client))
    ours = fresh_redis_server.client()
    try:
        elsewhere = new_app(ours)  # our store in another Redis, which holds no old record
        assert values_of(switched(elsewhere, sid)) == {}
        app = new_app(ours, SESSION_REDIS=redis_client)
        assert values_of(switched(app, sid)) == LOGGED_IN
        assert redis_client.exists(f"session:{sid}") == 0  # forgotten where it was
        assert len(stored_sessions(ours)) == 1
    finally:
        ours.close()
