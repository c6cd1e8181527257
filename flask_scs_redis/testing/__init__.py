"""Real Redis servers for tests, and a counter of the commands they run.

Nothing here is needed to run sessions. :class:`RedisServer` starts a
``redis-server`` process of its own on a free loopback port, so a test never
touches a Redis it did not start; :class:`CommandCounter` counts the commands
a server ran, so a test can pin down round trips::

    with RedisServer() as server:
        client = server.client()
        with CommandCounter(client) as counted:
            client.get("x")
        assert counted.total == 1

For more: :mod:`.topologies` starts a Redis Cluster or a Sentinel group, and
:mod:`.serving` serves a WSGI app with gunicorn, to race requests over real HTTP.
"""

from __future__ import annotations

from .commands import CommandCounter
from .server import RedisServer

__all__ = ["CommandCounter", "RedisServer"]
