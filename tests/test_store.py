"""RedisStore: the three-method seam plus iteration, and errors from its own tree."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis
from flask import Flask
from redis.backoff import NoBackoff
from redis.retry import Retry

from flask_scs_redis import RedisStore, SessionStoreError, SessionStoreUnavailable
from flask_scs_redis.testing import RedisServer

from views import build_flask_app

MakeApp = Callable[..., Flask]

# Fail at once, so an outage test does not wait through backoff.
NO_RETRY = Retry(NoBackoff(), 0)


def in_a_minute() -> int:
    return int(time.time() * 1000) + 60_000


def test_commit_find_delete(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)
    key = store.key_for("t" * 43)
    assert store.find(key) is None
    assert store.commit(key, b"record", in_a_minute(), new=True)
    assert store.find(key) == b"record"
    store.delete(key)
    assert store.find(key) is None


def test_a_new_record_never_overwrites_and_an_update_never_resurrects(
    redis_client: redis.Redis,
) -> None:
    store = RedisStore(redis_client)
    key = store.key_for("t" * 43)
    assert not store.commit(key, b"update", in_a_minute())  # nothing to update
    assert store.find(key) is None
    assert store.commit(key, b"first", in_a_minute(), new=True)
    assert not store.commit(key, b"second", in_a_minute(), new=True)
    assert store.find(key) == b"first"


def test_find_can_move_the_expiry_in_the_same_command(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)
    key = store.key_for("t" * 43)
    store.commit(key, b"record", in_a_minute(), new=True)
    later = in_a_minute() + 60_000
    assert store.find(key, idle_expiry_ms=later) == b"record"
    assert redis_client.pexpiretime(key) == later


def test_scan_yields_only_this_prefix_even_with_glob_characters(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client, prefix="a*[b]?:")
    other = RedisStore(redis_client, prefix="aX[b]Y:")
    for number in range(1200):
        store.commit(store.key_for(f"{number:043d}"), b"mine", in_a_minute(), new=True)
    other.commit(other.key_for("o" * 43), b"theirs", in_a_minute(), new=True)
    found = list(store.scan(batch=100))
    assert len(found) == 1200
    assert {record for _, record in found} == {b"mine"}
    assert all(key.startswith("a*[b]?:") for key, _ in found)


def test_a_dead_server_raises_store_unavailable(fresh_redis_server: RedisServer) -> None:
    store = RedisStore(fresh_redis_server.client(retry=NO_RETRY))
    fresh_redis_server.stop()
    with pytest.raises(SessionStoreUnavailable):
        store.find(store.key_for("t" * 43))


def test_a_failing_command_raises_a_store_error(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)
    key = store.key_for("t" * 43)
    redis_client.hset(key, "not", "a string")
    with pytest.raises(SessionStoreError, match="WRONGTYPE"):
        store.find(key)


def test_an_outage_costs_nothing_until_the_session_is_used(
    fresh_redis_server: RedisServer,
) -> None:
    app = build_flask_app(fresh_redis_server.client(retry=NO_RETRY))
    client = app.test_client()
    client.get("/incr")
    fresh_redis_server.stop()
    assert client.get("/none").text == "ok"
    with pytest.raises(SessionStoreUnavailable):
        client.get("/read")
    fresh_redis_server.start()
    assert client.get("/read").text == "None"  # a restarted server kept nothing


def test_from_url_builds_a_working_store(redis_server: RedisServer) -> None:
    store = RedisStore.from_url(redis_server.url, prefix="url:")
    key = store.key_for("u" * 43)
    assert store.commit(key, b"via url", in_a_minute(), new=True)
    assert store.find(key) == b"via url"
    store.delete(key)
