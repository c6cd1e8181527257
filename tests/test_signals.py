"""Signals for audit logs: each session created, renewed or destroyed is announced once.

A recorder connected to the three signals sees what an audit log would: the
sender, the session's id (never its token), its user and the reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, NamedTuple

import pytest
import redis
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from werkzeug.test import Client

from flask_scs_redis import (
    Outcome,
    RedisSessions,
    RedisStore,
    SessionAdmin,
    SessionEngine,
    SessionMiddleware,
)
from flask_scs_redis.signals import session_created, session_destroyed, session_renewed
from flask_scs_redis.testing import RedisServer
from flask_scs_redis.tokens import token_digest

from harness import PREFIX, ROOT, Count, MakeApp, MakeClient, cookie_token, edit_record
from views import build_flask_app, build_wsgi_app

SIGNALS = {"created": session_created, "renewed": session_renewed, "destroyed": session_destroyed}
DAY = timedelta(days=1)


class Event(NamedTuple):
    signal: str
    sender: Any
    arguments: dict[str, Any]


@contextmanager
def recording(*others: Callable[..., None]) -> Iterator[list[Event]]:
    """Record every signal sent while inside, with ``others`` connected too; then disconnect."""
    events: list[Event] = []
    receivers = [(signal, other) for signal in SIGNALS.values() for other in others]
    for name, signal in SIGNALS.items():

        def receive(sender: Any, name: str = name, **arguments: Any) -> None:
            events.append(Event(name, sender, arguments))

        receivers.append((signal, receive))
    for signal, receiver in receivers:
        signal.connect(receiver, weak=False)
    try:
        yield events
    finally:
        for signal, receiver in receivers:
            signal.disconnect(receiver)


@pytest.fixture
def events() -> Iterator[list[Event]]:
    with recording() as recorded:
        yield recorded


def sent(events: list[Event], sender: Any) -> list[tuple[str, dict[str, Any]]]:
    """What ``sender`` announced, in order; signals are global, so others are left out."""
    return [(event.signal, event.arguments) for event in events if event.sender is sender]


def id_of(token: str | None) -> str:
    """The id a session with ``token`` has: base64url of its SHA-256, as the store names it."""
    assert token is not None
    return token_digest(token)


def announced(reason: str, token: str | None, user: str | None = None) -> dict[str, Any]:
    return {"session_id": id_of(token), "user": user, "reason": reason}


def renewed(reason: str, token: str | None, before: str | None, user: str | None = None) -> Any:
    return ("renewed", {**announced(reason, token, user), "previous_id": id_of(before)})


def admin_of(application: Any) -> SessionAdmin:
    """The admin an adapter offers: the middleware's, or the extension's for the app."""
    if isinstance(application, SessionMiddleware):
        return application.admin()
    return RedisSessions().admin(application)


def backdate(redis_client: redis.Redis, token: str | None, hashed: bool = True) -> None:
    """Make the token of a session a minute old, so that ``rotate_every=30`` rotates it."""
    key = PREFIX + (id_of(token) if hashed else str(token))
    edit_record(redis_client, key, issued_ms=int(time.time() * 1000) - 60_000)


def started(engine: SessionEngine, **values: Any) -> str:
    """Commit a new session of ``engine`` holding ``values``; return its token."""
    session = engine.open(None, lifetime=DAY)
    for name, value in values.items():
        session[name] = value
    engine.commit(session)
    assert session.token is not None
    return session.token


def logged_in(client: Client, user: str) -> str | None:
    assert client.get(f"/set?key=_user_id&value={user}").status_code == 200
    return cookie_token(client)


# Each signal and reason, once, with the session's id, its user and the sender.


def test_a_first_save_announces_a_new_session_and_reads_and_writes_nothing(
    make_client: MakeClient, events: list[Event], redis_client: redis.Redis
) -> None:
    client = make_client()
    token = logged_in(client, "alice")
    assert sent(events, client.application) == [("created", announced("new", token, "alice"))]
    assert redis_client.exists(PREFIX + id_of(token)) == 1  # the id names the record
    for path in ("/read", "/incr", "/incr", "/none"):
        assert client.get(path).status_code == 200
    assert len(events) == 1
    assert cookie_token(client) == token


def test_a_session_taken_up_from_signed_cookies_is_announced_as_migrated(
    make_app: MakeApp, events: list[Event]
) -> None:
    old_app = Flask(__name__)
    old_app.secret_key = "shared"
    serializer = SecureCookieSessionInterface().get_signing_serializer(old_app)
    assert serializer is not None
    old_cookie = serializer.dumps({"_user_id": "alice", "cart": ["apple"]})
    app = make_app(SECRET_KEY="shared", SCS_MIGRATE_FROM=["cookie"])
    client = app.test_client()
    client.set_cookie("session", old_cookie)
    assert client.get("/read").status_code == 200
    token = cookie_token(client)
    assert token != old_cookie
    assert sent(events, app) == [("created", announced("migrated", token, "alice"))]


def test_renew_is_announced_with_the_id_before(
    make_client: MakeClient, events: list[Event], redis_client: redis.Redis
) -> None:
    client = make_client()
    client.get("/incr")
    before = cookie_token(client)
    assert client.get("/renew").status_code == 200
    after = cookie_token(client)
    assert sent(events, client.application)[1:] == [renewed("renew", after, before)]
    assert redis_client.exists(PREFIX + id_of(before)) == 0
    assert redis_client.exists(PREFIX + id_of(after)) == 1


def test_a_new_user_in_a_stored_session_is_announced_as_a_login(
    make_client: MakeClient, events: list[Event]
) -> None:
    client = make_client()
    client.get("/incr")
    anonymous = cookie_token(client)
    alice = logged_in(client, "alice")  # renewed by SCS_RENEW_ON_LOGIN
    bob = logged_in(client, "bob")
    assert logged_in(client, "bob") == bob  # the same user again: no renewal
    assert sent(events, client.application)[1:] == [
        renewed("login", alice, anonymous, "alice"),
        renewed("login", bob, alice, "bob"),
    ]


def test_an_explicit_renew_that_brings_a_user_is_a_login_and_one_that_keeps_it_is_not(
    make_client: MakeClient, events: list[Event]
) -> None:
    client = make_client(user_key="user", renew_on_login=False)
    client.get("/incr")
    tokens = [cookie_token(client)]
    for _ in range(2):
        client.get("/login?user=carol")  # session.renew(), then session["user"] = "carol"
        tokens.append(cookie_token(client))
    assert sent(events, client.application)[1:] == [
        renewed("login", tokens[1], tokens[0], "carol"),
        renewed("renew", tokens[2], tokens[1], "carol"),
    ]


def test_a_rotation_is_announced_with_the_id_before(
    make_client: MakeClient, events: list[Event], redis_client: redis.Redis
) -> None:
    client = make_client(rotate_every=30)
    before = logged_in(client, "alice")
    backdate(redis_client, before)
    assert client.get("/read").text == "None"
    after = cookie_token(client)
    assert after != before
    assert sent(events, client.application)[1:] == [renewed("rotation", after, before, "alice")]


def test_destroy_is_announced_once(make_client: MakeClient, events: list[Event]) -> None:
    client = make_client()
    token = logged_in(client, "alice")
    copy = Client(client.application)  # another browser holding the same cookie
    copy.set_cookie("session", token or "")
    assert client.get("/logout").status_code == 200
    assert copy.get("/logout").status_code == 200  # already gone: nothing more to announce
    assert client.get("/logout").status_code == 200  # no session at all
    assert sent(events, client.application)[1:] == [
        ("destroyed", announced("destroy", token, "alice"))
    ]


def test_clearing_a_stored_session_is_announced_as_emptied(
    make_client: MakeClient, events: list[Event]
) -> None:
    client = make_client()
    client.get("/clear")  # a new session, never stored: nothing ends
    token = logged_in(client, "alice")
    assert client.get("/clear").status_code == 200
    assert sent(events, client.application) == [
        ("created", announced("new", token, "alice")),
        ("destroyed", announced("emptied", token, "alice")),
    ]


def test_log_out_everywhere_announces_each_session_it_ends(
    app: Flask, events: list[Event], redis_client: redis.Redis
) -> None:
    laptop, phone, gone = app.test_client(), app.test_client(), app.test_client()
    alices = [logged_in(laptop, "alice"), logged_in(phone, "alice"), logged_in(gone, "alice")]
    logged_in(app.test_client(), "bob")
    redis_client.delete(PREFIX + id_of(alices[2]))  # as if expired: still in the index
    del events[:]
    assert laptop.get("/log-out-everywhere").text == "2"
    ended = sorted(sent(events, app), key=lambda event: str(event[1]["session_id"]))
    expected = [("destroyed", announced("logout-everywhere", t, "alice")) for t in alices[:2]]
    assert ended == sorted(expected, key=lambda event: str(event[1]["session_id"]))


def test_the_adapters_admin_announces_as_the_app_or_the_middleware(
    adapter: str, make_client: MakeClient, events: list[Event]
) -> None:
    laptop = make_client()
    application = laptop.application
    first, second = logged_in(laptop, "alice"), logged_in(Client(application), "alice")
    admin = admin_of(application)
    del events[:]
    assert admin.destroy(id_of(first))
    assert not admin.destroy(id_of(first))  # already gone: nothing
    assert admin.destroy_user_sessions("alice") == 1
    assert sent(events, application) == [
        ("destroyed", announced("admin", first, "alice")),
        ("destroyed", announced("logout-everywhere", second, "alice")),
    ]
    assert len(events) == 2


def test_engines_and_admins_made_by_hand_announce_as_their_sender_or_themselves(
    redis_client: redis.Redis, events: list[Event]
) -> None:
    store, auditor = RedisStore(redis_client), object()
    engine = SessionEngine(store)
    tokens = [started(engine, _user_id="alice"), started(SessionEngine(store, sender=auditor), n=1)]
    assert sent(events, engine) == [("created", announced("new", tokens[0], "alice"))]
    assert sent(events, auditor) == [("created", announced("new", tokens[1]))]
    del events[:]
    plain = SessionAdmin(store)
    assert SessionAdmin(store, sender=auditor).destroy(id_of(tokens[0]))
    assert plain.destroy(id_of(tokens[1]))
    assert sent(events, auditor) == [("destroyed", announced("admin", tokens[0], "alice"))]
    assert sent(events, plain) == [("destroyed", announced("admin", tokens[1]))]


def test_the_cli_announces_what_it_deletes_and_purges(app: Flask, events: list[Event]) -> None:
    tokens = [logged_in(app.test_client(), user) for user in ("alice", "alice", "bob")]

    def run(*args: str) -> None:
        assert app.test_cli_runner().invoke(args=["scs", *args]).exit_code == 0

    del events[:]
    run("delete", id_of(tokens[0]))
    run("purge", "--user", "alice")
    assert sent(events, app) == [
        ("destroyed", announced("admin", tokens[0], "alice")),
        ("destroyed", announced("logout-everywhere", tokens[1], "alice")),
    ]
    run("purge", "--all", "--yes")
    assert [arguments["session_id"] for _, arguments in sent(events, app)[2:]] == [id_of(tokens[2])]


def test_a_whole_store_purge_announces_each_session_with_its_user(
    make_client: MakeClient, events: list[Event]
) -> None:
    client = make_client()
    token = logged_in(client, "bob")
    assert list(admin_of(client.application).destroy_all()) == [1]
    assert sent(events, client.application)[1:] == [("destroyed", announced("admin", token, "bob"))]


@pytest.mark.parametrize("ending", ["logout", "admin", "purge"])
def test_an_emptied_session_is_not_announced_as_ended_again(
    make_client: MakeClient, events: list[Event], ending: str
) -> None:
    client = make_client()
    token = logged_in(client, "alice")
    copy = Client(client.application)  # another browser holding the same cookie
    copy.set_cookie("session", token or "")
    client.get("/clear")
    admin = admin_of(client.application)
    if ending == "logout":
        assert copy.get("/logout").status_code == 200
    elif ending == "admin":
        admin.destroy(id_of(token))
    else:
        list(admin.destroy_all())
    assert sent(events, client.application)[1:] == [
        ("destroyed", announced("emptied", token, "alice"))
    ]


def test_a_whole_store_purge_announces_a_rotated_session_once(
    make_client: MakeClient, events: list[Event], redis_client: redis.Redis
) -> None:
    client = make_client(rotate_every=30)
    backdate(redis_client, logged_in(client, "alice"))
    client.get("/read")  # rotated: the old token forwards to the new for its grace
    list(admin_of(client.application).destroy_all())
    ended = [arguments["session_id"] for _, arguments in sent(events, client.application)[2:]]
    assert ended == [id_of(cookie_token(client))]


def test_sessions_past_the_per_user_limit_are_announced_as_evicted(
    make_client: MakeClient, events: list[Event]
) -> None:
    laptop = make_client(max_sessions_per_user=1)
    phone = Client(laptop.application)
    oldest = logged_in(laptop, "alice")
    newest = logged_in(phone, "alice")
    assert sent(events, laptop.application)[1:] == [
        ("destroyed", announced("evicted", oldest, "alice")),
        ("created", announced("new", newest, "alice")),
    ]


def test_an_unreadable_record_is_announced_as_corrupt_when_found(
    make_client: MakeClient, events: list[Event], redis_client: redis.Redis
) -> None:
    client = make_client()
    token = logged_in(client, "alice")
    redis_client.set(PREFIX + id_of(token), b"\xc1 not a record")
    assert client.get("/read").text == "None"
    assert sent(events, client.application)[1:] == [("destroyed", announced("corrupt", token))]
    assert redis_client.exists(PREFIX + id_of(token)) == 0


# Ids, never tokens.


@pytest.mark.parametrize("hashed", [True, False], ids=["hashed", "unhashed"])
def test_no_signal_of_a_whole_lifecycle_carries_a_token(
    make_client: MakeClient, events: list[Event], redis_client: redis.Redis, hashed: bool
) -> None:
    client = make_client(rotate_every=30, max_sessions_per_user=1, hash_tokens=hashed)
    tokens: list[str | None] = []
    for path in ("/incr", "/renew", "/set?key=_user_id&value=alice", "/clear", "/incr"):
        client.get(path)
        tokens.append(cookie_token(client))
    backdate(redis_client, tokens[-1], hashed)
    for path in ("/read", "/set?key=_user_id&value=bob", "/logout"):
        client.get(path)
        tokens.append(cookie_token(client))
    other = Client(client.application)
    tokens += [logged_in(other, "carol"), logged_in(Client(client.application), "carol")]
    reasons = [arguments["reason"] for _, arguments in sent(events, client.application)]
    assert reasons == [
        "new", "renew", "login", "emptied", "new", "rotation", "login", "destroy", "new",
        "evicted", "new",
    ]  # fmt: skip
    secrets = {token for token in tokens if token is not None}
    assert len(secrets) == 8
    assert {arguments["session_id"] for _, arguments in sent(events, client.application)} == {
        id_of(token) for token in secrets
    }  # every id is the hash of a token this client held
    for event in events:
        shown = [repr(event.sender), *map(str, event.arguments.values())]
        assert not [text for text in shown for secret in secrets if secret in text]


# A receiver that raises.


def test_a_receiver_that_raises_is_logged_and_the_request_and_the_rest_go_on(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def failing(sender: Any, **arguments: Any) -> None:
        calls.append(arguments["reason"])
        raise RuntimeError("the audit log is down")

    def failing_too(sender: Any, **arguments: Any) -> None:
        failing(sender, **arguments)

    client = make_client()
    # Two that raise: whatever the order, one is called after a failure.
    with recording(failing, failing_too) as events, caplog.at_level(logging.ERROR):
        assert client.get("/set?key=n&value=kept").status_code == 200
        token = cookie_token(client)
        assert client.get("/read").text == "'kept'"  # saved
        assert client.get("/logout").status_code == 200
        assert client.get("/read").text == "None"  # and ended
    assert sorted(calls) == ["destroy", "destroy", "new", "new"]
    assert sent(events, client.application) == [
        ("created", announced("new", token)),
        ("destroyed", announced("destroy", token)),
    ]
    failures = [r.exc_info for r in caplog.records if r.name == "flask_scs_redis" and r.exc_info]
    assert [str(info[1]) for info in failures] == ["the audit log is down"] * 4


# Only what the store confirmed.


def test_a_save_the_store_refuses_announces_nothing(
    adapter: str, fresh_redis_server: RedisServer, events: list[Event]
) -> None:
    redis_client = fresh_redis_server.client()
    build = build_flask_app if adapter == "flask" else build_wsgi_app
    application = build(redis_client)
    client = application.test_client() if isinstance(application, Flask) else Client(application)
    client.get("/incr")
    redis_client.config_set("maxmemory-policy", "noeviction")
    redis_client.config_set("maxmemory", 1)  # every write is refused
    assert Client(application).get("/incr").status_code == 503
    assert client.get("/renew").status_code == 503
    assert client.get("/set?key=_user_id&value=alice").status_code == 503
    redis_client.config_set("maxmemory", 0)
    assert [name for name, _ in sent(events, application)] == ["created"]
    redis_client.close()


def test_concurrent_writers_to_one_session_announce_nothing(
    redis_client: redis.Redis, events: list[Event]
) -> None:
    engine = SessionEngine(RedisStore(redis_client))
    token = started(engine, n=0)
    one, two = (engine.open(token, lifetime=DAY) for _ in range(2))
    one["a"], two["b"] = 1, 2  # both read the same revision
    assert [engine.commit(one), engine.commit(two)] == [Outcome.SAVED, Outcome.SAVED]
    assert dict(engine.open(token, lifetime=DAY)) == {"n": 0, "a": 1, "b": 2}
    assert sent(events, engine) == [("created", announced("new", token))]


def test_a_renewal_whose_session_was_destroyed_meanwhile_announces_nothing(
    redis_client: redis.Redis, events: list[Event]
) -> None:
    engine = SessionEngine(RedisStore(redis_client))
    token = started(engine, _user_id="alice")
    renewing, ending = (engine.open(token, lifetime=DAY) for _ in range(2))
    renewing.renew()
    renewing["step"] = 1
    ending.destroy()
    engine.commit(ending)
    assert engine.commit(renewing) is Outcome.VANISHED
    assert sent(events, engine) == [
        ("created", announced("new", token, "alice")),
        ("destroyed", announced("destroy", token, "alice")),
    ]


# Without receivers.


def test_without_receivers_nothing_fails_and_no_command_is_added(
    make_client: MakeClient, count: Count
) -> None:
    def lifecycle() -> dict[str, int]:
        client = make_client()
        with count() as counted:
            for path in ("/incr", "/renew", "/set?key=_user_id&value=a", "/clear", "/logout"):
                assert client.get(path).status_code == 200
        return dict(counted.by_command)

    unheard = lifecycle()
    with recording() as events:
        heard = lifecycle()
    assert len(events) == 4
    assert unheard == heard == {"set": 1, "evalsha": 8, "zrem": 1}  # the budget before signals


# The README's recipe.


def test_the_readmes_audit_recipe_logs_each_event(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Audit events") :]
    recipe = section[section.index("```python\n") + 10 : section.index("```\n", 10)]
    namespace: dict[str, Any] = {}
    caplog.set_level(logging.INFO, "audit")
    exec(recipe, namespace)  # it connects its receivers for good (weak=False)
    try:
        client = make_client()
        client.get("/set?key=_user_id&value=alice")
        client.get("/renew")
        client.get("/logout")
        lines = [r.getMessage() for r in caplog.records if r.name == "audit"]
        assert [line.split(" id=")[0] for line in lines] == [
            "session created",
            "session renewed",
            "session destroyed",
        ]
        assert lines[0].endswith("user=alice reason=new")
        assert lines[2].endswith("user=alice reason=destroy")
    finally:
        for signal in SIGNALS.values():
            for receiver in list(signal.receivers.values()):
                if getattr(receiver, "__qualname__", "").startswith("log_to_audit"):
                    signal.disconnect(receiver)
