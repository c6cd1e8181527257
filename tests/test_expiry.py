"""Idle and absolute timeouts, with short real timeouts on a real Redis, for both adapters."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
import redis

from flask_scs_redis import ConfigurationError

from harness import MakeClient, set_cookie_headers


def test_the_absolute_lifetime_holds_under_constant_activity(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = make_client(lifetime=1.0, idle_timeout=0.5)
    started = time.monotonic()
    client.get("/incr")
    reads = []
    while time.monotonic() - started < 1.4:
        reads.append((time.monotonic() - started, client.get("/read").text))
        time.sleep(0.1)
    assert all(value == "1" for at, value in reads if at < 0.9), reads
    assert all(value == "None" for at, value in reads if at > 1.05), reads


def test_writes_do_not_extend_the_absolute_lifetime(make_client: MakeClient) -> None:
    client = make_client(lifetime=0.6)
    client.get("/incr")
    time.sleep(0.3)
    assert client.get("/incr").text == "2"
    time.sleep(0.4)
    assert client.get("/read").text == "None"


def test_the_idle_timeout_slides_with_reads(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = make_client(lifetime=60, idle_timeout=0.5)
    client.get("/incr")
    for _ in range(5):  # 1.5 s in all, three idle timeouts
        time.sleep(0.3)
        assert client.get("/read").text == "1"
    time.sleep(0.7)
    assert client.get("/read").text == "None"
    assert list(redis_client.scan_iter()) == []  # Redis dropped the key itself


def test_the_idle_timeout_slides_with_writes(make_client: MakeClient) -> None:
    client = make_client(lifetime=60, idle_timeout=0.5)
    for expected in range(1, 6):
        assert client.get("/incr").text == str(expected)
        time.sleep(0.3)
    time.sleep(0.4)
    assert client.get("/read").text == "None"


def test_a_request_that_never_touches_the_session_does_not_slide_it(
    make_client: MakeClient,
) -> None:
    client = make_client(lifetime=60, idle_timeout=0.5)
    client.get("/incr")
    for _ in range(3):
        time.sleep(0.25)
        client.get("/none")
    assert client.get("/read").text == "None"


# A session's own expiry (README: The Session API, set_expiry)


def record_key(redis_client: redis.Redis) -> bytes:
    (key,) = [key for key in redis_client.keys("scs:session:*") if not key.endswith(b":user")]
    return key


def test_a_session_of_its_own_outlives_the_app_lifetime_and_the_others_do_not(
    make_client: MakeClient,
) -> None:
    """The remember-me shape: a long lifetime of its own and no idle timeout."""
    remembered = make_client(lifetime=0.8, idle_timeout=0.5)
    plain = make_client(lifetime=0.8, idle_timeout=0.5)
    remembered.get("/incr")
    remembered.get("/expiry?lifetime=60&idle=none")
    plain.get("/incr")
    time.sleep(1.0)  # past the app's idle timeout and its lifetime
    assert remembered.get("/read").text == "1"
    assert plain.get("/read").text == "None"


def test_set_expiry_survives_later_requests_and_renewals_and_drives_the_ttl(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = make_client(lifetime=3600, idle_timeout=60)
    client.get("/incr")
    client.get("/expiry?lifetime=7200&idle=600")
    assert 590_000 < redis_client.pttl(record_key(redis_client)) <= 600_000
    client.get("/incr")  # a later write keeps the session's own idle timeout
    client.get("/read")  # and so does a read, which slides by it, not by the app's
    assert 590_000 < redis_client.pttl(record_key(redis_client)) <= 600_000
    client.get("/renew")  # a renewal starts the session's own lifetime again
    client.get("/expiry?lifetime=7200&idle=none")
    ttl = redis_client.pttl(record_key(redis_client))
    assert 7_100_000 < ttl <= 7_200_000  # no idle timeout: the deadline is the TTL
    client.get("/renew")
    assert 7_100_000 < redis_client.pttl(record_key(redis_client)) <= 7_200_000
    assert client.get("/read").text == "2"


def test_set_expiry_keeps_the_idle_timeout_unless_given(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = make_client(lifetime=3600, idle_timeout=60)
    client.get("/incr")
    client.get("/expiry?lifetime=7200")
    assert 55_000 < redis_client.pttl(record_key(redis_client)) <= 60_000
    left = datetime.fromisoformat(client.get("/deadline").text) - datetime.now(timezone.utc)
    assert timedelta(minutes=119) < left <= timedelta(hours=2)


def test_a_persistent_cookie_follows_the_sessions_own_expiry(make_client: MakeClient) -> None:
    client = make_client(lifetime=3600, idle_timeout=60)
    client.get("/permanent")
    header = set_cookie_headers(client.get("/expiry?lifetime=86400&idle=none"))[0]
    assert "Max-Age=86399;" in header or "Max-Age=86400;" in header
    (again,) = set_cookie_headers(client.get("/read"))
    assert "Max-Age=8639" in again or "Max-Age=86400;" in again


@pytest.mark.parametrize(
    "query", ["lifetime=0", "lifetime=-1", "lifetime=60&idle=0", "lifetime=4e9"]
)
def test_set_expiry_refuses_a_duration_that_cannot_work(
    make_client: MakeClient, query: str
) -> None:
    client = make_client()
    client.get("/incr")
    with pytest.raises(ConfigurationError, match="must be"):
        client.get(f"/expiry?{query}")
    assert client.get("/read").text == "1"  # and the session is as it was


def test_a_purge_finds_a_session_whose_expiry_was_set_later(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    """Its index entry moves to the new deadline, or the index would drop it early."""
    client = make_client(lifetime=1, idle_timeout=1)
    client.get("/set?key=_user_id&value=42")
    client.get("/expiry?lifetime=60&idle=none")
    (index,) = redis_client.keys("scs:session:*:user")
    time.sleep(1.2)  # past the first deadline: an entry scored by it would be pruned
    assert client.get("/read").status_code == 200
    assert redis_client.zcard(index) == 1
    (score,) = [score for _, score in redis_client.zrange(index, 0, -1, withscores=True)]
    assert score > time.time() * 1000 + 50_000
