"""Build redis-py clients from URLs, and turn their errors into this package's.

A URL names one server, a Cluster, or a Sentinel-watched primary:

``redis://``, ``rediss://`` and ``unix://``
    One server, as :meth:`redis.Redis.from_url` reads them.
``redis+cluster://[[user]:password@]host:port[,host:port...]``
    A :class:`redis.cluster.RedisCluster`; every ``host:port`` is a startup node.
``redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]``
    The primary of ``service``, found through the listed sentinels and found
    again after a failover. ``?sentinel_password=...`` authenticates to the
    sentinels themselves; the password before ``@`` is the primary's.

The ``rediss+`` forms use TLS.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from .errors import ConfigurationError, SessionError, SessionStoreError, SessionStoreUnavailable


def client_from_url(url: str, *, timeout: float, retries: int, **client_kwargs: Any) -> Any:
    """Return a client for ``url`` with bounded timeouts and retries.

    The client gives up on a connect or a reply after ``timeout`` seconds and
    retries a refused or dropped connection ``retries`` times with a short
    exponential backoff; a timeout is not retried. A database the server
    does not have is refused when a connection is made, with a
    :class:`ConfigurationError` that names it. ``client_kwargs`` win over
    these.

    :raises ConfigurationError: the URL cannot be used.
    """
    options: dict[str, Any] = {
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
        "retry": Retry(
            ExponentialBackoff(cap=0.5, base=0.05),
            retries,
            supported_errors=(redis.exceptions.ConnectionError,),
        ),
        **client_kwargs,
    }
    scheme = url.split("://", 1)[0].lower()
    try:
        if scheme in ("redis+cluster", "rediss+cluster"):
            return _cluster(url, options)
        # A Cluster has database 0 only, and calls a connect hook after its own.
        checked = {"redis_connect_func": _select_checked, **options}
        if scheme in ("redis+sentinel", "rediss+sentinel"):
            return _sentinel_primary(url, checked)
        return redis.Redis.from_url(url, **checked)
    except (ValueError, IndexError) as exc:
        raise ConfigurationError(f"invalid Redis URL {url!r}: {exc}") from exc


def is_cluster(client: Any) -> bool:
    """Whether ``client`` is a Cluster client (it maps keys to nodes)."""
    return callable(getattr(client, "get_node_from_key", None))


def _parts(url: str) -> tuple[dict[str, Any], list[tuple[str, int]], list[str], dict[str, str]]:
    """Split a multi-host URL into credentials, hosts, path segments and query."""
    parsed = urlsplit(url)
    credentials, _, hosts = parsed.netloc.rpartition("@")
    auth: dict[str, Any] = {}
    if credentials:
        username, _, password = credentials.partition(":")
        if username:
            auth["username"] = unquote(username)
        if password:
            auth["password"] = unquote(password)
    addresses = []
    for host in hosts.split(","):
        name, _, port = host.rpartition(":")
        if not name or not port.isdigit():
            raise ValueError(f"{host!r} is not host:port")
        addresses.append((name.strip("[]"), int(port)))
    segments = [unquote(segment) for segment in parsed.path.split("/") if segment]
    query = {name: values[-1] for name, values in parse_qs(parsed.query).items()}
    if parsed.scheme.startswith("rediss"):
        auth["ssl"] = True
    return auth, addresses, segments, query


class _BoundedCluster(redis.RedisCluster):
    """A Cluster client that, like the others, does not retry a timeout.

    redis-py's Cluster retries a timed-out command on its own, so one hung
    node cost three timeouts per command instead of one.
    """

    ERRORS_ALLOW_RETRY = tuple(  # type: ignore[assignment]
        error for error in redis.RedisCluster.ERRORS_ALLOW_RETRY if error is not redis.TimeoutError
    )


def _cluster(url: str, options: dict[str, Any]) -> Any:
    from redis.cluster import ClusterNode

    auth, addresses, segments, _ = _parts(url)
    if segments not in ([], ["0"]):
        raise ValueError("a Redis Cluster has database 0 only")
    nodes = [ClusterNode(host, port) for host, port in addresses]  # type: ignore[no-untyped-call]
    return _BoundedCluster(startup_nodes=nodes, **auth, **options)


def _sentinel_primary(url: str, options: dict[str, Any]) -> Any:
    from redis.sentinel import Sentinel

    auth, addresses, segments, query = _parts(url)
    if not 1 <= len(segments) <= 2:
        raise ValueError("name the service: redis+sentinel://host:port,.../service[/db]")
    sentinel_auth = {"password": query["sentinel_password"]} if "sentinel_password" in query else {}
    sentinel_options = {
        "socket_connect_timeout": options["socket_connect_timeout"],
        "socket_timeout": options["socket_timeout"],
        **sentinel_auth,
    }
    sentinel = Sentinel(addresses, sentinel_kwargs=sentinel_options, **auth, **options)  # type: ignore[no-untyped-call]
    db = int(segments[1]) if len(segments) == 2 else 0
    return sentinel.master_for(segments[0], db=db)  # type: ignore[no-untyped-call]


# What Redis answers a SELECT of a database it does not have.
_NO_DATABASE = "DB index is out of range"


def _select_checked(connection: Any) -> None:
    """Set a new connection up as redis-py does, but refuse a database the server lacks.

    That is the URL at fault, not the server's health, so it is no outage.
    """
    try:
        connection.on_connect()
    except redis.exceptions.ResponseError as exc:
        if not str(exc).endswith(_NO_DATABASE):
            raise
        databases = _database_count(connection)
        # redis-py keeps the socket of a hook that raises anything but its own
        # errors: dropped, so the next command cannot run in database 0.
        connection.disconnect()
        where = getattr(connection, "path", None) or f"{connection.host}:{connection.port}"
        has = f" (it has databases 0-{databases - 1})" if databases else ""
        raise ConfigurationError(
            f"database {connection.db} does not exist on {where}{has}:"
            " fix the database number in the Redis URL"
        ) from exc


def _database_count(connection: Any) -> int | None:
    """How many databases the server has, or None if it will not say (CONFIG may be denied)."""
    try:
        connection.send_command("CONFIG", "GET", "databases")
        reply = connection.read_response()
        values = list(reply.values()) if isinstance(reply, dict) else reply[1::2]  # RESP3, RESP2
        return int(values[0])
    except (redis.exceptions.RedisError, ValueError, IndexError, TypeError):
        return None


# Refusals that pass once the server is itself again: out of memory
# (noeviction), a replica where a primary should be, loading, a Cluster
# failing over, a script running too long.
_TRANSIENT = (
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.MasterDownError,
    redis.exceptions.MovedError,
    redis.exceptions.AskError,
)
_TRANSIENT_CODES = ("BUSY ", "LOADING ", "MASTERDOWN ", "NOREPLICAS ")
# redis-py drops the error code from the messages of the errors it has a class
# for; these put it back, so a log line says what Redis said.
_CODES = {
    redis.exceptions.OutOfMemoryError: "OOM",
    redis.exceptions.ReadOnlyError: "READONLY",
    redis.exceptions.NoPermissionError: "NOPERM",
    redis.exceptions.ClusterDownError: "CLUSTERDOWN",
    redis.exceptions.TryAgainError: "TRYAGAIN",
    redis.exceptions.MasterDownError: "MASTERDOWN",
    redis.exceptions.MovedError: "MOVED",
    redis.exceptions.AskError: "ASK",
}


def _plain(exc: BaseException) -> str:
    """What Redis said, without what redis-py adds: a pipeline's failed command and its arguments.

    The arguments are keys (tokens, without hashing) and records (session
    values), so they must reach no message or log. The exception is cleaned
    in place too, since it stays chained as the cause.
    """
    text = str(exc.args[0]) if exc.args else ""
    _, marker, said = text.rpartition(" of pipeline caused error: ")
    if marker:
        text = said
        exc.args = (text, *exc.args[1:])
    code = _CODES.get(type(exc))
    return f"{code} {text}" if code and not text.startswith(code) else text


@contextmanager
def translated_errors() -> Iterator[None]:
    """Re-raise redis-py errors as this package's store errors (see :func:`translated`)."""
    try:
        yield
    except redis.exceptions.RedisError as exc:
        raise translated(exc) from exc


def translated(exc: redis.exceptions.RedisError) -> SessionError:
    """The store error to raise, ``from exc``, for the redis-py error ``exc``.

    A lost connection, a timeout and a transient refusal (OOM, READONLY,
    LOADING, a Cluster failing over) are :class:`SessionStoreUnavailable`; a
    database the server does not have is :class:`ConfigurationError`;
    anything else, such as a missing ACL permission, is
    :class:`SessionStoreError` with what Redis said. No message carries a
    command's arguments.
    """
    if isinstance(exc, redis.exceptions.AuthenticationError):
        return SessionStoreUnavailable(
            f"the session store refused to authenticate: {_plain(exc)}"
            " (check the user and password in the Redis URL)"
        )
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return SessionStoreUnavailable(f"the session store cannot be reached: {_plain(exc)}")
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return SessionStoreError(
            f"the session store's user lacks a permission: {_plain(exc)}; grant it"
            " with ACL SETUSER (`flask scs check`, or check_store(), lists every"
            " command the library sends that the user may not run)"
        )
    said = _plain(exc)
    if said.endswith(_NO_DATABASE):  # from a ready client; see _select_checked
        return ConfigurationError(
            f"the Redis client selects a database the server does not have ({said}):"
            " fix the client's db"
        )
    if isinstance(exc, _TRANSIENT) or said.startswith(_TRANSIENT_CODES):
        return SessionStoreUnavailable(f"the session store refused the command for now: {said}")
    return SessionStoreError(f"the session store failed: {said}")
