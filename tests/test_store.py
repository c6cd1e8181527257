"""RedisStore: single-key writes, compare-and-set, iteration, and its error tree."""

from __future__ import annotations

import time

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.retry import Retry

from flask_scs_redis import RedisStore, SessionStoreError, SessionStoreUnavailable
from flask_scs_redis.record import Record, pack_record
from flask_scs_redis.scripts import WriteStatus
from flask_scs_redis.testing import RedisServer

# Fail at once, so an outage test does not wait through backoff.
NO_RETRY = Retry(NoBackoff(), 0)
TOKEN = "t" * 43


def in_a_minute() -> int:
    return int(time.time() * 1000) + 60_000


def record(revision: int, values: bytes = b"\x80") -> bytes:
    return pack_record(Record(revision, 4_000_000_000_000, 0, values))[0]


def revision_tag(revision: int) -> bytes:
    return pack_record(Record(revision, 4_000_000_000_000, 0, b"\x80"))[1]


def test_create_find_delete(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)
    key = store.key_for(TOKEN)
    assert store.find(key) is None
    assert store.create(key, record(1), in_a_minute())
    assert store.find(key) == record(1)
    store.delete(key)
    assert store.find(key) is None


def test_create_never_overwrites(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)
    key = store.key_for(TOKEN)
    assert store.create(key, record(1, b"\x81\xa1a\x01"), in_a_minute())
    assert not store.create(key, record(1, b"\x81\xa1b\x02"), in_a_minute())
    assert store.find(key) == record(1, b"\x81\xa1a\x01")


def test_replace_writes_only_over_the_revision_it_expects(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)
    key = store.key_for(TOKEN)
    store.create(key, record(1), in_a_minute())
    assert store.replace(key, record(2), in_a_minute(), expected=revision_tag(1)).status is (
        WriteStatus.DONE
    )
    stale = store.replace(key, record(2, b"\x81\xa1x\x01"), in_a_minute(), expected=revision_tag(1))
    assert stale.status is WriteStatus.CONFLICT
    assert stale.current == record(2)
    assert store.find(key) == record(2)


def test_replace_and_remove_never_resurrect_a_deleted_record(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)
    key = store.key_for(TOKEN)
    assert store.replace(key, record(2), in_a_minute(), expected=revision_tag(1)).status is (
        WriteStatus.GONE
    )
    assert store.remove(key, expected=revision_tag(1)).status is WriteStatus.GONE
    assert store.find(key) is None


def test_replace_sets_the_expiry_in_the_same_write(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)
    key = store.key_for(TOKEN)
    store.create(key, record(1), in_a_minute())
    later = in_a_minute() + 5000
    store.replace(key, record(2), later, expected=revision_tag(1))
    assert redis_client.pexpiretime(key) == later


def test_remove_deletes_only_the_revision_it_expects(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)
    key = store.key_for(TOKEN)
    store.create(key, record(3), in_a_minute())
    assert store.remove(key, expected=revision_tag(2)).status is WriteStatus.CONFLICT
    assert store.remove(key, expected=revision_tag(3)).status is WriteStatus.DONE
    assert store.find(key) is None


def test_move_writes_the_new_key_and_deletes_the_old_if_unchanged(
    redis_client: redis.Redis,
) -> None:
    store = RedisStore(redis_client)
    old, new = store.key_for(TOKEN), store.key_for("n" * 43)
    store.create(old, record(4), in_a_minute())
    answer = store.move(
        old, expected=revision_tag(4), new_key=new, record=record(1), expiry_ms=in_a_minute()
    )
    assert answer.status is WriteStatus.DONE
    assert store.find(old) is None
    assert store.find(new) == record(1)


def test_move_leaves_a_changed_old_record_alone(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)
    old, new = store.key_for(TOKEN), store.key_for("n" * 43)
    store.create(old, record(5), in_a_minute())
    answer = store.move(
        old, expected=revision_tag(4), new_key=new, record=record(1), expiry_ms=in_a_minute()
    )
    assert answer == (WriteStatus.CONFLICT, record(5))
    assert store.find(old) == record(5)


def test_find_can_move_the_expiry_in_the_same_command(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)
    key = store.key_for(TOKEN)
    store.create(key, record(1), in_a_minute())
    later = in_a_minute() + 60_000
    assert store.find(key, idle_expiry_ms=later) == record(1)
    assert redis_client.pexpiretime(key) == later


def test_scan_yields_only_this_prefix_even_with_glob_characters(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client, prefix="a*[b]?:")
    other = RedisStore(redis_client, prefix="aX[b]Y:")
    for number in range(1200):
        store.create(store.key_for(f"{number:043d}"), b"mine", in_a_minute())
    other.create(other.key_for("o" * 43), b"theirs", in_a_minute())
    chunks = list(store.scan_keys(batch=100))
    keys = [key for chunk in chunks for key in chunk]
    assert len(keys) == 1200
    assert all(len(chunk) <= 100 for chunk in chunks)
    assert {blob for blob, _ in store.fetch(keys)} == {b"mine"}
    assert all(key.startswith("a*[b]?:") for key in keys)


def test_a_dead_server_raises_store_unavailable(fresh_redis_server: RedisServer) -> None:
    store = RedisStore(fresh_redis_server.client(retry=NO_RETRY))
    fresh_redis_server.stop()
    with pytest.raises(SessionStoreUnavailable):
        store.find(store.key_for(TOKEN))


def test_a_failing_command_raises_a_store_error(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)
    key = store.key_for(TOKEN)
    redis_client.hset(key, "not", "a string")
    with pytest.raises(SessionStoreError, match="WRONGTYPE"):
        store.find(key)


def test_from_url_builds_a_working_store(redis_server: RedisServer) -> None:
    store = RedisStore.from_url(redis_server.url, prefix="url:")
    key = store.key_for("u" * 43)
    assert store.create(key, b"via url", in_a_minute())
    assert store.find(key) == b"via url"
    store.delete(key)


def test_the_write_lock_has_one_holder_and_expires(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)
    key = store.key_for(TOKEN)
    holder = store.lock(key, ttl_ms=200)
    assert holder is not None
    assert store.lock(key) is None
    store.unlock(key, "someone else")  # not theirs to release
    assert store.lock(key) is None
    store.unlock(key, holder)
    second = store.lock(key, ttl_ms=50)
    assert second is not None
    time.sleep(0.1)
    assert store.lock(key) is not None  # the dead holder's lock expired


def test_scan_skips_write_locks_and_user_indexes(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)
    key = store.key_for(TOKEN)
    store.create(key, record(1), in_a_minute())
    store.lock(key)
    redis_client.zadd(store.keys.index("alice"), {store.id_of(key): in_a_minute()})
    assert list(store.scan_keys()) == [[key]]
    assert list(store.scan_keys(of="indexes")) == [[store.keys.index("alice")]]


def test_store_ids_and_keys_convert_both_ways(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client, prefix="p:")
    key = store.key_for(TOKEN)
    assert store.key_of(store.id_of(key)) == key
    assert store.id_of(store.key_of("x" * 43)) == "x" * 43


def test_delete_takes_any_number_of_keys_and_counts_what_existed(
    redis_client: redis.Redis,
) -> None:
    store = RedisStore(redis_client)
    keys = [store.key_for(f"{number:043d}") for number in range(3)]
    for key in keys:
        store.create(key, record(1), in_a_minute())
    assert store.delete() == 0
    assert store.delete(keys[0]) == 1
    assert store.delete(*keys, store.key_for("m" * 43)) == 2
    assert [store.find(key) for key in keys] == [None] * 3


def test_take_deletes_and_returns_the_record(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)
    key = store.key_for(TOKEN)
    store.create(key, record(7), in_a_minute())
    assert store.take(key) == record(7)
    assert store.take(key) is None


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    revision=st.integers(0, 2**64 - 1),
    # Not within 100 ms of now, where the script's clock and the test's may disagree.
    ahead_ms=st.one_of(st.integers(-(2**40), -100), st.integers(100, 2**40)),
    idle_ms=st.integers(1, 2**32),
)
def test_the_read_script_finds_the_deadline_of_every_record(
    redis_client: redis.Redis, revision: int, ahead_ms: int, idle_ms: int
) -> None:
    """Lua reads the deadline from the record's first bytes, however msgpack wrote them."""
    store = RedisStore(redis_client)
    key = store.key_for(TOKEN)
    now = int(time.time() * 1000)
    deadline = max(now + ahead_ms, 0)
    blob = pack_record(Record(revision, deadline, 0, b"\x80"))[0]
    redis_client.set(key, blob, px=10**12)
    assert store.find(key, idle_expiry_ms=now + idle_ms) == blob
    ttl = redis_client.pttl(key)
    if deadline <= now:
        assert ttl > 10**11  # past its deadline: not touched
    else:
        assert ttl <= min(deadline, now + idle_ms) - now


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.one_of(st.binary(max_size=40), st.integers(250, 70_000).map(lambda n: b"v" * n)),
    description=st.one_of(st.none(), st.text(max_size=40), st.just("d" * 300)),
    own_idle_ms=st.one_of(st.none(), st.just(0), st.integers(1, 2**40)),
    app_idle_ms=st.one_of(st.none(), st.integers(1, 2**32)),
)
def test_the_read_script_finds_a_sessions_own_idle_timeout_past_its_values(
    redis_client: redis.Redis,
    values: bytes,
    description: str | None,
    own_idle_ms: int | None,
    app_idle_ms: int | None,
) -> None:
    """The ninth field lies past values of any size: the script skips them by their header."""
    store = RedisStore(redis_client)
    key = store.key_for(TOKEN)
    now = int(time.time() * 1000)
    deadline = now + 10**10
    record = Record(1, deadline, now, values, now, description, 10**10, own_idle_ms)
    blob = pack_record(record)[0]
    redis_client.set(key, blob, px=10**12)
    app_expiry = None if app_idle_ms is None else now + app_idle_ms
    assert store.find(key, idle_expiry_ms=app_expiry, sliding=True) == blob
    ttl = redis_client.pttl(key)
    if own_idle_ms == 0 or (own_idle_ms is None and app_idle_ms is None):
        assert ttl > 10**11  # no idle timeout: the expiry is not moved
    else:
        idle = own_idle_ms if own_idle_ms is not None else app_idle_ms
        assert idle is not None
        assert (
            min(deadline, now + idle) - now - 1000 <= ttl <= min(deadline, now + idle) - now + 100
        )
