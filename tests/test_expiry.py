"""Idle and absolute timeouts, with short real timeouts on a real Redis, for both adapters."""

from __future__ import annotations

import time

import redis

from harness import MakeClient


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
