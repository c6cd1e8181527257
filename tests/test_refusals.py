"""When Redis says no: out of memory, read-only, a missing permission, a foreign key.

Each refusal comes from a real server made to refuse. What the user sees is
an outage (503 with ``Retry-After``) for what passes, a clear
:class:`SessionStoreError` for a configuration mistake, and never a lost
session, a 500 for an outage, or a token or a value in a message.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis

from flask_scs_redis import (
    RedisStore,
    SessionAdmin,
    SessionEngine,
    SessionStoreError,
    SessionStoreUnavailable,
)
from flask_scs_redis.record import read_record
from flask_scs_redis.testing import RedisServer
from flask_scs_redis.testing.topologies import RedisClusterServers

from harness import cookie_token, stored_keys, stored_values
from views import build_flask_app

DAY = timedelta(days=1)
MARKER = "marker-7f3a9c"


def out_of_memory(client: redis.Redis) -> None:
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1)


def enough_memory(client: redis.Redis) -> None:
    client.config_set("maxmemory", 0)


@pytest.fixture
def own_client(fresh_redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = fresh_redis_server.client()
    yield client
    client.close()


def with_replica(primary: RedisServer) -> RedisServer:
    replica = RedisServer().start()
    replica.client().replicaof("127.0.0.1", primary.port)
    deadline = time.monotonic() + 10
    while replica.client().info("replication").get("master_link_status") != "up":
        assert time.monotonic() < deadline, "the replica never synced"
        time.sleep(0.05)
    return replica


@pytest.mark.parametrize("min_replicas", [0, 1])
@pytest.mark.parametrize("path", ["/renew", "/set?key=_user_id&value=42"])
def test_a_renewal_refused_for_memory_leaves_the_session_as_it_was(
    fresh_redis_server: RedisServer,
    own_client: redis.Redis,
    min_replicas: int,
    path: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    replica = with_replica(fresh_redis_server) if min_replicas else None
    try:
        app = build_flask_app(own_client, SCS_MIN_REPLICAS=min_replicas)
        client = app.test_client()
        client.get("/set", query_string={"key": "cart", "value": "apple"})
        (key,) = stored_keys(own_client)
        before = own_client.get(key)
        out_of_memory(own_client)
        with caplog.at_level(logging.WARNING, "flask_scs_redis"):
            response = client.get(path)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert "OOM" in caplog.text  # the cause is in the log
        assert stored_keys(own_client) == [key]
        assert own_client.get(key) == before
        enough_memory(own_client)
        assert client.get(path).status_code == 200
        assert stored_values(own_client)["cart"] == "apple"
    finally:
        if replica is not None:
            replica.close()


@pytest.mark.cluster
@pytest.mark.parametrize("min_replicas", [0, 1])
def test_a_renewal_on_a_cluster_refused_for_memory_loses_nothing(min_replicas: int) -> None:
    with RedisClusterServers(replicas_per_primary=min_replicas) as cluster:
        app = build_flask_app(None, SCS_REDIS_URL=cluster.url, SCS_MIN_REPLICAS=min_replicas)
        client = app.test_client()
        client.get("/set", query_string={"key": "cart", "value": "apple"})
        token = cookie_token(client)
        nodes = [server.client() for server in cluster.primaries]
        for node in nodes:
            out_of_memory(node)
        assert client.get("/renew").status_code == 503
        for node in nodes:
            enough_memory(node)
        assert cookie_token(client) == token
        assert client.get("/set", query_string={"key": "more", "value": "x"}).status_code == 200
        store = RedisStore(cluster.client())
        (_, values) = next(iter(SessionAdmin(store).iter_sessions()))
        assert values == {"cart": "apple", "more": "x"}
        assert SessionAdmin(store).count() == 1


def test_a_read_only_replica_is_an_outage(
    fresh_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    replica = with_replica(fresh_redis_server)
    try:
        client = build_flask_app(replica.client()).test_client()
        with caplog.at_level(logging.WARNING, "flask_scs_redis"):
            response = client.get("/incr")
        assert response.status_code == 503
        assert "READONLY" in caplog.text
        assert client.get("/none").status_code == 200
    finally:
        replica.close()


def test_a_missing_permission_is_a_clear_configuration_error(
    fresh_redis_server: RedisServer, own_client: redis.Redis
) -> None:
    own_client.acl_setuser(
        "app", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-evalsha"]
    )
    limited = fresh_redis_server.client(username="app", password="pw")
    engine = SessionEngine(RedisStore(limited))
    session = engine.open(None, lifetime=DAY)
    session["n"] = 1
    engine.commit(session)  # a new session is one SET: allowed
    again = engine.open(session.token, lifetime=DAY)
    with pytest.raises(SessionStoreError, match="evalsha") as raised:
        again.get("n")  # the read is a script (it slides the idle window), as a change is
    assert not isinstance(raised.value, SessionStoreUnavailable)
    assert "ACL" in str(raised.value)


def texts_of(error: BaseException) -> str:
    return "\n".join([str(error), repr(error), *traceback.format_exception(error)])


@pytest.mark.parametrize("fault", ["out of memory", "no permission"])
def test_no_token_or_value_reaches_a_message_or_a_log(
    fresh_redis_server: RedisServer,
    own_client: redis.Redis,
    fault: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Failing pipelines: redis-py writes the failed command, with its arguments, in the error."""
    own_client.acl_setuser(
        "app",
        enabled=True,
        passwords=["+pw"],
        keys=["*"],
        commands=["+@all", "-eval", "-evalsha", "-getdel"],
    )
    limited = fresh_redis_server.client(username="app", password="pw")
    for store in (
        RedisStore(own_client, hash_tokens=False),
        RedisStore(own_client, hash_tokens=False, min_replicas=1, replica_timeout=0.01),
    ):
        engine = SessionEngine(store)
        session = engine.open(None, lifetime=DAY)
        session[MARKER] = 1  # first in the record, so redis-py's shortened text shows it
        own_client.config_set("maxmemory", 0)
        SessionEngine(RedisStore(own_client, hash_tokens=False)).commit(session)
        token = session.token
        assert token is not None
        if fault == "no permission":
            store = RedisStore(limited, hash_tokens=False, min_replicas=store.min_replicas)
            engine = SessionEngine(store)
        with caplog.at_level(logging.DEBUG):
            errors = failures(engine, token, own_client if fault == "out of memory" else None)
        assert errors  # each path failed, and was looked at
        for error in errors:
            assert token not in texts_of(error)
            assert MARKER not in texts_of(error)
        assert token not in caplog.text
        assert MARKER not in caplog.text


def failures(
    engine: SessionEngine, token: str, starved: redis.Redis | None
) -> list[SessionStoreError]:
    """Change, renew and destroy the session of ``token``; return the errors they raise.

    With ``starved``, that server is out of memory during each attempt.
    """
    errors = []
    for attempt in ("change", "renew", "destroy"):
        session = engine.open(token, lifetime=DAY)
        try:
            session[MARKER] = 2  # the read is a script too: a missing EVALSHA fails it
        except SessionStoreError as error:
            errors.append(error)
            continue
        if attempt == "renew":
            session.renew()
        if starved is not None:
            out_of_memory(starved)
        try:
            if attempt == "destroy":
                session.destroy()
            else:
                engine.commit(session)
        except SessionStoreError as error:
            errors.append(error)
        finally:
            if starved is not None:
                enough_memory(starved)
    return errors


def test_without_hashed_tokens_the_admin_shows_and_takes_a_fingerprint(
    own_client: redis.Redis,
) -> None:
    app = build_flask_app(own_client, SCS_HASH_TOKENS=False)
    client = app.test_client()
    client.get("/set", query_string={"key": "_user_id", "value": "42"})
    token = cookie_token(client)
    assert token is not None
    with app.app_context():
        admin = app.extensions["scs_redis"].admin()
        (info,) = admin.user_sessions("42")
        assert info.id != token and token not in info.id
        assert [i.id for i, _ in admin.iter_sessions()] == [info.id]
        runner = app.test_cli_runner()
        listed = runner.invoke(args=["scs", "list"])
        assert info.id in listed.output and token not in listed.output
        assert runner.invoke(args=["scs", "show", info.id]).exit_code == 0
        assert runner.invoke(args=["scs", "show", token]).exit_code == 1  # a token is no id
        # An id may begin with "-", which is no option; this one names no session.
        dashed = "-" + ("A" if info.id[1] != "A" else "B") + info.id[2:]
        assert "no session" in runner.invoke(args=["scs", "show", dashed]).output
        deleted = runner.invoke(args=["scs", "delete", info.id])
        assert deleted.exit_code == 0, deleted.output
        assert admin.get(info.id) is None
    assert client.get("/read").text == "None"


def test_foreign_keys_under_a_shared_prefix_are_left_alone(own_client: redis.Redis) -> None:
    own_client.hset("app:user:42", "plan", "pro")
    own_client.set("app:user:cfg", "x")
    own_client.set("app:" + "a" * 43, "not a session")
    own_client.hset("app:" + "b" * 43 + ":user", "x", "y")
    app = build_flask_app(own_client, SCS_KEY_PREFIX="app:")
    client = app.test_client()
    assert client.get("/set", query_string={"key": "_user_id", "value": "42"}).status_code == 200
    assert client.get("/log-out-everywhere").text == "1"
    client.get("/set", query_string={"key": "_user_id", "value": "cfg"})
    with app.app_context():
        admin = app.extensions["scs_redis"].admin()
        assert admin.count() == 1
        assert sum(admin.destroy_all()) == 1
    assert own_client.hget("app:user:42", "plan") == b"pro"
    assert own_client.get("app:user:cfg") == b"x"
    assert own_client.get("app:" + "a" * 43) == b"not a session"
    assert own_client.hget("app:" + "b" * 43 + ":user", "x") == b"y"
    remaining = sorted(key.decode() for key in own_client.scan_iter("app:*"))
    assert remaining == sorted(
        ["app:user:42", "app:user:cfg", "app:" + "a" * 43, "app:" + "b" * 43 + ":user"]
    )


def test_counting_leaves_out_unreadable_records_and_locks(own_client: redis.Redis) -> None:
    store = RedisStore(own_client)
    engine = SessionEngine(store)
    session = engine.open(None, lifetime=DAY)
    session["n"] = 1
    engine.commit(session)
    assert session.token is not None
    key = store.key_for(session.token)
    store.lock(key)
    own_client.set("scs:session:" + "c" * 43, b"\x93garbage")
    admin = SessionAdmin(store)
    assert admin.count() == 1
    assert len(list(admin.iter_sessions())) == 1


def test_the_cli_refuses_a_lock_key_as_a_session_id(own_client: redis.Redis) -> None:
    app = build_flask_app(own_client)
    client = app.test_client()
    client.get("/incr")
    store = app.session_interface.engine.store  # type: ignore[attr-defined]
    (key,) = stored_keys(own_client)
    assert store.lock(key.decode()) is not None
    session_id = store.id_of(key.decode())
    result = app.test_cli_runner().invoke(args=["scs", "delete", session_id + ":lock"])
    assert result.exit_code == 2
    assert "not a session id" in result.output
    assert own_client.exists(key.decode() + ":lock") == 1
    assert own_client.exists(key) == 1


def test_unreadable_records_and_reprs_show_no_token_and_no_value(
    own_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore(own_client, hash_tokens=False)
    engine = SessionEngine(store)
    session = engine.open(None, lifetime=DAY)
    session[MARKER] = MARKER
    engine.commit(session)
    token = session.token
    assert token is not None
    state, _ = engine.open(token, lifetime=DAY)._snapshot()
    loaded, _ = engine.load(state, token)
    blob = own_client.get(store.key_for(token))
    assert blob is not None
    record, _ = read_record(blob)
    for shown in (repr(loaded), repr(record)):
        assert token not in shown and MARKER not in shown
    # msgpack's ExtraData carries the whole record in its repr; a decoder's
    # error may quote the value. Neither reaches the log of a deleted record.
    for corrupt in (
        blob + MARKER.encode(),
        blob.replace(MARKER.encode(), b"\xd7\x05" + b"x" * 8, 1),
    ):
        own_client.set(store.key_for(token), corrupt)
        with caplog.at_level(logging.DEBUG):
            assert dict(engine.open(token, lifetime=DAY)) == {}
        assert "unreadable" in caplog.text
        assert token not in caplog.text and MARKER not in caplog.text


def test_without_hashed_tokens_log_out_others_keeps_this_session(own_client: redis.Redis) -> None:
    app = build_flask_app(own_client, SCS_HASH_TOKENS=False)
    mine, other = app.test_client(), app.test_client()
    for client in (mine, other):
        client.get("/set", query_string={"key": "_user_id", "value": "42"})
    assert mine.get("/mine").text.count("*") == 1  # this one is marked current
    assert mine.get("/log-out-others").text == "1"
    assert mine.get("/read").status_code == 200
    assert mine.get("/mine").text.endswith("*")
    assert other.get("/mine").text == ""


def test_a_renewal_its_replica_does_not_acknowledge_leaves_the_session_as_it_was(
    fresh_redis_server: RedisServer, own_client: redis.Redis
) -> None:
    replica = with_replica(fresh_redis_server)
    try:
        app = build_flask_app(own_client, SCS_MIN_REPLICAS=1, SCS_REPLICA_TIMEOUT=0.2)
        client = app.test_client()
        client.get("/set", query_string={"key": "cart", "value": "apple"})
        (key,) = stored_keys(own_client)
        before = own_client.get(key)
        replica.pause()
        try:
            assert client.get("/renew").status_code == 503
        finally:
            replica.resume()
        assert stored_keys(own_client) == [key]  # the unacknowledged copy was taken back
        assert own_client.get(key) == before
        assert client.get("/renew").status_code == 200
        assert stored_values(own_client)["cart"] == "apple"
    finally:
        replica.close()
