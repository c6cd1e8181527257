"""Token rotation: a long-lived session gets a new token now and then, and the old one a grace.

The apps rotate tokens older than ``EVERY`` and give the old token ``GRACE``.
A few tests wait for a token to come due; the rest age its record
(:func:`aged`), which is what the passing of ``EVERY`` does to it. A test
waits out a grace at most once.
"""

from __future__ import annotations

import base64
import time
import warnings
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import redis
from flask import Flask
from werkzeug.test import Client, EnvironBuilder

from flask_scs_redis import (
    ConfigurationError,
    RedisSessions,
    RedisStore,
    Session,
    SessionAdmin,
    SessionMiddleware,
)
from flask_scs_redis.codec import EMPTY
from flask_scs_redis.record import CorruptRecordError, read_record, unpack_record
from flask_scs_redis.sealing import Sealer
from flask_scs_redis.testing.topologies import RedisClusterServers
from flask_scs_redis.tokens import followed, token_digest

from harness import PREFIX, Count, MakeClient, cookie_token, edit_record, set_cookie_headers
from views import build_flask_app, build_wsgi_app

#: How old a token gets before the next request rotates it, and how long the old one still works.
EVERY = 0.35
GRACE = 0.25
ROTATING: dict[str, Any] = {"rotate_every": EVERY, "rotate_grace": GRACE}
SECRET = "a-server-secret-of-at-least-32-bytes-0123"
MARKER = "MARKER-rotated-4d1e"


def key_of(token: str, prefix: str = PREFIX) -> str:
    return prefix + token_digest(token)


def blob_of(store_client: Any, token: str) -> bytes:
    """The record stored for ``token``, as bytes."""
    blob = store_client.get(key_of(token))
    assert isinstance(blob, bytes), "no record for the token"
    return blob


def token_of(client: Client) -> str:
    token = cookie_token(client)
    assert token is not None
    return token


def with_token(client: Client, token: str) -> Client:
    """A new browser of ``client``'s app whose cookie holds ``token``."""
    browser = Client(client.application)
    browser.set_cookie("session", token)
    return browser


def read_with(client: Client, token: str) -> str:
    """What ``/read`` shows to a browser that comes with ``token``."""
    response = with_token(client, token).get("/read")
    assert response.status_code == 200
    return response.text


def aged(store_client: Any, *browsers: Client) -> None:
    """Make the tokens of ``browsers`` as old as ``EVERY``: due for rotation, without waiting."""
    issued_ms = int((time.time() - EVERY) * 1000)
    for browser in browsers:
        edit_record(store_client, key_of(token_of(browser)), issued_ms=issued_ms)


def rotated(client: Client) -> tuple[str, str]:
    """Rotate ``client``'s token, which is due, with a read; return the old and the new token."""
    old = token_of(client)
    response = client.get("/read")
    assert response.text == "1"  # the values came along
    new = token_of(client)
    assert new != old
    (header,) = set_cookie_headers(response)
    assert header.startswith(f"session={new};")
    return old, new


def started(client: Client, *paths: str) -> Client:
    """``client`` after ``/incr`` (``n`` is 1) and ``paths``."""
    for path in ("/incr", *paths):
        assert client.get(path).status_code == 200
    return client


def admin_of(client: Client) -> SessionAdmin:
    app = client.application
    if isinstance(app, Flask):
        return RedisSessions().admin(app)
    assert isinstance(app, SessionMiddleware)
    return app.admin()


# When a token rotates, and what is stored.


def test_a_request_before_rotate_every_keeps_the_token(make_client: MakeClient) -> None:
    client = started(make_client(**ROTATING))
    token = token_of(client)
    assert set_cookie_headers(client.get("/read")) == []
    assert client.get("/incr").text == "2"
    assert token_of(client) == token


def test_a_request_after_rotate_every_moves_the_session_to_a_new_token(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = started(make_client(**ROTATING), "/set?key=user&value=alice")
    time.sleep(EVERY)
    old, new = rotated(client)
    assert read_record(blob_of(redis_client, new))[1] == {"n": 1, "user": "alice"}
    forwarding = unpack_record(blob_of(redis_client, old))
    assert forwarding.values == EMPTY
    assert forwarding.forward is not None and followed(old, forwarding.forward) == new
    assert 0 < redis_client.pttl(key_of(old)) <= GRACE * 1000
    response = client.get("/read")  # the new token is not due
    assert (response.text, set_cookie_headers(response)) == ("1", [])


def test_the_old_token_opens_the_session_during_the_grace_and_nothing_after(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = started(make_client(**ROTATING))
    aged(redis_client, client)
    old, new = rotated(client)
    stale = with_token(client, old)
    response = stale.get("/read")
    assert response.text == "1"
    assert set_cookie_headers(response)[0].startswith(f"session={new};")
    time.sleep(GRACE)
    assert read_with(client, old) == "None"  # a new, empty session
    assert client.get("/read").text == "1"


def test_a_write_with_the_old_token_during_the_grace_lands_in_the_new_record(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = started(make_client(**ROTATING))
    aged(redis_client, client)
    old, new = rotated(client)
    stale = with_token(client, old)
    assert stale.get("/incr").text == "2"
    assert token_of(stale) == new
    assert client.get("/read").text == "2"
    forwarding = unpack_record(blob_of(redis_client, old))
    assert forwarding.values == EMPTY
    assert forwarding.forward is not None and followed(old, forwarding.forward) == new


def test_rotate_grace_zero_ends_the_old_token_at_once(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = started(make_client(rotate_every=EVERY, rotate_grace=0))
    aged(redis_client, client)
    old, _ = rotated(client)
    assert redis_client.exists(key_of(old)) == 0
    assert read_with(client, old) == "None"
    assert client.get("/read").text == "1"


# Renewal, login and destroy leave no grace, and end a rotated session's both tokens.


@pytest.mark.parametrize("path", ["/renew", "/logout"])
def test_renew_and_destroy_leave_the_previous_token_no_grace_even_when_it_is_due(
    make_client: MakeClient, redis_client: redis.Redis, path: str
) -> None:
    client = started(make_client(**ROTATING))
    aged(redis_client, client)
    before = token_of(client)
    assert client.get(path).status_code == 200
    assert redis_client.exists(key_of(before)) == 0
    assert read_with(client, before) == "None"


@pytest.mark.parametrize("which", ["old", "new"])
def test_a_logout_with_either_token_during_the_grace_ends_both(
    make_client: MakeClient, redis_client: redis.Redis, which: str
) -> None:
    client = started(make_client(**ROTATING))
    aged(redis_client, client)
    old, new = rotated(client)
    assert with_token(client, old if which == "old" else new).get("/logout").status_code == 200
    assert read_with(client, old) == "None"
    assert read_with(client, new) == "None"


@pytest.mark.parametrize("which", ["old", "new"])
@pytest.mark.parametrize("path", ["/renew", "/login?user=x"])
def test_a_renewal_or_login_with_either_token_during_the_grace_ends_both(
    make_client: MakeClient, redis_client: redis.Redis, which: str, path: str
) -> None:
    client = started(make_client(**ROTATING))
    aged(redis_client, client)
    old, new = rotated(client)
    renewing = with_token(client, old if which == "old" else new)
    assert renewing.get(path).status_code == 200
    newest = token_of(renewing)
    assert newest not in (old, new)
    assert read_with(client, newest) == "1"
    assert read_with(client, old) == "None"
    assert read_with(client, new) == "None"


def test_a_rotation_keeps_the_absolute_deadline_and_a_renewal_moves_it(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = started(make_client(lifetime=60, **ROTATING))
    before = datetime.fromisoformat(client.get("/deadline").text)
    aged(redis_client, client)
    rotated(client)
    assert datetime.fromisoformat(client.get("/deadline").text) == before  # as stored now
    client.get("/renew")
    assert datetime.fromisoformat(client.get("/deadline").text) > before


# What it costs.


@pytest.mark.parametrize("path", ["/read", "/incr", "/none"])
def test_a_request_that_does_not_rotate_costs_what_it_costs_without_rotation(
    make_client: MakeClient, count: Count, path: str
) -> None:
    counts = []
    for options in ({}, ROTATING):
        client = started(make_client(**options))
        with count() as counted:
            client.get(path)
        counts.append((counted.by_command, counted.in_scripts))
    assert counts[0] == counts[1]
    assert counts[0][0] == {"/read": {"evalsha": 1}, "/incr": {"evalsha": 2}, "/none": {}}[path]


def test_a_rotating_read_costs_one_move_and_with_a_user_two_index_scripts(
    make_client: MakeClient, redis_client: redis.Redis, count: Count
) -> None:
    anonymous = started(make_client(**ROTATING))
    logged_in = started(Client(anonymous.application), "/set?key=_user_id&value=alice")
    aged(redis_client, anonymous, logged_in)
    with count() as counted:
        rotated(anonymous)
    assert counted.by_command == {"evalsha": 2}  # the read, then one move
    # which writes the new record and the forwarding record in the one script
    assert counted.in_scripts == {"get": 2, "pexpireat": 1, "set": 2}
    with count() as counted:
        rotated(logged_in)
    assert counted.by_command == {"evalsha": 4}  # and the index's join and confirm


def test_the_old_token_during_the_grace_costs_one_more_read(
    make_client: MakeClient, redis_client: redis.Redis, count: Count
) -> None:
    client = started(make_client(**ROTATING))
    aged(redis_client, client)
    old, _ = rotated(client)
    with count() as counted:
        assert read_with(client, old) == "1"
    assert counted.by_command == {"evalsha": 2}
    assert counted.in_scripts == {"get": 2, "pexpireat": 1}  # only the new record slides


# The user index, and encryption at rest.


def test_the_users_index_lists_the_rotated_session_under_its_new_id(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = started(make_client(**ROTATING), "/set?key=_user_id&value=alice")
    aged(redis_client, client)
    _, new = rotated(client)
    assert [info.id for info in admin_of(client).user_sessions("alice")] == [token_digest(new)]


def test_logging_out_everywhere_during_the_grace_ends_both_tokens(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = started(make_client(**ROTATING), "/set?key=_user_id&value=alice")
    aged(redis_client, client)
    old, new = rotated(client)
    assert admin_of(client).destroy_user_sessions("alice") == 1
    assert read_with(client, old) == "None"
    assert read_with(client, new) == "None"


def test_a_sealed_session_rotates_and_its_forwarding_record_reveals_nothing(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    options = {"encrypt": True, "encryption_keys": [SECRET], **ROTATING}
    client = started(make_client(**options), f"/set?key=secret&value={MARKER}")
    time.sleep(EVERY)  # a sealed record authenticates when its token was issued: no ageing
    old, new = rotated(client)
    sealer = Sealer([SECRET])
    blob = blob_of(redis_client, new)
    assert MARKER.encode() not in blob
    assert read_record(blob, sealer, new)[1] == {"n": 1, "secret": MARKER}
    with pytest.raises(CorruptRecordError):
        read_record(blob, sealer, old)  # sealed under the new token, not the old
    assert read_with(client, old) == "1"
    forwarding = blob_of(redis_client, old)
    raw_new = base64.urlsafe_b64decode(new + "=")
    for revealing in (new.encode(), raw_new, token_digest(new).encode(), MARKER.encode()):
        assert revealing not in forwarding


# The WSGI middleware: no rotation once the response has started.


def served(app: Any, token: str) -> tuple[list[tuple[str, str]], bytes]:
    """Serve a request with ``token`` as a PEP 3333 server would; return its headers and body."""
    environ = EnvironBuilder(headers=[("Cookie", f"session={token}")]).get_environ()
    sent: list[tuple[str, str]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        sent.extend(headers)
        return lambda data: None

    body = app(environ, start_response)
    try:
        return sent, b"".join(body)
    finally:
        body.close()


def test_a_session_first_used_in_the_body_is_not_rotated(redis_client: redis.Redis) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        session: Session = environ["scs.session"]
        if environ["PATH_INFO"] == "/start":
            session["n"] = 1
        start_response("200 OK", [])
        yield repr(session.get("n")).encode()  # first used after start_response

    middleware = SessionMiddleware(app, RedisStore(redis_client), **ROTATING)
    browser = Client(middleware)
    assert browser.get("/start").text == "1"
    token = token_of(browser)
    aged(redis_client, browser)
    headers, body = served(middleware, token)
    assert body == b"1"
    assert [name for name, _ in headers if name.lower() == "set-cookie"] == []
    time.sleep(GRACE)
    assert served(middleware, token)[1] == b"1"
    assert unpack_record(blob_of(redis_client, token)).forward is None


# Settings.


@pytest.mark.parametrize(("every", "grace"), [(10, 10), (10, 30)])
def test_a_grace_as_long_as_the_period_is_refused_naming_both(
    redis_client: redis.Redis, every: int, grace: int
) -> None:
    with pytest.raises(
        ConfigurationError, match="SCS_ROTATE_GRACE must be shorter than SCS_ROTATE_EVERY"
    ):
        build_flask_app(redis_client, SCS_ROTATE_EVERY=every, SCS_ROTATE_GRACE=grace)
    with pytest.raises(ConfigurationError, match="rotate_grace must be shorter than rotate_every"):
        build_wsgi_app(redis_client, rotate_every=every, rotate_grace=grace)


@pytest.mark.parametrize("setting", ["SCS_ROTATE_EVERY", "SCS_ROTATE_GRACE"])
@pytest.mark.parametrize("value", [-1, "abc"])
def test_an_invalid_rotation_setting_is_refused_naming_it(
    redis_client: redis.Redis, setting: str, value: Any
) -> None:
    with pytest.raises(ConfigurationError, match=f"^{setting} must be"):
        build_flask_app(redis_client, **{setting: value})
    name = setting[len("SCS_") :].lower()
    with pytest.raises(ConfigurationError, match=f"^{name} must be"):
        build_wsgi_app(redis_client, **{name: value})


def test_the_rotation_settings_are_known_keys(redis_client: redis.Redis) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_flask_app(redis_client, SCS_ROTATE_EVERY=60, SCS_ROTATE_GRACE=5)
    assert [str(warning.message) for warning in caught] == []


# Redis Cluster: the old and the new key on different nodes.


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServers]:
    with RedisClusterServers(primaries=3, replicas_per_primary=0) as servers:
        yield servers


def node_of(cluster_client: Any, token: str) -> Any:
    return cluster_client.get_node_from_key(key_of(token))


def rotated_across_nodes(client: Any) -> tuple[Client, str, str]:
    """A session rotated to a key on another node than its old one (on one server: any)."""
    app = build_flask_app(client, **ROTATING)
    for _ in range(20):
        browser = started(app.test_client())
        aged(client, browser)
        old, new = rotated(browser)
        if not isinstance(client, redis.RedisCluster):
            return browser, old, new
        if node_of(client, old) != node_of(client, new):
            return browser, old, new
    raise AssertionError("no rotation crossed nodes")


def test_a_rotation_across_nodes_works_as_on_one_server(any_client: Any) -> None:
    browser, old, new = rotated_across_nodes(any_client)
    assert read_with(browser, old) == "1"
    assert with_token(browser, old).get("/incr").text == "2"
    assert browser.get("/read").text == "2"
    leaving, left, current = rotated_across_nodes(any_client)
    assert with_token(leaving, left).get("/logout").status_code == 200
    assert read_with(leaving, current) == "None"
    assert read_with(leaving, left) == "None"
    time.sleep(GRACE)
    assert read_with(browser, old) == "None"
    assert read_with(browser, new) == "2"
