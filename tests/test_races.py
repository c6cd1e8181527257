"""Races the README promises to survive, played out step by step on a real server.

A purge, a second request or an idle timeout is made to fall exactly between
two steps of a save. The store used here is a real :class:`RedisStore` whose
writes call back after they are done, so the test can act at that moment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import flask
import pytest
import redis
from flask import Flask
from werkzeug.test import Client

from flask_scs_redis import (
    Outcome,
    RedisSessionInterface,
    RedisStore,
    SessionAdmin,
    SessionConflictError,
    SessionEngine,
    SessionMiddleware,
)
from flask_scs_redis.record import pack_record, unpack_record
from flask_scs_redis.session import Session
from flask_scs_redis.testing.topologies import RedisClusterServers

from harness import edit_record, stored_sessions

DAY = timedelta(days=1)


class SteppingStore(RedisStore):
    """A store that calls ``after_write`` once a record write (create, replace, move) is done."""

    after_write: Callable[[str], None] | None = None

    def _stepped(self, step: str, result: Any) -> Any:
        hook, self.after_write = self.after_write, None
        if hook is not None:
            hook(step)
        return result

    def create(self, *args: Any, **kwargs: Any) -> bool:
        return self._stepped("create", super().create(*args, **kwargs))  # type: ignore[no-any-return]

    def replace(self, *args: Any, **kwargs: Any) -> Any:
        return self._stepped("replace", super().replace(*args, **kwargs))

    def move(self, *args: Any, **kwargs: Any) -> Any:
        return self._stepped("move", super().move(*args, **kwargs))


def open_session(engine: SessionEngine, token: str | None) -> Session:
    return engine.open(token, lifetime=DAY)


def log_in(engine: SessionEngine, user: str, token: str | None = None) -> str:
    session = open_session(engine, token)
    session["_user_id"] = user
    session["cart"] = ["apple"]
    engine.commit(session)
    assert session.token is not None
    return session.token


def live_sessions_of(redis_client: redis.Redis, user: str) -> list[dict[Any, Any]]:
    return [values for values in stored_sessions(redis_client) if values.get("_user_id") == user]


# How a request puts alice into a session: renewing her own, logging in to an
# anonymous one (renewed on login, or kept with renew_on_login off), or a
# first request that logs in at once.
WRITES = ["renew", "login-renewed", "login-kept", "first-login"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServers]:
    with RedisClusterServers(replicas_per_primary=0) as servers:
        yield servers


@pytest.mark.parametrize("write", WRITES)
@pytest.mark.parametrize("purge_at", ["before", "after"])
def test_a_purge_that_overlaps_a_write_leaves_no_live_session(
    any_client: Any, write: str, purge_at: str
) -> None:
    redis_client = any_client
    store = SteppingStore(redis_client)
    engine = SessionEngine(store, renew_on_login=write != "login-kept")
    admin = SessionAdmin(store)
    other_device = log_in(engine, "alice")
    if write == "renew":
        token: str | None = log_in(engine, "alice")
    elif write == "first-login":
        token = None
    else:
        anonymous = open_session(engine, None)
        anonymous["cart"] = ["pear"]
        engine.commit(anonymous)
        token = anonymous.token
    session = open_session(engine, token)
    if write == "renew":
        session.renew()
        session["step"] = 1
    else:
        session["_user_id"] = "alice"

    if purge_at == "before":
        admin.destroy_user_sessions("alice")
    else:  # between the write of the record and the end of the save
        store.after_write = lambda step: admin.destroy_user_sessions("alice")
    engine.commit(session)

    assert open_session(engine, other_device).get("_user_id") is None
    if purge_at == "before" and write != "renew":
        # A login that starts after the purge is a new session, and lives.
        assert len(live_sessions_of(redis_client, "alice")) == 1
        assert len(admin.user_sessions("alice")) == 1
    else:
        assert live_sessions_of(redis_client, "alice") == []
        assert admin.user_sessions("alice") == []


def test_a_login_after_a_completed_purge_lives(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)
    engine, admin = SessionEngine(store), SessionAdmin(store)
    log_in(engine, "alice")
    admin.destroy_user_sessions("alice")
    token = log_in(engine, "alice")
    assert open_session(engine, token)["_user_id"] == "alice"
    assert len(admin.user_sessions("alice")) == 1


@pytest.mark.parametrize("first", ["emptying", "adding"])
def test_emptying_a_session_does_not_swallow_a_concurrent_change(
    redis_client: redis.Redis, first: str
) -> None:
    """A page pops the only flash message while an XHR adds to the cart: both land."""
    engine = SessionEngine(RedisStore(redis_client))
    start = open_session(engine, None)
    start["_flashes"] = [["message", "Saved"]]
    engine.commit(start)
    page, xhr = open_session(engine, start.token), open_session(engine, start.token)
    page.pop("_flashes")
    xhr["cart"] = ["apple"]
    first_save, second_save = (page, xhr) if first == "emptying" else (xhr, page)
    engine.commit(first_save)
    outcome = engine.commit(second_save)

    assert outcome in (Outcome.SAVED, Outcome.ENDED)
    assert open_session(engine, start.token).get("cart") == ["apple"]
    assert "_flashes" not in open_session(engine, start.token)


def test_an_emptied_session_ends_its_cookie_and_its_record_soon(
    redis_client: redis.Redis,
) -> None:
    engine = SessionEngine(RedisStore(redis_client))
    session = open_session(engine, None)
    session["_flashes"] = ["hi"]
    engine.commit(session)
    again = open_session(engine, session.token)
    again.clear()
    assert engine.commit(again) is Outcome.ENDED
    (key,) = redis_client.keys("scs:session:*")
    assert 0 < redis_client.pttl(key) <= 60_000
    assert SessionAdmin(engine.store).count() == 0
    # A later request with the old cookie reads it empty and writes nothing.
    reader = open_session(engine, session.token)
    assert dict(reader) == {}
    assert engine.commit(reader) is Outcome.EMPTY


def test_the_limit_per_user_counts_only_live_sessions(redis_client: redis.Redis) -> None:
    """The phone went idle; the laptop is in use; a third login must not end the laptop."""
    store = RedisStore(redis_client)
    engine = SessionEngine(store, idle_timeout=2, max_sessions_per_user=2)
    laptop = log_in(engine, "alice")
    phone = log_in(engine, "alice")  # its deadline comes after the laptop's
    for _ in range(5):  # keep the laptop in use while the phone idles out
        time.sleep(0.5)
        assert open_session(engine, laptop)["_user_id"] == "alice"
    assert open_session(engine, phone).get("_user_id") is None  # idle: ended
    desktop = log_in(engine, "alice")
    assert open_session(engine, laptop).get("_user_id") == "alice"
    assert open_session(engine, desktop).get("_user_id") == "alice"
    assert len(SessionAdmin(store).user_sessions("alice")) == 2
    # A fourth login now ends the oldest live one: the laptop.
    log_in(engine, "alice")
    assert open_session(engine, laptop).get("_user_id") is None
    assert len(SessionAdmin(store).user_sessions("alice")) == 2


def idle_session(
    redis_client: redis.Redis, deadline_in_ms: int
) -> tuple[SessionEngine, str, bytes]:
    """A stored session under a 60 s idle timeout whose deadline is ``deadline_in_ms`` away.

    Return the engine, the token and the record's key.
    """
    engine = SessionEngine(RedisStore(redis_client), idle_timeout=60)
    session = open_session(engine, None)
    session["n"] = 1
    engine.commit(session)
    assert session.token is not None
    (key,) = redis_client.keys("scs:session:*")
    edit_record(redis_client, key, deadline_ms=int(time.time() * 1000) + deadline_in_ms)
    return engine, session.token, key


def test_a_read_never_slides_the_expiry_past_the_deadline(redis_client: redis.Redis) -> None:
    engine, token, key = idle_session(redis_client, 2_000)
    assert open_session(engine, token)["n"] == 1
    assert 0 < redis_client.pttl(key) <= 2_000  # the deadline, not now + 60 s


def test_a_cookie_sent_past_the_deadline_keeps_nothing_alive(redis_client: redis.Redis) -> None:
    engine, token, key = idle_session(redis_client, -1)
    store = engine.store
    redis_client.pexpire(key, 1_000)  # as a record written by an older version might be
    for _ in range(3):
        assert dict(open_session(engine, token)) == {}
    assert redis_client.pttl(key) <= 1_000
    assert SessionAdmin(store).count() == 0
    assert list(SessionAdmin(store).iter_sessions()) == []


class ContestedStore(RedisStore):
    """A store where another writer rewrites the record just before each of our writes."""

    def replace(self, key: str, record: bytes, expiry_ms: int, *, expected: bytes) -> Any:
        current = unpack_record(self.client.get(key))
        bumped = current._replace(revision=current.revision + 1)
        self.client.set(key, pack_record(bumped)[0], keepttl=True)
        return super().replace(key, record, expiry_ms, expected=expected)


@pytest.mark.parametrize("adapter", ["flask", "wsgi"])
def test_a_save_that_never_lands_is_an_error_not_a_success(
    adapter: str, redis_client: redis.Redis
) -> None:
    store = ContestedStore(redis_client)
    engine = SessionEngine(store, min_attempts=4)
    session = engine.open(None, lifetime=DAY)
    session["n"] = 1
    engine.commit(session)

    def increment(environ: Any, start_response: Any) -> Any:
        values = environ["scs.session"]
        values["n"] += 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    if adapter == "flask":
        app = Flask(__name__)
        app.session_interface = RedisSessionInterface(engine)
        app.add_url_rule("/", view_func=lambda: str(flask.session.__setitem__("n", 2)))
        response = app.test_client(use_cookies=False).get(
            "/", headers={"Cookie": f"session={session.token}"}
        )
        assert response.status_code == 500
        assert response.headers.getlist("Set-Cookie") == []
    else:
        middleware = SessionMiddleware(increment, store)
        middleware.engine = engine
        client = Client(middleware, use_cookies=False)
        with pytest.raises(SessionConflictError):
            client.get("/", headers={"Cookie": f"session={session.token}"})
    assert open_session(engine, session.token)["n"] == 1


@pytest.mark.parametrize("change", ["append", "renew"])
def test_a_session_ended_during_a_request_is_not_reported_as_saved(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture, change: str
) -> None:
    """The middleware commits once more at close(); a vanished session is not retried."""
    store = RedisStore(redis_client)
    engine = SessionEngine(store)
    token = log_in(engine, "alice")

    def purged_meanwhile(environ: Any, start_response: Any) -> Any:
        values = environ["scs.session"]
        values["cart"].append("pear")
        if change == "renew":
            values.renew()
        SessionAdmin(store).destroy_user_sessions("alice")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    client = Client(SessionMiddleware(purged_meanwhile, store), use_cookies=False)
    with caplog.at_level(logging.INFO, "flask_scs_redis"):
        response = client.get("/", headers={"Cookie": f"session={token}"})
        assert response.get_data() == b"ok"
        response.close()  # where the middleware commits a second time
    assert response.status_code == 200
    assert "was saved" not in caplog.text
    assert caplog.text.count("not written back") <= 1  # one commit, not two
    assert live_sessions_of(redis_client, "alice") == []
