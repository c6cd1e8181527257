"""Encryption at rest meets the admin: rotating secrets, the per-user index, the CLI.

``tests/test_encryption.py`` covers what a dump holds and what tampering gets;
here each test follows sessions and their users' indexes through a rotated
secret, a switch to encryption over a live store, and the admin's calls.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import redis
from flask import Flask
from werkzeug.test import Client

from flask_scs_redis import (
    ConfigurationError,
    RedisSessions,
    RedisStore,
    SealedValues,
    SessionAdmin,
    SessionEngine,
    SessionMiddleware,
)
from flask_scs_redis.clock import now_ms
from flask_scs_redis.indexes import Indexes
from flask_scs_redis.record import Record, unpack_record
from flask_scs_redis.sealing import Sealer
from flask_scs_redis.tokens import new_token
from flask_scs_redis.users import Entry, UserIndex

from harness import Count, MakeApp, cookie_token

OLD = "old-secret-" + "1" * 32
NEW = "new-secret-" + "2" * 32
MARKER = "MARKER-5d1e0b"

#: Builds the views' WSGI application behind the adapter under test.
MakeApplication = Callable[..., Any]


def encrypting(*keys: str, **options: Any) -> dict[str, Any]:
    """Adapter-neutral options that seal with ``keys``, the first sealing."""
    return {"encrypt": True, "encryption_keys": list(keys), **options}


def sealer(*keys: str) -> Sealer:
    return Sealer([key.encode() for key in keys])


def browser(application: Any, token: str | None = None) -> Client:
    """A test client of ``application``, holding the session cookie ``token`` if given."""
    client = application.test_client() if isinstance(application, Flask) else Client(application)
    if token is not None:
        client.set_cookie("session", token)
    return client


def admin_of(application: Any) -> SessionAdmin:
    if isinstance(application, SessionMiddleware):
        return application.admin()
    return RedisSessions().admin(application)


def sign_in(client: Client, user: str) -> str:
    """Log ``client`` in as ``user`` and count one visit (``/read`` then answers "1").

    Return the session's token.
    """
    assert client.get("/set", query_string={"key": "_user_id", "value": user}).status_code == 200
    assert client.get("/incr").status_code == 200
    token = cookie_token(client)
    assert token is not None
    return token


def alive(client: Client) -> bool:
    return client.get("/read").text != "None"


def record(redis_client: redis.Redis, token: str) -> Record:
    blob = redis_client.get(RedisStore(redis_client).key_for(token))
    assert blob is not None
    return unpack_record(blob)


def key_id(redis_client: redis.Redis, token: str) -> bytes:
    """Which secret sealed the session of ``token``: the key id in its sealed values."""
    sealed = record(redis_client, token)
    assert sealed.sealed
    return sealed.values[2:6]


def store_id(redis_client: redis.Redis, token: str) -> str:
    store = RedisStore(redis_client)
    return store.id_of(store.key_for(token))


def index_entries(redis_client: redis.Redis, user: str, *keys: str) -> list[set[str]]:
    """The ids under each name ``user``'s index has had with ``keys``: the newest first."""
    names = Indexes(RedisStore(redis_client), sealer(*keys)).keys(user)
    return [{member.decode() for member in redis_client.zrange(name, 0, -1)} for name in names]


def opened(redis_client: redis.Redis, token: str, *keys: str) -> dict[Any, Any]:
    """The values of the session of ``token``, as an engine sealing with ``keys`` opens them."""
    engine = SessionEngine(RedisStore(redis_client), sealer=sealer(*keys))
    return dict(engine.open(token, lifetime=timedelta(days=1)))


def record_keys(redis_client: redis.Redis) -> list[str]:
    return [key for keys in RedisStore(redis_client).scan_keys() for key in keys]


# Rotating the secret


def test_sessions_sealed_under_the_old_key_open_after_rotation_and_reseal_under_the_new(
    make_application: MakeApplication, redis_client: redis.Redis
) -> None:
    before = browser(make_application(**encrypting(OLD)))
    before.get("/set", query_string={"key": "marker", "value": MARKER})
    token = sign_in(before, "alice")
    sealed_by_old = key_id(redis_client, token)
    rotated = browser(make_application(**encrypting(NEW, OLD)), token)
    assert rotated.get("/read").text == "1"
    assert rotated.get("/incr").text == "2"
    assert key_id(redis_client, token) != sealed_by_old
    assert key_id(redis_client, token) == key_id(
        redis_client, sign_in(browser(make_application(**encrypting(NEW))), "bob")
    )
    after = browser(make_application(**encrypting(NEW)), token)
    assert after.get("/read").text == "2"
    assert opened(redis_client, token, NEW) == {"marker": MARKER, "_user_id": "alice", "n": 2}


def test_a_read_after_rotation_reseals_the_session_and_moves_its_index_entry(
    make_application: MakeApplication, redis_client: redis.Redis, count: Count
) -> None:
    token = sign_in(browser(make_application(**encrypting(OLD))), "alice")
    sealed_by_old = key_id(redis_client, token)
    rotated = browser(make_application(**encrypting(NEW, OLD)), token)
    assert rotated.get("/read").status_code == 200
    assert key_id(redis_client, token) != sealed_by_old
    with count() as counter:
        rotated.get("/read")
    assert counter.by_command == {"evalsha": 1}  # resealed once; a read is a read again
    application = make_application(**encrypting(NEW))
    assert browser(application, token).get("/read").status_code == 200
    assert opened(redis_client, token, NEW)["_user_id"] == "alice"
    assert admin_of(application).destroy_user_sessions("alice") == 1  # found under NEW's name


def test_a_session_not_used_while_both_keys_were_listed_starts_over_with_a_quiet_warning(
    make_application: MakeApplication,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = browser(make_application(**encrypting(OLD)))
    before.get("/set", query_string={"key": "marker", "value": MARKER})
    token = sign_in(before, "alice")
    after = browser(make_application(**encrypting(NEW)), token)  # not used while both were listed
    with caplog.at_level(logging.WARNING, logger="flask_scs_redis"):
        assert after.get("/read").text == "None"
    assert redis_client.exists(RedisStore(redis_client).key_for(token)) == 0
    assert "unreadable session record" in caplog.text
    assert token not in caplog.text
    assert MARKER not in caplog.text
    assert "alice" not in caplog.text


# The per-user index across a rotation


def three_devices(make_app: MakeApp) -> tuple[Flask, list[Client]]:
    """Alice logged in on two devices under OLD, then on a third under NEW, OLD.

    Every device is a browser of the rotated app, as after a deploy.
    """
    before = make_app(**encrypting(OLD))
    rotated = make_app(**encrypting(NEW, OLD))
    tokens = [sign_in(browser(before), "alice") for _ in range(2)]
    devices = [browser(rotated, token) for token in tokens]
    third = browser(rotated)
    sign_in(third, "alice")
    return rotated, [*devices, third]


def test_user_sessions_lists_a_users_sessions_under_the_old_and_the_new_key(
    make_app: MakeApp, redis_client: redis.Redis
) -> None:
    rotated, devices = three_devices(make_app)
    ids = [store_id(redis_client, cookie_token(device) or "") for device in devices]
    assert index_entries(redis_client, "alice", NEW, OLD) == [{ids[2]}, set(ids[:2]), set()]
    listed = RedisSessions().admin(rotated).user_sessions("alice")
    assert sorted(info.id for info in listed) == sorted(ids)
    assert all(info.user == "alice" and info.sealed for info in listed)


def test_destroy_user_sessions_ends_them_under_every_key(
    make_app: MakeApp, redis_client: redis.Redis
) -> None:
    rotated, devices = three_devices(make_app)
    assert RedisSessions().admin(rotated).destroy_user_sessions("alice") == 3
    assert [alive(device) for device in devices] == [False, False, False]
    assert index_entries(redis_client, "alice", NEW, OLD) == [set(), set(), set()]
    assert record_keys(redis_client) == []


def test_log_out_everywhere_ends_them_under_every_key(make_app: MakeApp) -> None:
    _, devices = three_devices(make_app)
    assert devices[2].get("/log-out-everywhere").text == "3"
    assert [alive(device) for device in devices] == [False, False, False]


@pytest.mark.parametrize("asking", [0, 2], ids=["indexed-under-old", "indexed-under-new"])
def test_log_out_others_keeps_only_the_asking_device(make_app: MakeApp, asking: int) -> None:
    _, devices = three_devices(make_app)
    assert devices[asking].get("/log-out-others").text == "2"
    assert [alive(device) for device in devices] == [n == asking for n in range(3)]
    assert devices[asking].get("/mine").text.endswith("*")


@pytest.mark.parametrize("move", ["/renew", "/expiry?lifetime=3600"], ids=["renew", "set-expiry"])
def test_a_session_indexed_under_the_old_key_that_moves_joins_the_new_name(
    make_app: MakeApp, redis_client: redis.Redis, move: str
) -> None:
    token = sign_in(browser(make_app(**encrypting(OLD))), "alice")
    device = browser(make_app(**encrypting(NEW, OLD)), token)
    assert device.get(move).status_code == 200
    moved = cookie_token(device) or ""
    assert alive(device)  # not taken for a session whose user was logged out everywhere
    assert device.get("/mine").text == store_id(redis_client, moved) + "*"
    assert index_entries(redis_client, "alice", NEW, OLD) == [
        {store_id(redis_client, moved)},
        set(),
        set(),
    ]
    assert device.get("/log-out-everywhere").text == "1"
    assert not alive(device)


@pytest.mark.parametrize(
    "leave",
    ["/logout", "/delete?key=_user_id", "/set?key=_user_id&value=bob"],
    ids=["logout", "user-removed", "user-switched"],
)
@pytest.mark.parametrize("keys", [[OLD], [NEW, OLD]], ids=["same-key", "rotated"])
def test_a_sealed_session_that_leaves_its_user_leaves_the_index_under_every_name(
    make_app: MakeApp, redis_client: redis.Redis, leave: str, keys: list[str]
) -> None:
    token = sign_in(browser(make_app(**encrypting(OLD))), "alice")
    assert browser(make_app(**encrypting(*keys)), token).get(leave).status_code == 200
    assert index_entries(redis_client, "alice", NEW, OLD) == [set(), set(), set()]


# A renewal across names racing a purge, step by step


def indexed_under_old(make_app: MakeApp) -> str:
    """The token of a session of alice's made under OLD, so indexed under OLD's name."""
    return sign_in(browser(make_app(**encrypting(OLD))), "alice")


def renewal_entered(
    make_app: MakeApp, redis_client: redis.Redis
) -> tuple[RedisStore, UserIndex, str, str, Entry | None]:
    """A renewal of alice's session indexed under OLD's name, entered under NEW, OLD; unwritten.

    Answers the store, the user index, the old and new record keys, and the entry.
    """
    token = indexed_under_old(make_app)
    store = RedisStore(redis_client)
    users = UserIndex(store, "_user_id", sealer=sealer(NEW, OLD))
    old_key, new_key = store.key_for(token), store.key_for(new_token())
    entry = users.enter(("alice", old_key), ("alice", new_key), now_ms() + 60_000)
    return store, users, old_key, new_key, entry


def test_a_purge_between_a_renewals_entry_and_its_settling_wins(
    make_app: MakeApp, redis_client: redis.Redis
) -> None:
    store, users, old_key, new_key, entry = renewal_entered(make_app, redis_client)
    assert entry is not None
    redis_client.rename(old_key, new_key)  # the renewal's write: the record moves
    purge = SessionAdmin(store, sealer=sealer(NEW, OLD))
    assert purge.destroy_user_sessions("alice") == 1
    assert not users.settle(entry)
    assert record_keys(redis_client) == []
    assert index_entries(redis_client, "alice", NEW, OLD) == [set(), set(), set()]


def test_a_purge_after_a_renewal_settled_takes_its_new_entry(
    make_app: MakeApp, redis_client: redis.Redis
) -> None:
    store, users, old_key, new_key, entry = renewal_entered(make_app, redis_client)
    assert entry is not None
    redis_client.rename(old_key, new_key)
    assert users.settle(entry)
    assert index_entries(redis_client, "alice", NEW, OLD) == [{store.id_of(new_key)}, set(), set()]
    assert SessionAdmin(store, sealer=sealer(NEW, OLD)).destroy_user_sessions("alice") == 1
    assert record_keys(redis_client) == []


class SteppedIndexes(Indexes):
    """Indexes that call ``between`` with how many names a purge has taken, after each.

    A purge takes each name with one script; the test acts between two of them.
    """

    def __init__(self, store: RedisStore, keys: Sealer, between: Callable[[int], None]) -> None:
        super().__init__(store, keys)
        take_one, taken = self._take, [0]

        def stepped(**kwargs: Any) -> Any:
            answer = take_one(**kwargs)
            taken[0] += 1
            between(taken[0])
            return answer

        self._take = stepped  # type: ignore[assignment]


@pytest.mark.parametrize("names_taken", [0, 1, 2, 3])
def test_a_renewal_that_lands_between_a_purges_steps_leaves_no_live_session(
    make_app: MakeApp, redis_client: redis.Redis, names_taken: int
) -> None:
    token = indexed_under_old(make_app)
    store = RedisStore(redis_client)
    engine = SessionEngine(store, sealer=sealer(NEW, OLD))
    renewed: list[str | None] = []

    def renew(taken: int) -> None:
        if taken == names_taken:
            session = engine.open(token, lifetime=timedelta(days=1))
            session.renew()
            engine.commit(session)
            renewed.append(session.token)

    purge = UserIndex(store, "_user_id", sealer=sealer(NEW, OLD))
    purge.indexes = SteppedIndexes(store, sealer(NEW, OLD), renew)
    renew(0)
    purge.end_all("alice")
    assert renewed  # the renewal ran, at its step
    assert record_keys(redis_client) == []
    assert index_entries(redis_client, "alice", NEW, OLD) == [set(), set(), set()]


# Switching encryption on over a live store


def test_sessions_indexed_before_encryption_are_listed_and_ended_after_it(
    make_application: MakeApplication, redis_client: redis.Redis
) -> None:
    plain = make_application()
    devices = [browser(plain) for _ in range(2)]
    tokens = [sign_in(device, "alice") for device in devices]
    encrypted = make_application(**encrypting(NEW))
    third = browser(encrypted)
    tokens.append(sign_in(third, "alice"))
    admin = admin_of(encrypted)
    listed = admin.user_sessions("alice")
    assert sorted(info.id for info in listed) == sorted(store_id(redis_client, t) for t in tokens)
    assert all(info.user == "alice" for info in listed)
    assert admin.destroy_user_sessions("alice") == 3
    assert [alive(device) for device in (*devices, third)] == [False, False, False]


# The admin with encryption on


def test_the_admin_counts_and_lists_sealed_sessions_without_their_values_or_user(
    make_application: MakeApplication, redis_client: redis.Redis
) -> None:
    application = make_application(**encrypting(OLD))
    signed_in, anonymous = browser(application), browser(application)
    signed_in.get("/set", query_string={"key": "marker", "value": MARKER})
    sign_in(signed_in, "alice")
    anonymous.get("/incr")
    admin = admin_of(application)
    assert admin.count() == 2
    listed = list(admin.iter_sessions())
    assert len(listed) == 2
    for info, values in listed:
        assert isinstance(values, SealedValues)
        assert values == {}
        assert repr(values) == "<sealed>"
        assert info.sealed
        assert info.user is None


def test_the_admin_gets_and_destroys_a_sealed_session_by_id(
    make_application: MakeApplication, redis_client: redis.Redis
) -> None:
    application = make_application(**encrypting(OLD))
    device = browser(application)
    token = sign_in(device, "alice")
    admin = admin_of(application)
    found = admin.get(store_id(redis_client, token))
    assert found is not None
    info, values = found
    assert info.sealed and info.user is None
    assert isinstance(values, SealedValues)
    assert admin.destroy(store_id(redis_client, token))
    assert admin.get(store_id(redis_client, token)) is None
    assert not alive(device)
    device.get("/incr")
    assert cookie_token(device) not in (None, token)  # a new session, under a new token


def test_user_sessions_names_the_user_of_sealed_sessions_and_can_keep_one(
    make_application: MakeApplication, redis_client: redis.Redis
) -> None:
    application = make_application(**encrypting(OLD))
    kept, ended = browser(application), browser(application)
    kept_token = sign_in(kept, "alice")
    sign_in(ended, "alice")
    admin = admin_of(application)
    listed = admin.user_sessions("alice")
    assert [info.user for info in listed] == ["alice", "alice"]
    assert all(info.sealed for info in listed)
    keep_id = store_id(redis_client, kept_token)
    assert admin.destroy_user_sessions("alice", keep_id=keep_id) == 1
    assert alive(kept)
    assert not alive(ended)
    assert [info.id for info in admin.user_sessions("alice")] == [keep_id]


def test_past_the_limit_the_oldest_sealed_session_is_destroyed(
    make_application: MakeApplication,
) -> None:
    application = make_application(**encrypting(OLD, max_sessions_per_user=2))
    devices = [browser(application) for _ in range(3)]
    for device in devices:
        sign_in(device, "alice")
        time.sleep(0.01)  # deadlines a millisecond apart at least
    assert [alive(device) for device in devices] == [False, True, True]
    assert len(admin_of(application).user_sessions("alice")) == 2


# The CLI with encryption on


def run(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["scs", *args])


@pytest.fixture
def sealed_cli_app(make_app: MakeApp) -> Flask:
    """An encrypting app with two sessions: alice's, holding a marker, and an anonymous one."""
    app = make_app(**encrypting(OLD))
    alice, anonymous = browser(app), browser(app)
    alice.get("/set", query_string={"key": "marker", "value": MARKER})
    sign_in(alice, "alice")
    anonymous.get("/incr")
    return app


def test_cli_count_and_list_show_sealed_sessions_without_users(sealed_cli_app: Flask) -> None:
    assert run(sealed_cli_app, "count").output.strip() == "2"
    lines = run(sealed_cli_app, "list").output.splitlines()
    assert len(lines) == 1 + 2
    assert [line.split()[-1] for line in lines[1:]] == ["-", "-"]
    rows = [json.loads(line) for line in run(sealed_cli_app, "list", "--json").output.splitlines()]
    assert [row["user"] for row in rows] == [None, None]
    (alices,) = [
        json.loads(line)
        for line in run(sealed_cli_app, "list", "--user", "alice", "--json").output.splitlines()
    ]
    assert alices["user"] == "alice"


def test_cli_show_says_the_values_are_sealed_in_both_formats(sealed_cli_app: Flask) -> None:
    (row,) = [
        json.loads(line)
        for line in run(sealed_cli_app, "list", "--user", "alice", "--json").output.splitlines()
    ]
    shown = run(sealed_cli_app, "show", row["id"])
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines()[-1] == (
        "values       sealed: only the session's own cookie opens them"
    )
    assert MARKER not in shown.output
    as_json = json.loads(run(sealed_cli_app, "show", "--json", row["id"][:8]).output)
    assert as_json["values"] is None
    assert as_json["user"] is None
    assert as_json["id"] == row["id"]


def test_cli_purge_user_ends_a_users_sealed_sessions(sealed_cli_app: Flask) -> None:
    purged = run(sealed_cli_app, "purge", "--user", "alice")
    assert purged.exit_code == 0
    assert "ended 1 sessions of alice" in purged.output
    assert run(sealed_cli_app, "count").output.strip() == "1"
    assert run(sealed_cli_app, "list", "--user", "alice").output.splitlines()[1:] == []


# Set-up


def test_encryption_with_the_user_index_and_no_key_is_refused_naming_the_setting(
    make_application: MakeApplication, adapter: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        make_application(encrypt=True)
    assert ("SCS_ENCRYPTION_KEYS" if adapter == "flask" else "encryption_keys=") in str(
        refused.value
    )


def test_encryption_without_the_user_index_needs_no_key(
    make_application: MakeApplication, redis_client: redis.Redis
) -> None:
    device = browser(make_application(encrypt=True, user_key=None))
    token = sign_in(device, "alice")
    assert record(redis_client, token).sealed
    assert alive(device)
    assert list(RedisStore(redis_client).scan_keys(of="indexes")) == []
    assert list(redis_client.scan_iter(match="*:user")) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (encrypting("x" * 31), r"\[0\] is 31 bytes"),
        (encrypting(NEW, "é" * 15), r"\[1\] is 30 bytes"),  # counted in bytes, not characters
        (encrypting(OLD, OLD), "the same secret twice"),
        ({"encrypt": True, "encryption_keys": [OLD, OLD.encode()]}, "the same secret twice"),
    ],
    ids=["31-bytes", "30-bytes-utf8", "same-twice", "same-str-and-bytes"],
)
def test_bad_encryption_settings_are_refused_at_set_up(
    make_application: MakeApplication, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make_application(**options)


def test_a_key_of_exactly_32_bytes_is_accepted(
    make_application: MakeApplication, redis_client: redis.Redis
) -> None:
    token = sign_in(browser(make_application(**encrypting("k" * 32))), "alice")
    assert record(redis_client, token).sealed


# Found by these tests


def test_a_session_resealed_under_the_new_key_is_logged_out_everywhere_once_the_old_is_dropped(
    make_app: MakeApp,
) -> None:
    # Dropping OLD is what the README says to do once the sessions OLD sealed
    # have ended; this one is sealed under NEW, but still indexed under OLD's name.
    token = sign_in(browser(make_app(**encrypting(OLD))), "alice")
    assert browser(make_app(**encrypting(NEW, OLD)), token).get("/incr").text == "2"
    device = browser(make_app(**encrypting(NEW)), token)
    assert device.get("/read").text == "2"  # nothing of it is sealed under OLD
    assert device.get("/log-out-everywhere").text == "1"
    assert not alive(device)


def test_encryption_without_a_server_secret_refuses_tokens_stored_in_the_clear(
    make_app: MakeApp,
) -> None:
    # With SCS_HASH_TOKENS=False a record's key holds its token, the one
    # thing that opens its values when there is no server secret.
    with pytest.raises(ConfigurationError, match="SCS_HASH_TOKENS"):
        make_app(SCS_ENCRYPT=True, SCS_USER_KEY=None, SCS_HASH_TOKENS=False)


def test_a_move_whose_old_entry_was_taken_meanwhile_does_not_count(
    make_app: MakeApp, redis_client: redis.Redis
) -> None:
    store, users, old_key, _, entry = renewal_entered(make_app, redis_client)
    old_index = users.indexes.keys("alice")[1]
    assert entry is not None and entry.held == (old_index, store.id_of(old_key))
    # A purge took the older name (and the current one before the entry joined it).
    redis_client.zrem(old_index, store.id_of(old_key))
    assert not users.settle(entry)


def test_user_sessions_prunes_a_gone_session_under_every_name(
    make_app: MakeApp, redis_client: redis.Redis
) -> None:
    old_app = make_app(**encrypting(OLD))
    first, second = sign_in(browser(old_app), "alice"), sign_in(browser(old_app), "alice")
    redis_client.delete(RedisStore(redis_client).key_for(first))
    rotated = make_app(**encrypting(NEW, OLD))
    assert len(admin_of(rotated).user_sessions("alice")) == 1
    assert index_entries(redis_client, "alice", NEW, OLD) == [
        set(),
        {store_id(redis_client, second)},
        set(),
    ]


def test_a_session_indexed_under_two_names_is_listed_once(
    make_app: MakeApp, redis_client: redis.Redis
) -> None:
    token = indexed_under_old(make_app)
    rotated = make_app(**encrypting(NEW, OLD))
    current = admin_of(rotated).users.indexes.key("alice")
    redis_client.zadd(current, {store_id(redis_client, token): now_ms() + 60_000})
    assert len(admin_of(rotated).user_sessions("alice")) == 1
