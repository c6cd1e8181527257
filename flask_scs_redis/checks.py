"""Check a deployment: can the store reach Redis, and may it do there all it needs?

:func:`check_store` answers one :class:`CheckResult` a check; ``flask scs
check`` prints them. It changes no session: its few writes go to throwaway
keys under the prefix (``prefix + random + ":check"``, a shape the library
never lists or purges) that expire within ten seconds and are deleted at once.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import redis
from redis.exceptions import NoPermissionError, RedisClusterException, RedisError, ResponseError

from .clock import now_ms
from .connections import is_cluster
from .errors import SessionError
from .store import RedisStore

#: The oldest Redis the library runs on: SET ... PXAT came with 6.2.
MIN_VERSION = (6, 2)
_PROBE_TTL_MS = 10_000
_PROBE_SCRIPT = "return 1"
# What a check may meet; each becomes a FAIL line, never a traceback.
_FAILURES = (RedisError, RedisClusterException, SessionError, OSError)
_CONNECT_ERROR = re.compile(r"Error -?\d+ connecting to (.+?)\. (.+?)\.?$")


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check of a deployment; ``str()`` gives its line.

    .. versionadded:: 0.1
    """

    #: What was checked, such as "connect and authenticate to redis://127.0.0.1:6379/0".
    name: str
    #: Whether it passed.
    ok: bool
    #: Why it failed and what to do, or what a pass found.
    detail: str = ""

    def __str__(self) -> str:
        line = f"{'ok  ' if self.ok else 'FAIL'} {self.name}"
        return f"{line}: {self.detail}" if self.detail else line


def check_store(store: RedisStore) -> list[CheckResult]:
    """Check that ``store`` reaches Redis and may do there all it needs; one result a check.

    In order: through Sentinel, that the sentinels name a primary; that the
    store connects and authenticates (on a Cluster, to every primary); then on
    each primary, that it runs Redis 6.2 or later as a primary, that the ACL
    lets the store's user run every command the library sends, and, with
    ``min_replicas``, that enough replicas acknowledge a write. Nothing raises:
    a store error is a failed result. After a failed connection nothing else
    can be checked, so the list ends there.

    .. versionadded:: 0.1
    """
    client = store.client
    if is_cluster(client):
        reached, servers = _reach_cluster(client)
        results = [reached]
    else:
        results, servers = _reach_one(client)
    for server, address, hello in servers:
        version = _version_check(address, hello)
        results.append(version)
        if version.ok:
            results.append(_acl_check(store, server, address))
            if store.min_replicas:
                results.append(_replicas_check(store, server, address))
    return results


_Server = tuple[Any, str, dict[str, Any] | None]  # a client of one server, its address, HELLO


def _reach_one(client: Any) -> tuple[list[CheckResult], list[_Server]]:
    """Connect to a single server, or to the primary the sentinels name."""
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    results = []
    if callable(getattr(pool, "get_master_address", None)):  # a Sentinel master_for client
        hosts = ",".join(_address(s) for s in pool.sentinel_manager.sentinels)
        name = f"find the primary of {pool.service_name!r} through the sentinels at"
        name += f" {_scheme(pool)}+sentinel://{hosts}/{pool.service_name}/{kwargs.get('db', 0)}"
        try:
            host, port = pool.get_master_address()
        except _FAILURES as exc:
            return [CheckResult(name, False, _cause(exc, kwargs))], []
        address = f"{host}:{port}"
        results.append(CheckResult(name, True, address))
        where = f"the primary at {_url(pool, address)}"
    else:
        address = _address(client)
        where = _url(pool, address)
    name = f"connect and authenticate to {where}"
    try:
        hello = _hello(client)
    except _FAILURES as exc:
        return [*results, CheckResult(name, False, _cause(exc, kwargs))], []
    return [*results, CheckResult(name, True)], [(client, address, hello)]


def _reach_cluster(cluster: Any) -> tuple[CheckResult, list[_Server]]:
    """Connect to every primary the Cluster client knows of."""
    hosts = ",".join(cluster.nodes_manager.startup_nodes)
    name = f"connect and authenticate to every primary of redis+cluster://{hosts}"
    servers, failed = [], []
    try:
        primaries = sorted(cluster.get_primaries(), key=lambda node: node.name)
        for node in primaries:
            server = cluster.get_redis_connection(node)
            try:
                servers.append((server, node.name, _hello(server)))
            except _FAILURES as exc:
                failed.append(f"{node.name}: {_cause(exc, _kwargs(server))}")
    except _FAILURES as exc:
        return CheckResult(name, False, _cause(exc, {})), []
    if failed or not primaries:
        return CheckResult(name, False, "; ".join(failed) or "no primary is known"), servers
    names = ", ".join(address for _, address, _ in servers)
    return CheckResult(name, True, f"{len(servers)} primaries: {names}"), servers


def _hello(server: Any) -> dict[str, Any] | None:
    """What HELLO says of the server (every user may send it), or None before Redis 6.2."""
    try:
        reply = server.execute_command("HELLO")
    except ResponseError:
        return None  # HELLO without a protocol version came with 6.2
    if isinstance(reply, list):  # RESP2: a flat list of names and values
        reply = dict(zip(reply[::2], reply[1::2]))
    return {_text(name): _text(value) for name, value in reply.items()}


def _version_check(address: str, hello: dict[str, Any] | None) -> CheckResult:
    name = f"Redis {'.'.join(map(str, MIN_VERSION))} or later, a primary, at {address}"
    if hello is None:
        upgrade = "it does not answer HELLO as 6.2 does: upgrade to 6.2 or later (SET ... PXAT)"
        return CheckResult(name, False, upgrade)
    product = "Redis" if hello.get("server", "redis") == "redis" else hello["server"]
    found = f"{product} {hello.get('version')}"
    numbers = tuple(int(part) for part in re.findall(r"\d+", str(hello.get("version")))[:2])
    if numbers < MIN_VERSION:
        return CheckResult(name, False, f"{found} lacks SET ... PXAT: upgrade to 6.2 or later")
    if hello.get("role", "master") != "master":
        return CheckResult(name, False, f"{found} is a {hello['role']}: name the primary instead")
    return CheckResult(name, True, found)


def _acl_check(store: RedisStore, server: Any, address: str) -> CheckResult:
    """Ask ACL DRYRUN about each command the library sends, else try each on throwaway keys."""
    user = _whoami(server)
    name = f"ACL user '{user}' may run the commands the library sends, at {address}"
    try:
        with _probe_keys(store, server, 2) as keys:
            if keys is None:
                return CheckResult(name, True, "no key under the prefix lives on this primary")
            commands = _commands(store, *keys)
            answers = _dry_run(server, user, commands)
            how = "checked with ACL DRYRUN"
            if answers is None:  # Redis 6.2, or a user without ACL DRYRUN (@admin)
                pipe = server.pipeline(transaction=False)
                for _, args in commands:
                    pipe.execute_command(*args)
                answers = pipe.execute(raise_on_error=False)
                how = "tried on throwaway keys"
    except _FAILURES as exc:
        return CheckResult(name, False, _cause(exc, {}))
    denied, keys_denied, missing, other = [], False, [], []
    for (label, _), answer in zip(commands, answers):
        said = _text(answer) if isinstance(answer, bytes) else str(answer)
        if isinstance(answer, NoPermissionError) or "no permissions" in said:
            if " key" in said:
                keys_denied = True
            elif label not in denied:
                denied.append(label)
        elif "unknown command" in said or "not found" in said:
            missing.append(label)
        elif isinstance(answer, ResponseError) and not said.startswith("No matching script"):
            other.append(f"{label}: {said}")  # NOSCRIPT above: the EVALSHA was allowed
    grant = f"— grant them: ACL SETUSER {user}"
    pattern = store.keys.record_pattern[:-43] + "*"  # the escaped prefix, then anything
    problems = (
        [f"it may not run {', '.join(denied)} {grant} +{' +'.join(denied)}"] if denied else []
    )
    if keys_denied:
        problems.append(f"it may not use the keys under {store.prefix!r} {grant} ~{pattern}")
    if missing:
        problems.append(f"the server has no {', '.join(missing)}: renamed or disabled?")
    problems += other
    if problems:
        return CheckResult(name, False, "; ".join(problems))
    labels = {label for label, _ in commands}
    return CheckResult(name, True, f"{len(labels)} commands, {how}")


def _commands(store: RedisStore, key: str, index: str) -> list[tuple[str, list[Any]]]:
    """Each command the library sends, Lua's included, on throwaway keys, safe to run in order."""
    expiry = now_ms() + _PROBE_TTL_MS
    sha = hashlib.sha1(_PROBE_SCRIPT.encode(), usedforsecurity=False).hexdigest()
    commands: list[tuple[str, list[Any]]] = [
        ("set", ["SET", key, "check", "PXAT", expiry, "NX"]),
        ("get", ["GET", key]),
        ("pttl", ["PTTL", key]),
        ("exists", ["EXISTS", key]),
        ("type", ["TYPE", key]),
        ("pexpireat", ["PEXPIREAT", key, expiry]),
        ("script|load", ["SCRIPT", "LOAD", _PROBE_SCRIPT]),
        ("eval", ["EVAL", _PROBE_SCRIPT, 1, key]),
        ("evalsha", ["EVALSHA", sha, 1, key]),
        ("zadd", ["ZADD", index, expiry, "check"]),
        ("pexpireat", ["PEXPIREAT", index, expiry]),
        ("zscore", ["ZSCORE", index, "check"]),
        ("zcard", ["ZCARD", index]),
        ("zrange", ["ZRANGE", index, 0, -1, "WITHSCORES"]),
        ("zrem", ["ZREM", index, "check"]),
        ("zremrangebyscore", ["ZREMRANGEBYSCORE", index, "-inf", expiry]),
        ("scan", ["SCAN", 0, "MATCH", store.keys.record_pattern, "COUNT", 10]),
    ]
    if store.min_replicas:
        commands.append(("wait", ["WAIT", 0, 1]))
        if is_cluster(store.client):
            commands.append(("asking", ["ASKING"]))
    return [*commands, ("del", ["DEL", key]), ("del", ["DEL", index])]


def _dry_run(server: Any, user: str, commands: list[tuple[str, list[Any]]]) -> list[Any] | None:
    """ACL DRYRUN's answer for each command, or None where the user may not ask (or before 7.0)."""
    pipe = server.pipeline(transaction=False)
    for _, args in commands:
        pipe.execute_command("ACL", "DRYRUN", user, *args)
    answers: list[Any] = pipe.execute(raise_on_error=False)
    refused = [a for a in answers if isinstance(a, NoPermissionError) or "subcommand" in str(a)]
    return None if refused else answers


def _replicas_check(store: RedisStore, server: Any, address: str) -> CheckResult:
    """Count the connected replicas, and those that acknowledge a test write in time."""
    wanted = store.min_replicas
    timeout_ms = store._replica_timeout_ms  # the store's own wait, so the check waits as it does
    replicas = "1 replica acknowledges" if wanted == 1 else f"{wanted} replicas acknowledge"
    name = f"{replicas} each write to {address} within {timeout_ms} ms"
    try:
        connected: int | None = int(server.info("replication")["connected_slaves"])
    except _FAILURES:
        connected = None  # INFO may be denied: the library never sends it
    try:
        with _probe_keys(store, server, 1) as keys:
            if keys is None:
                return CheckResult(name, True, "no key under the prefix lives on this primary")
            with server.pipeline(transaction=False) as pipe:
                pipe.set(keys[0], "check", px=_PROBE_TTL_MS)
                pipe.wait(wanted, timeout_ms)
                _, acknowledged = pipe.execute()
    except _FAILURES as exc:
        return CheckResult(name, False, _cause(exc, {}))
    counted = "INFO is denied, so the connected replicas are not counted"
    if connected is not None:
        counted = "1 replica is" if connected == 1 else f"{connected} replicas are"
        counted += " connected"
    detail = f"{counted}, and {acknowledged} acknowledged a test write"
    return CheckResult(name, acknowledged >= wanted, detail)


@contextmanager
def _probe_keys(store: RedisStore, server: Any, count: int) -> Iterator[list[str] | None]:
    """Throwaway keys under the prefix, in ``server``'s slots on a Cluster; deleted afterwards.

    None if no key can be (a prefix with a hash tag puts every key on one primary).
    """
    cluster = store.client if is_cluster(store.client) else None
    candidates = (f"{store.prefix}{secrets.token_urlsafe(32)}:check" for _ in range(5000))
    fits = (key for key in candidates if cluster is None or _holds(cluster, server, key))
    keys = list(itertools.islice(fits, count))
    if len(keys) < count:
        yield None
        return
    try:
        yield keys
    finally:
        for key in keys:  # one at a time: on a Cluster, the keys may be in different slots
            with suppress(*_FAILURES):  # else the key expires by itself within seconds
                server.delete(key)


def _holds(cluster: Any, server: Any, key: str) -> bool:
    node = cluster.nodes_manager.get_node_from_slot(cluster.keyslot(key))
    return node.redis_connection is server


def _whoami(server: Any) -> str:
    try:
        return str(_text(server.execute_command("ACL", "WHOAMI")))
    except _FAILURES:
        return str(_kwargs(server).get("username") or "default")


def _cause(exc: BaseException, kwargs: dict[str, Any]) -> str:
    """What went wrong, in one line, without what redis-py wraps around it."""
    given = kwargs.get("password") or kwargs.get("credential_provider")
    if isinstance(exc, redis.exceptions.AuthenticationError) and not given:
        return "the server wants a password, and none was given"
    text = " ".join(str(exc).split()).rpartition(" of pipeline caused error: ")[2]
    unreached = _CONNECT_ERROR.match(text)
    if unreached:
        return f"{unreached[2]} ({unreached[1]})"
    if isinstance(exc, redis.exceptions.TimeoutError) and kwargs.get("socket_timeout"):
        text += f" (no answer within {kwargs['socket_timeout']} s)"
    return text.rstrip(".") or type(exc).__name__


def _kwargs(client: Any) -> dict[str, Any]:
    return client.connection_pool.connection_kwargs  # type: ignore[no-any-return]


def _address(client: Any) -> str:
    kwargs = _kwargs(client)
    if "path" in kwargs:
        return str(kwargs["path"])
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


def _url(pool: Any, address: str) -> str:
    """A URL for the server at ``address``: the user's name, never a password."""
    kwargs = pool.connection_kwargs
    user = f"{kwargs['username']}@" if kwargs.get("username") else ""
    if "path" in kwargs:
        return f"unix://{user}{address}?db={kwargs.get('db', 0)}"
    return f"{_scheme(pool)}://{user}{address}/{kwargs.get('db', 0)}"


def _scheme(pool: Any) -> str:
    secure = issubclass(pool.connection_class, redis.connection.SSLConnection)
    return "rediss" if secure else "redis"


def _text(value: Any) -> Any:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
