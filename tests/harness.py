"""Helpers the tests share: reading cookies and stored records, and loading scripts.

Fixtures live in ``conftest.py``; the apps the tests drive live in ``views.py``.
"""

from __future__ import annotations

import http.client
import importlib.util
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import redis
from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.test import Client

from flask_scs_redis import Outcome, RedisStore, SessionEngine
from flask_scs_redis.record import pack_record, read_record, unpack_record
from flask_scs_redis.session import Session
from flask_scs_redis.testing import CommandCounter, RedisServer

ROOT = Path(__file__).parent.parent
PREFIX = "scs:session:"

#: Builds a Flask app of the shared views, with extra config as keywords.
MakeApp = Callable[..., Flask]
#: Builds a test client of the shared views behind the adapter under test.
MakeClient = Callable[..., Client]
#: Makes a counter of the commands the shared server runs in a ``with`` block.
Count = Callable[[], CommandCounter]


def load_script(relative_path: str) -> ModuleType:
    """Import the script at ``relative_path`` from the repository root, by its file name.

    Its folder goes on ``sys.path`` first, as when the script runs, so that it
    can import its neighbours.
    """
    path = ROOT / relative_path
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def cookie_token(client: Client, name: str = "session") -> str | None:
    """The token in the client's session cookie, or None."""
    cookie = client.get_cookie(name)
    return None if cookie is None else cookie.value


def set_cookie_headers(response: Any) -> list[str]:
    """Every Set-Cookie header of ``response``."""
    return list(response.headers.getlist("Set-Cookie"))


def store_of(app: Flask) -> RedisStore:
    """The store of a Flask app with the extension installed."""
    return app.session_interface.engine.store  # type: ignore[attr-defined, no-any-return]


def stored_keys(redis_client: redis.Redis, prefix: str = PREFIX) -> list[bytes]:
    """The keys under ``prefix``, sorted: records, and any lock or user index."""
    return sorted(redis_client.scan_iter(match=prefix + "*"))


def stored_sessions(redis_client: Any, prefix: str = PREFIX) -> list[dict[Any, Any]]:
    """The values of every session record under ``prefix``."""
    store = RedisStore(redis_client, prefix=prefix)
    keys = [key for chunk in store.scan_keys() for key in chunk]
    return [read_record(blob)[1] for blob, _ in store.fetch(keys) if blob is not None]


def stored_values(redis_client: redis.Redis) -> dict[Any, Any]:
    """The values of the one session record there is."""
    (values,) = stored_sessions(redis_client)
    return values


def edit_record(redis_client: redis.Redis, key: bytes | str, **fields: Any) -> None:
    """Change fields of the record at ``key`` in place, keeping its TTL."""
    blob = redis_client.get(key)
    assert blob is not None
    record = unpack_record(blob)._replace(**fields)
    redis_client.set(key, pack_record(record)[0], keepttl=True)


def opened(engine: SessionEngine, token: str | None) -> Session:
    """A request's session at the engine, for a day's lifetime; not read yet."""
    return engine.open(token, lifetime=timedelta(days=1))


def stored(engine: SessionEngine, **values: Any) -> str:
    """Save a new session of ``values`` at the engine; return its token."""
    session = opened(engine, None)
    session.update(values)
    assert engine.commit(session) is Outcome.CREATED
    assert session.token is not None
    return session.token


@contextmanager
def refusing_writes(server: RedisServer, fault: str) -> Iterator[redis.Redis]:
    """Yield a client of a store that refuses writes but answers reads.

    ``fault`` is ``"out of memory"`` (``server`` itself, at maxmemory 1) or
    ``"read-only replica"`` (a replica of ``server``, in sync).
    """
    primary = server.client()
    if fault == "out of memory":
        primary.config_set("maxmemory-policy", "noeviction")
        primary.config_set("maxmemory", 1)
        yield primary
        return
    with RedisServer() as replica_server:
        primary.config_set("repl-diskless-sync-delay", 0)
        replica = replica_server.client()
        replica.replicaof("127.0.0.1", server.port)
        while replica.info("replication").get("master_link_status") != "up":
            time.sleep(0.02)
        yield replica


class QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass  # no line a request


@contextmanager
def serving(app: Any) -> Iterator[int]:
    """Serve the WSGI ``app`` over HTTP on a free port, a thread a request; yield the port."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def http_get(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    """GET ``path`` over a new connection: the status, the header lines as sent, the body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        connection.close()
