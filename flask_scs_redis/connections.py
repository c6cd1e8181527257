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

from .errors import ConfigurationError, SessionStoreError, SessionStoreUnavailable


def client_from_url(url: str, *, timeout: float, retries: int, **client_kwargs: Any) -> Any:
    """Return a client for ``url`` with bounded timeouts and retries.

    The client gives up on a connect or a reply after ``timeout`` seconds and
    retries a refused or dropped connection ``retries`` times with a short
    exponential backoff; a timeout is not retried. ``client_kwargs`` win over
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
        if scheme in ("redis+sentinel", "rediss+sentinel"):
            return _sentinel_primary(url, options)
        return redis.Redis.from_url(url, **options)
    except (ValueError, IndexError) as exc:
        raise ConfigurationError(f"invalid Redis URL {url!r}: {exc}") from exc


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


def _cluster(url: str, options: dict[str, Any]) -> Any:
    from redis.cluster import ClusterNode, RedisCluster

    auth, addresses, segments, _ = _parts(url)
    if segments not in ([], ["0"]):
        raise ValueError("a Redis Cluster has database 0 only")
    nodes = [ClusterNode(host, port) for host, port in addresses]  # type: ignore[no-untyped-call]
    return RedisCluster(startup_nodes=nodes, **auth, **options)


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


@contextmanager
def translated_errors() -> Iterator[None]:
    """Re-raise redis-py errors as this package's store errors."""
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise SessionStoreUnavailable(f"the session store cannot be reached: {exc}") from exc
    except redis.exceptions.RedisError as exc:
        raise SessionStoreError(f"the session store failed: {exc}") from exc
