"""Write a key and WAIT for replicas, on the connection of the primary that owns the key.

WAIT counts the writes of its own connection, so both go in one pipeline, on a
Cluster through a node's own client, which follows no MOVED or ASK. This module
does what ``RedisCluster`` does for its own commands: a failover costs 503s, not 500s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from redis.cluster import ClusterNode

from .connections import is_cluster
from .errors import SessionStoreUnavailable

#: How many MOVED or ASK redirections one write follows before it gives up.
MAX_REDIRECTS = 3

#: Queues the one write on the pipeline it is given.
Queue = Callable[[Any], object]
_Outcome = tuple[list[Any], int]  # the queued commands' results, and the replicas that acked


def write_and_wait(
    client: Any,
    key: str,
    queue: Queue,
    *,
    replicas: int,
    timeout_ms: int,
    unless: Callable[[Any], bool],
) -> list[Any]:
    """Run the write ``queue`` adds on ``key``'s primary, then WAIT there for ``replicas``.

    Return the results of the queued commands; a write that ``unless`` says
    did not happen needs no acknowledgement. On a Cluster a MOVED is followed
    once the slot map is updated, an ASK once with ASKING; a node out of reach
    makes the client reload its slot map, then the error goes to
    :func:`.connections.translated_errors`, unless the connection was refused
    (nothing was sent) and the map names a new primary: that one is tried.

    :raises SessionStoreUnavailable: fewer replicas acknowledged in time, or
        the key's slot is failing over or moving; the write is not claimed.
    """
    if is_cluster(client):
        results, acknowledged = _on_cluster(client, key, queue, replicas, timeout_ms)
    else:
        results, acknowledged = _pipeline(client, queue, replicas, timeout_ms)
    if not unless(results[0]) and acknowledged < replicas:
        raise SessionStoreUnavailable(
            f"only {acknowledged} of the {replicas} replicas required"
            f" acknowledged the write within {timeout_ms} ms"
        )
    return results


def _pipeline(
    primary: Any, queue: Queue, replicas: int, timeout_ms: int, *, asking: bool = False
) -> _Outcome:
    """Send ASKING (if ``asking``), the write and WAIT in one round trip on one connection."""
    with primary.pipeline(transaction=False) as pipe:
        if asking:
            pipe.execute_command("ASKING")
        queue(pipe)
        pipe.wait(replicas, timeout_ms)
        *results, acknowledged = pipe.execute()
    return results[1:] if asking else results, acknowledged


def _on_cluster(cluster: Any, key: str, queue: Queue, replicas: int, timeout_ms: int) -> _Outcome:
    """Run the pipeline on the slot's primary, following redirections as far as is safe."""
    slot = cluster.keyslot(key)  # messages name the slot, not the key: a key may be a token
    node, asking, retried = _primary_of(cluster, slot), False, False
    strangers: list[Any] = []
    try:
        for _ in range(1 + MAX_REDIRECTS):
            try:
                primary = cluster.get_redis_connection(node)
                return _pipeline(primary, queue, replicas, timeout_ms, asking=asking)
            except redis.exceptions.MovedError as moved:  # the write was not run
                _follow(cluster, moved)
                node, asking = _primary_of(cluster, slot), False
            except redis.exceptions.AskError as ask:
                if asking:
                    break
                node, asking = _node_at(cluster, ask.host, ask.port, strangers), True
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                _reload(cluster, failed=node)
                refused = isinstance(exc.__context__, ConnectionRefusedError)
                fresh = _primary_of(cluster, slot)
                if retried or not refused or fresh.name == node.name:
                    raise  # a write may have reached the server: do not send it twice
                node, asking, retried = fresh, False, True
            except (redis.exceptions.ClusterDownError, redis.exceptions.TryAgainError) as exc:
                _reload(cluster)
                why = type(exc).__name__  # not its message: that quotes the pipeline's arguments
                raise SessionStoreUnavailable(f"slot {slot} takes no writes now ({why})") from None
    finally:
        for stranger in strangers:
            if stranger.redis_connection is not None:
                stranger.redis_connection.connection_pool.disconnect()
    raise SessionStoreUnavailable(f"slot {slot} is moving: it kept redirecting the write")


def _primary_of(cluster: Any, slot: int) -> Any:
    """The node the client's slot map names primary of ``slot``."""
    try:
        return cluster.nodes_manager.get_node_from_slot(slot)
    except redis.exceptions.SlotNotCoveredError:
        _reload(cluster)
        raise SessionStoreUnavailable(f"no primary serves slot {slot} for now") from None


def _node_at(cluster: Any, host: str, port: int, strangers: list[Any]) -> Any:
    """The known node at ``host:port``, or a new one (kept in ``strangers``, to close)."""
    node = cluster.get_node(host=host, port=port)
    if node is None:  # an ASK to a node that serves no slot yet
        node = ClusterNode(host, port)  # type: ignore[no-untyped-call]
        strangers.append(node)
    return node


def _follow(cluster: Any, moved: redis.exceptions.MovedError) -> None:
    """Point the slot at its new primary; reload the map every ``reinitialize_steps`` MOVEDs."""
    cluster.reinitialize_counter += 1
    steps = cluster.reinitialize_steps
    if steps and cluster.reinitialize_counter % steps == 0:
        cluster.reinitialize_counter = 0
        _reload(cluster, also=(moved.host, moved.port))
    else:
        cluster.nodes_manager.move_slot(moved)


def _reload(cluster: Any, *, failed: Any = None, also: tuple[str, int] | None = None) -> None:
    """Reload the slot map, asking ``failed`` last, so the next write finds the primary of now."""
    manager = cluster.nodes_manager
    try:
        if failed is not None:
            if failed.redis_connection is not None:  # its idle connections are dead too
                failed.redis_connection.connection_pool.disconnect(inuse_connections=False)
            manager.move_node_to_end_of_cached_nodes(failed.name)
        manager.initialize(
            additional_startup_nodes_info=[also] if also else None,
            last_failed_node_name=failed.name if failed is not None else None,
        )
    except (redis.exceptions.RedisError, redis.exceptions.RedisClusterException):
        pass  # no node answered: the caller's own error says the store is out of reach
