"""Redis Cluster and Sentinel, on real local topologies, with failover.

Quick runs can skip these with ``pytest -m "not cluster and not sentinel"``;
``make test`` runs them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pytest
import redis
from flask import Flask
from redis.crc import key_slot
from werkzeug.test import Client

from flask_scs_redis import RedisStore, SessionAdmin, SessionStoreUnavailable
from flask_scs_redis.testing import RedisServer
from flask_scs_redis.testing.topologies import RedisClusterServers, RedisSentinelGroup

from harness import store_of, stored_sessions
from views import GATES, Gate, build_flask_app, build_wsgi_app


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    with capsys.disabled():
        print(f"\n  {line}")


def flask_on(url: str, **config: Any) -> Flask:
    return build_flask_app(None, SCS_REDIS_URL=url, SCS_REDIS_TIMEOUT=0.5, **config)


def start_sessions(app: Flask, count: int) -> list[Client]:
    clients = []
    for number in range(count):
        client = app.test_client()
        query = {"key": "who", "value": str(number)}
        assert client.get("/set", query_string=query).status_code == 200
        clients.append(client)
    return clients


def recover(client: Client, path: str, timeout: float) -> tuple[float, int]:
    """Request ``path`` every 50 ms until it succeeds; return the seconds and the failures."""
    started, failures = time.monotonic(), 0
    while time.monotonic() - started < timeout:
        if client.get(path).status_code == 200:
            return time.monotonic() - started, failures
        failures += 1
        time.sleep(0.05)
    raise AssertionError(f"{path} still failed after {timeout} s ({failures} failures)")


# Redis Cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServers]:
    with RedisClusterServers(primaries=3, replicas_per_primary=1) as servers:
        yield servers


@pytest.mark.cluster
def test_sessions_spread_over_every_primary_and_all_of_it_works(
    cluster: RedisClusterServers,
) -> None:
    app = flask_on(cluster.url, SCS_KEY_PREFIX="spread:")
    clients = start_sessions(app, 60)
    per_primary = {
        server.port: sum(1 for _ in server.client().scan_iter(match="spread:*"))
        for server in cluster.primaries
    }
    assert all(count > 0 for count in per_primary.values()), per_primary
    assert sum(per_primary.values()) == 60
    first, second, third = clients[:3]
    assert first.get("/read").text == "None"
    assert first.get("/incr").text == "1"
    assert first.get("/incr").text == "2"
    old = second.get_cookie("session").value  # type: ignore[union-attr]
    second.get("/login", query_string={"user": "alice"})
    assert second.get_cookie("session").value != old  # type: ignore[union-attr]
    third.get("/logout")
    # SCAN on every primary, then pipelined GETs.
    assert sum(1 for _ in SessionAdmin(store_of(app)).iter_sessions(batch=7)) == 59


@pytest.mark.cluster
def test_overlapping_saves_lose_nothing_on_a_cluster(cluster: RedisClusterServers) -> None:
    app = flask_on(cluster.url, SCS_KEY_PREFIX="overlap:")
    first, second = app.test_client(), app.test_client()
    first.get("/set", query_string={"key": "n", "value": "1"})
    second.set_cookie("session", first.get_cookie("session").value)  # type: ignore[union-attr]
    gate = GATES["cluster"] = Gate()
    thread = threading.Thread(
        target=first.get,
        args=("/set",),
        kwargs={"query_string": {"key": "a", "value": "A", "hold": "cluster"}},
    )
    thread.start()
    assert gate.arrived.wait(10)
    second.get("/set", query_string={"key": "b", "value": "B"})
    gate.release.set()
    thread.join(10)
    GATES.clear()
    assert stored_sessions(store_of(app).client, prefix="overlap:") == [
        {"n": "1", "b": "B", "a": "A"}
    ]


@pytest.mark.cluster
def test_a_ready_cluster_client_and_the_wsgi_middleware_work_unchanged(
    cluster: RedisClusterServers,
) -> None:
    flask_client = build_flask_app(cluster.client(), SCS_KEY_PREFIX="ready:").test_client()
    wsgi_client = Client(build_wsgi_app(cluster.client(), prefix="ready-wsgi:"))
    for client in (flask_client, wsgi_client):
        assert [client.get("/incr").text for _ in range(3)] == ["1", "2", "3"]
    store = RedisStore.from_url(cluster.url, prefix="from-url:", min_replicas=1)
    key = store.key_for("c" * 43)
    assert store.create(key, b"acknowledged", int(time.time() * 1000) + 60_000)
    assert store.find(key) == b"acknowledged"


@pytest.mark.cluster
def test_cluster_failover_keeps_acknowledged_sessions(capsys: pytest.CaptureFixture[str]) -> None:
    # Two replicas a primary, so the promoted one still has a replica to acknowledge writes.
    with RedisClusterServers(primaries=3, replicas_per_primary=2) as servers:
        app = flask_on(servers.url, SCS_MIN_REPLICAS=1)
        clients = start_sessions(app, 30)
        for client in clients:
            assert client.get("/incr").text == "1"
        store = store_of(app)
        victim_key = store.key_for(clients[0].get_cookie("session").value)  # type: ignore[union-attr]
        victim = servers.primary_for(victim_key)
        victim.stop()
        seconds, failures = recover(clients[0], "/incr", timeout=20)
        report(
            capsys,
            f"cluster failover: writes to the lost primary's slots worked again after"
            f" {seconds:.1f} s, {failures} requests failed meanwhile (503)",
        )
        assert servers.primary_for(victim_key) is not victim
        # Every session acknowledged before the kill is still there...
        assert [client.get("/read").text for client in clients[1:]] == ["1"] * 29
        # ...and writes work on every primary once each has a replica again.
        for client in clients:
            recover(client, "/incr", timeout=20)


# Redis Sentinel


@pytest.fixture(scope="module")
def sentinel_group() -> Iterator[RedisSentinelGroup]:
    with RedisSentinelGroup(replicas=1) as group:
        yield group


@pytest.mark.sentinel
def test_sentinel_sessions_from_config_alone(sentinel_group: RedisSentinelGroup) -> None:
    app = flask_on(sentinel_group.url, SCS_MIN_REPLICAS=1)
    client = app.test_client()
    assert [client.get("/incr").text for _ in range(3)] == ["1", "2", "3"]
    old = client.get_cookie("session").value  # type: ignore[union-attr]
    client.get("/login", query_string={"user": "alice"})
    assert client.get_cookie("session").value != old  # type: ignore[union-attr]
    assert client.get("/read").text == "3"
    client.get("/logout")
    assert client.get("/read").text == "None"


@pytest.mark.sentinel
def test_a_ready_sentinel_client_works_unchanged(sentinel_group: RedisSentinelGroup) -> None:
    from redis.sentinel import Sentinel

    sentinel = Sentinel([("127.0.0.1", s.port) for s in sentinel_group.sentinels])
    primary = sentinel.master_for(sentinel_group.service_name)
    client = Client(build_wsgi_app(primary, prefix="sentinel-wsgi:"))
    assert [client.get("/incr").text for _ in range(2)] == ["1", "2"]


@pytest.mark.sentinel
def test_sentinel_failover_keeps_acknowledged_sessions(capsys: pytest.CaptureFixture[str]) -> None:
    with RedisSentinelGroup(replicas=2) as group:
        app = flask_on(group.url, SCS_MIN_REPLICAS=1)
        clients = start_sessions(app, 10)
        for client in clients:
            assert client.get("/incr").text == "1"
        group.primary.stop()
        seconds, failures = recover(clients[0], "/incr", timeout=30)
        report(
            capsys,
            f"sentinel failover: writes worked again after {seconds:.1f} s,"
            f" {failures} requests failed meanwhile (503)",
        )
        assert group.current_primary() is not group.primary
        assert [client.get("/read").text for client in clients[1:]] == ["1"] * 9
        for client in clients:
            recover(client, "/incr", timeout=20)


# Durability


def test_too_few_replicas_is_an_outage_not_a_claimed_write(
    fresh_redis_server: RedisServer,
) -> None:
    store = RedisStore(fresh_redis_server.client(), min_replicas=1, replica_timeout=0.1)
    with pytest.raises(SessionStoreUnavailable, match="only 0 of the 1 replicas"):
        store.create(store.key_for("d" * 43), b"record", int(time.time() * 1000) + 60_000)
    app = build_flask_app(fresh_redis_server.client(), SCS_MIN_REPLICAS=1, SCS_REPLICA_TIMEOUT=0.1)
    assert app.test_client().get("/incr").status_code == 503


def test_cluster_and_sentinel_urls_are_checked() -> None:
    from flask_scs_redis import ConfigurationError

    for url in (
        "redis+cluster://127.0.0.1:1/3",
        "redis+cluster://no-port",
        "redis+sentinel://127.0.0.1:26379",
        "redis+sentinel://127.0.0.1:26379/service/0/extra",
    ):
        with pytest.raises(ConfigurationError, match="invalid Redis URL"):
            RedisStore.from_url(url)


def test_a_sentinel_url_carries_service_db_and_passwords() -> None:
    store = RedisStore.from_url(
        "redis+sentinel://:secret@127.0.0.1:26379,127.0.0.1:26380/mymaster/2?sentinel_password=s3"
    )
    pool = store.client.connection_pool
    assert pool.service_name == "mymaster"
    assert pool.connection_kwargs["db"] == 2
    assert pool.connection_kwargs["password"] == "secret"
    sentinels = pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["port"] for s in sentinels] == [26379, 26380]
    assert sentinels[0].connection_pool.connection_kwargs["password"] == "s3"


@pytest.mark.cluster
def test_the_user_index_and_log_out_everywhere_on_a_cluster(cluster: RedisClusterServers) -> None:
    app = flask_on(cluster.url, SCS_KEY_PREFIX="users:")
    devices = [app.test_client() for _ in range(4)]
    for device in devices:
        device.get("/set", query_string={"key": "_user_id", "value": "alice"})
    assert len(devices[0].get("/mine").text.split(",")) == 4
    assert devices[0].get("/log-out-others").text == "3"
    assert [device.get("/read").text for device in devices[1:]] == ["None"] * 3
    from flask_scs_redis import RedisSessions

    with app.app_context():
        assert RedisSessions().count() == 1


# Write-only traffic through a cluster failover, with a replica acknowledging each write


def slots_of(primary: RedisServer) -> set[int]:
    """The hash slots ``primary`` serves now."""
    client = primary.client()
    try:
        ranges = client.execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
    finally:
        client.close()
    return {
        slot
        for low, high, owner, *_ in ranges
        if int(owner[1]) == primary.port
        for slot in range(low, high + 1)
    }


def new_visitors_write(app: Flask, visitors: int = 24) -> list[tuple[str, int | None]]:
    """Have ``visitors`` new visitors each write a session; return each status and key slot.

    Without a cookie a request sends nothing but the create (SET NX) and its
    WAIT, so nothing else refreshes the cluster client's slot map. An error out
    of the test client is what a server answers with a 500. The slot is known
    when a cookie was set.
    """
    outcomes: list[tuple[str, int | None]] = []
    for _ in range(visitors):
        client = app.test_client()
        try:
            status = str(client.get("/set", query_string={"key": "k", "value": "v"}).status_code)
        except Exception as exc:
            status = f"500 {exc!r}"
        cookie = client.get_cookie("session")
        slot = None if cookie is None else key_slot(store_of(app).key_for(cookie.value).encode())
        outcomes.append((status, slot))
    return outcomes


def failed_over(servers: RedisClusterServers, key: str, old: RedisServer) -> bool:
    """Whether another primary than ``old`` serves ``key`` and every running node says ok."""
    try:
        if servers.primary_for(key) is old:
            return False
        servers.wait_until_ok(timeout=0)
    except (LookupError, RuntimeError):
        return False
    return True


class Recovery(NamedTuple):
    """Seconds from the fault until the cluster was ok, a moved slot took a write, all did."""

    ok: float
    first: float | None
    steady: float | None
    failures: list[str]


def writes_recover(
    app: Flask, moved: set[int], done: Callable[[], bool], settle: float = 2.0, limit: float = 9.0
) -> Recovery:
    """Send rounds of new visitors' writes until all succeed for ``settle`` s after ``done()``.

    Call it right after the fault. ``first`` is the first write that worked on
    the ``moved`` slots; ``steady`` starts the success that lasted. Gives up
    ``limit`` s after ``done()``.
    """
    began = time.monotonic()
    done_at = first_at = steady_at = None
    failures: list[str] = []
    while time.monotonic() < began + 20:
        started = time.monotonic()
        if done_at is None and done():
            done_at = started
        outcomes = new_visitors_write(app)
        failed = [status for status, _ in outcomes if status != "200"]
        failures += failed
        if first_at is None and any(s == "200" and slot in moved for s, slot in outcomes):
            first_at = started
        if done_at is None:
            continue
        if failed:
            steady_at = None
        else:
            steady_at = steady_at or started
            if time.monotonic() - steady_at >= settle:
                break
        if time.monotonic() > done_at + limit:
            break
    assert done_at is not None, "the cluster never failed over"
    first, steady = (None if at is None else at - began for at in (first_at, steady_at))
    return Recovery(done_at - began, first, steady, failures)


def taken_over(
    servers: RedisClusterServers, replica: RedisServer, key: str, old: RedisServer
) -> Callable[[], bool]:
    """Ask ``replica`` to take over (CLUSTER FAILOVER); return whether it did.

    A manual failover gives up after a few seconds on a busy machine, so
    asking whether it is done asks again every 4 s.
    """
    asked = [0.0]

    def done() -> bool:
        if failed_over(servers, key, old):
            return True
        if time.monotonic() - asked[0] > 4:
            client = replica.client()
            with contextlib.suppress(redis.ResponseError):  # it took over meanwhile
                client.execute_command("CLUSTER FAILOVER")  # type: ignore[no-untyped-call]
            client.close()
            asked[0] = time.monotonic()
        return False

    done()
    return done


def cluster_for_durable_writes() -> RedisClusterServers:
    # Two replicas a primary, so the promoted one still has a replica to acknowledge writes.
    return RedisClusterServers(primaries=3, replicas_per_primary=2)


def key_served_by(servers: RedisClusterServers, primary: RedisServer) -> str:
    return next(
        key for key in (f"probe:{n}" for n in range(1000)) if servers.primary_for(key) is primary
    )


def replica_of(servers: RedisClusterServers, primary: RedisServer) -> RedisServer:
    for replica in servers.replicas:
        client = replica.client()
        try:
            if client.info("replication").get("master_port") == primary.port:
                return replica
        finally:
            client.close()
    raise LookupError(f"no replica of {primary.port}")


def report_recovery(capsys: pytest.CaptureFixture[str], what: str, recovery: Recovery) -> None:
    def seconds(at: float | None) -> str:
        return "never" if at is None else f"{at:.1f} s ({max(0.0, at - recovery.ok):.1f} s)"

    kinds = sorted({failure[:3] for failure in recovery.failures})
    counts = ", ".join(f"{sum(f[:3] == k for f in recovery.failures)} x {k}" for k in kinds)
    report(
        capsys,
        f"{what}, seconds after the fault (after the cluster was ok): cluster ok"
        f" {recovery.ok:.1f} s, first write to the moved slots {seconds(recovery.first)},"
        f" every write from {seconds(recovery.steady)}; failures: {counts or 'none'}",
    )


def recovered_within(recovery: Recovery, seconds: float) -> bool:
    return recovery.steady is not None and recovery.steady - recovery.ok <= seconds


def writing_to_a_victim(servers: RedisClusterServers) -> tuple[Flask, RedisServer, set[int], str]:
    """An app whose writes need a replica's acknowledgement, and the primary about to fail.

    Return the app (which wrote once, all 200), that primary, its slots, and
    a key it serves.
    """
    app = flask_on(servers.url, SCS_MIN_REPLICAS=1, SCS_REPLICA_TIMEOUT=0.2)
    assert {status for status, _ in new_visitors_write(app)} == {"200"}
    victim = servers.primaries[0]
    return app, victim, slots_of(victim), key_served_by(servers, victim)


@pytest.mark.cluster
def test_a_graceful_cluster_failover_never_fails_durable_writes_with_500(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with cluster_for_durable_writes() as servers:
        app, victim, moved, probe = writing_to_a_victim(servers)
        promoted = replica_of(servers, victim)
        recovery = writes_recover(app, moved, taken_over(servers, promoted, probe, victim))
        report_recovery(capsys, "graceful cluster failover", recovery)
        assert servers.primary_for(probe) is promoted
        assert [failure for failure in recovery.failures if failure.startswith("500")] == []
        assert recovered_within(recovery, 3), recovery.failures[-3:]


@pytest.mark.cluster
def test_a_killed_cluster_primary_costs_durable_writes_503s_then_heals(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with cluster_for_durable_writes() as servers:
        app, victim, moved, probe = writing_to_a_victim(servers)
        victim.stop()
        recovery = writes_recover(app, moved, lambda: failed_over(servers, probe, victim))
        report_recovery(capsys, "killed cluster primary", recovery)
        assert set(recovery.failures) <= {"503"}, recovery.failures[:3]
        assert recovered_within(recovery, 5), recovery.failures[-3:]
