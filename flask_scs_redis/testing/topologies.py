"""A Redis Cluster and a Sentinel group of our own, to test scaling out and failover.

Each starts real ``redis-server`` processes on free loopback ports, as
:class:`~.server.RedisServer` does, keeps its timeouts low so that a killed
primary is replaced within seconds, and stops everything on leaving the block.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from functools import partial
from types import TracebackType
from typing import Any

import redis

from .server import RedisServer, free_port


def free_cluster_port() -> int:
    """Return a free port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def _start_on_a_free_port(server: RedisServer, tries: int = 3) -> None:
    """Start a cluster node, on another free port should its own be taken meanwhile.

    A port, or its bus port, found free can be taken by another process (an
    outgoing connection's) before the node binds it.
    """
    for attempt in range(1, tries + 1):
        try:
            server.start()
            return
        except RuntimeError:
            if attempt == tries or "Failed listening" not in server.log_path.read_text(
                errors="replace"
            ):
                raise
            server.port = free_cluster_port()
            (server.log_path.parent / "nodes.conf").unlink(missing_ok=True)


def _command(client: redis.Redis, *args: Any) -> Any:
    """Run a command redis-py has no typed method for (CLUSTER ..., SENTINEL ...)."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


# Start a replica's first sync at once, not after the default 5 s wait for others.
_QUICK_SYNC = ("--repl-diskless-sync-delay", "0")


def _replica_in_sync(client: redis.Redis) -> bool:
    info = client.info("replication")
    return info.get("role") == "slave" and info.get("master_link_status") == "up"


def _wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except redis.exceptions.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


class _ServerGroup:
    """Servers started and stopped together."""

    def _processes(self) -> list[RedisServer]:
        raise NotImplementedError

    def start(self) -> _ServerGroup:
        raise NotImplementedError

    def close(self) -> None:
        """Stop every process and remove their folders."""
        for server in self._processes():
            server.close()

    def __enter__(self) -> Any:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class RedisClusterServers(_ServerGroup):
    """A Redis Cluster of our own: primaries with replicas, on free loopback ports.

    The cluster is formed with CLUSTER ADDSLOTS, MEET and REPLICATE, so only
    ``redis-server`` is needed. ``node_timeout_ms`` is kept low, so a killed
    primary's replica takes over within seconds.
    """

    SLOTS = 16384

    def __init__(
        self, primaries: int = 3, replicas_per_primary: int = 1, node_timeout_ms: int = 1000
    ) -> None:
        options = (
            "--cluster-enabled", "yes",
            "--cluster-node-timeout", str(node_timeout_ms),
            "--cluster-require-full-coverage", "no",
            "--cluster-config-file", "nodes.conf",
            *_QUICK_SYNC,
        )  # fmt: skip
        self.primaries = [RedisServer(*options, port=free_cluster_port()) for _ in range(primaries)]
        self.replicas = [
            RedisServer(*options, port=free_cluster_port())
            for _ in range(primaries * replicas_per_primary)
        ]

    @property
    def servers(self) -> list[RedisServer]:
        """Every node, primaries first."""
        return [*self.primaries, *self.replicas]

    @property
    def url(self) -> str:
        """A ``redis+cluster://`` URL naming every node as a startup node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{s.port}" for s in self.servers)

    def start(self) -> RedisClusterServers:
        """Start the nodes, assign the slots, pair the replicas, and wait for state ok."""
        for server in self.servers:
            _start_on_a_free_port(server)
        clients = [server.client() for server in self.servers]
        share = self.SLOTS // len(self.primaries)
        for number, client in enumerate(clients[: len(self.primaries)]):
            last = self.SLOTS if number == len(self.primaries) - 1 else (number + 1) * share
            _command(client, "CLUSTER ADDSLOTS", *range(number * share, last))
        for client in clients[1:]:
            _command(client, "CLUSTER MEET", "127.0.0.1", self.primaries[0].port)
        _wait_until(
            lambda: all(len(self._known_nodes(c)) == len(clients) for c in clients),
            30,
            "the nodes to meet",
        )
        primary_ids = [_command(c, "CLUSTER MYID").decode() for c in clients]
        for number, client in enumerate(clients[len(self.primaries) :]):
            primary = primary_ids[number % len(self.primaries)]
            _wait_until(partial(self._knows, client, primary), 30, "a replica to learn its primary")
            _command(client, "CLUSTER REPLICATE", primary)
        self.wait_until_ok()
        _wait_until(
            lambda: all(_replica_in_sync(c) for c in clients[len(self.primaries) :]),
            30,
            "the replicas to sync",
        )
        for client in clients:
            client.close()
        return self

    @staticmethod
    def _nodes(client: redis.Redis) -> dict[str, dict[str, Any]]:
        # redis-py parses CLUSTER NODES into {"host:port": {"node_id": ..., ...}}.
        return _command(client, "CLUSTER NODES")  # type: ignore[no-any-return]

    @classmethod
    def _knows(cls, client: redis.Redis, node_id: str) -> bool:
        return node_id in cls._known_nodes(client)

    @classmethod
    def _known_nodes(cls, client: redis.Redis) -> set[str]:
        return {node["node_id"] for node in cls._nodes(client).values()}

    def wait_until_ok(self, timeout: float = 30) -> None:
        """Wait until every running node reports ``cluster_state:ok``."""

        def ok() -> bool:
            for server in self.servers:
                if server.process is None:
                    continue
                client = server.client(socket_timeout=1)
                try:
                    info = _command(client, "CLUSTER INFO")
                finally:
                    client.close()
                if info.get("cluster_state") != "ok":  # redis-py parses it into a dict
                    return False
            return True

        _wait_until(ok, timeout, "cluster_state:ok")

    def primary_for(self, key: str, timeout: float = 5.0) -> RedisServer:
        """The server that is the primary for ``key`` now.

        Asked of one running node, whose view may lag a failover by a
        gossip round: it is asked again until it names a primary that runs.
        """
        found: list[RedisServer] = []

        def named() -> bool:
            found[:] = self._primaries_for(key)
            return bool(found)

        try:
            _wait_until(named, timeout, f"a primary for {key!r}")
        except RuntimeError:
            raise LookupError(f"no primary serves {key!r}") from None
        return found[0]

    def _primaries_for(self, key: str) -> list[RedisServer]:
        running = next(server for server in self.servers if server.process is not None)
        probe = running.client(socket_timeout=1)
        try:
            slot = int(_command(probe, "CLUSTER KEYSLOT", key))
            for address, node in self._nodes(probe).items():
                if "master" not in node["flags"] or "fail" in node["flags"]:
                    continue
                if any(int(low) <= slot <= int(high) for low, high, *_ in node["slots"]):
                    port = int(address.rsplit(":", 1)[1].split("@", 1)[0])
                    servers = [server for server in self.servers if server.port == port]
                    return [server for server in servers if server.process is not None]
        finally:
            probe.close()
        return []

    def client(self, **kwargs: Any) -> Any:
        """Return a new ``redis.cluster.RedisCluster`` on these nodes."""
        from redis.cluster import ClusterNode, RedisCluster

        nodes = [
            ClusterNode("127.0.0.1", server.port)  # type: ignore[no-untyped-call]
            for server in self.servers
        ]
        return RedisCluster(startup_nodes=nodes, **kwargs)

    def _processes(self) -> list[RedisServer]:
        return self.servers


class RedisSentinelGroup(_ServerGroup):
    """A primary, its replicas and a quorum of sentinels, on free loopback ports.

    ``down_after_ms`` is kept low, so a killed primary is replaced within
    seconds.
    """

    def __init__(
        self,
        replicas: int = 1,
        sentinels: int = 3,
        service_name: str = "scs-primary",
        down_after_ms: int = 1000,
    ) -> None:
        self.service_name = service_name
        self.primary = RedisServer(*_QUICK_SYNC)
        self.replicas = [
            RedisServer(*_QUICK_SYNC, "--replicaof", "127.0.0.1", str(self.primary.port))
            for _ in range(replicas)
        ]
        quorum = sentinels // 2 + 1
        config = (
            f"sentinel monitor {service_name} 127.0.0.1 {self.primary.port} {quorum}\n"
            f"sentinel down-after-milliseconds {service_name} {down_after_ms}\n"
            f"sentinel failover-timeout {service_name} 10000\n"
            f"sentinel parallel-syncs {service_name} 1\n"
        )
        self.sentinels = [RedisServer("--sentinel", config=config) for _ in range(sentinels)]

    @property
    def url(self) -> str:
        """A ``redis+sentinel://`` URL naming the sentinels and the service."""
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service_name}/0"

    def start(self) -> RedisSentinelGroup:
        """Start the primary, the replicas and the sentinels, and wait until all is linked."""
        self.primary.start()
        for replica in self.replicas:
            replica.start()
        for sentinel in self.sentinels:
            sentinel.start()
        replica_clients = [replica.client() for replica in self.replicas]
        _wait_until(
            lambda: all(_replica_in_sync(client) for client in replica_clients),
            30,
            "the replicas to sync",
        )
        for client in replica_clients:
            client.close()

        def sentinels_ready() -> bool:
            for sentinel in self.sentinels:
                client = sentinel.client(socket_timeout=1)
                try:
                    state: Any = client.sentinel_master(self.service_name)
                finally:
                    client.close()
                if int(state["num-other-sentinels"]) < len(self.sentinels) - 1:
                    return False
                if int(state["num-slaves"]) < len(self.replicas):
                    return False
            return True

        _wait_until(sentinels_ready, 30, "the sentinels to find each other and the replicas")
        return self

    def current_primary(self) -> RedisServer:
        """The server the sentinels name as primary now."""
        client = self.sentinels[0].client(socket_timeout=1)
        try:
            address: Any = client.sentinel_get_master_addr_by_name(self.service_name)
            port = address[1]
        finally:
            client.close()
        return next(s for s in [self.primary, *self.replicas] if s.port == int(port))

    def _processes(self) -> list[RedisServer]:
        return [*self.sentinels, self.primary, *self.replicas]
