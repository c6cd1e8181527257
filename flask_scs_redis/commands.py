"""Send a request's commands on connections of our own, without redis-py's pool.

redis-py's own command path takes a connection from the pool for every
command and gives it back: a lock, a ``poll()`` to check that nothing is
waiting on the socket, metric hooks and a retry wrapper. On this machine that
costs more than the round trip itself. A request sends at most a few
commands, one at a time, so :class:`Commands` keeps its own idle connections
(made from the client's own pool settings: timeouts, TLS, credentials, the
database check), takes one for a command and puts it back: two list
operations, which the interpreter makes atomic.

What stays as it was:

* **Timeouts.** The connection has the client's socket timeouts; a timed-out
  reply is not retried, and redis-py drops the connection, so a late reply
  can never be read as the answer to the next command.
* **Retries.** Connecting retries as the client's connections do. A command
  whose connection turns out dropped (a restarted server) is sent again
  through the client itself, which retries as configured.
* **Fork safety.** A connection made in another process is never used: a
  gunicorn worker makes its own after the fork.
* **Thread safety.** A connection serves one command at a time, taken off
  the idle list and put back; there are as many as commands ever ran at once.

Only a plain :class:`redis.Redis` on a plain connection pool takes this
path. A Cluster, a Sentinel-watched primary, a blocking pool or a client-side
cache keep redis-py's path, which knows their redirections and failovers.
"""

from __future__ import annotations

import os
from typing import Any

import redis

from .connections import translated


class Commands:
    """Send single commands and scripts for ``client``, on a held connection where it can."""

    def __init__(self, client: Any) -> None:
        self.client = client
        pool = getattr(client, "connection_pool", None)
        #: Whether commands take the held connection (see the module's notes).
        self.lean = (
            type(client) is redis.Redis
            and type(pool) is redis.ConnectionPool
            and getattr(pool, "cache", None) is None
        )
        self._pool: Any = pool
        self._pid = os.getpid()
        self._idle: list[Any] = []  # list.pop and list.append are atomic: no lock

    def _send(self, *args: Any) -> Any:
        if not self.lean:
            return self.client.execute_command(*args)
        if self._pid != os.getpid():  # forked: the parent's connections are not ours
            self._idle, self._pid = [], os.getpid()
        idle = self._idle
        try:
            connection = idle.pop()
        except IndexError:
            connection = self._pool.connection_class(**self._pool.connection_kwargs)
        try:
            connection.send_command(*args)
            return connection.read_response()
        except redis.ConnectionError:  # dropped (a restart): the client retries
            connection.disconnect()
            return self.client.execute_command(*args)
        finally:
            idle.append(connection)

    def execute(self, *args: Any) -> Any:
        """Send one command and return Redis's answer, unconverted.

        :raises SessionError: as :func:`.connections.translated` says.
        """
        try:
            return self._send(*args)
        except redis.RedisError as exc:
            raise translated(exc) from exc

    def script(self, script: Any, keys: list[Any], args: list[Any]) -> Any:
        """Run a registered script by its SHA; one the server lacks is loaded by redis-py."""
        try:
            if self.lean:
                try:
                    return self._send("EVALSHA", script.sha, len(keys), *keys, *args)
                except redis.exceptions.NoScriptError:
                    pass
            return script(keys=keys, args=args)
        except redis.RedisError as exc:
            raise translated(exc) from exc
