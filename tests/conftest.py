"""Fixtures: real redis-server processes of our own, and apps on them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import Client

from flask_scs_redis import scripts
from flask_scs_redis.outages import OUTAGE_LOG
from flask_scs_redis.testing import CommandCounter, RedisServer

from views import build_flask_app, build_wsgi_app

SCRIPTS = [
    value for name, value in vars(scripts).items() if name.isupper() and isinstance(value, str)
]


@pytest.fixture(autouse=True)
def fresh_outage_log() -> None:
    """Each test sees its first outage of a cause logged, as a new process would."""
    OUTAGE_LOG.reset()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One server for the whole run; tests that kill servers use ``fresh_redis_server``."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def fresh_redis_server() -> Iterator[RedisServer]:
    """A server of this test's own, free to be stopped, paused and restarted."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client of the shared server, which is emptied first (it is ours alone)."""
    client = redis_server.client()
    client.flushall()
    for script in SCRIPTS:  # as after a first use, so counts do not vary
        client.script_load(script)
    yield client
    client.close()


@pytest.fixture
def count(redis_client: redis.Redis) -> Callable[[], CommandCounter]:
    """Make a counter of the commands the shared server runs in a ``with`` block."""
    return lambda: CommandCounter(redis_client)


@pytest.fixture(params=["single", pytest.param("cluster", marks=pytest.mark.cluster)])
def any_client(request: pytest.FixtureRequest, redis_client: redis.Redis) -> Iterator[Any]:
    """A client of one server, or of the module's ``cluster`` fixture, emptied first.

    On a Cluster each step may hit another node, and a record and its renewal may part.
    """
    if request.param == "single":
        yield redis_client
        return
    client = request.getfixturevalue("cluster").client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture(params=["flask", "wsgi"])
def adapter(request: pytest.FixtureRequest) -> str:
    """Which adapter the behavioural suite drives."""
    return str(request.param)


@pytest.fixture
def make_application(adapter: str, redis_client: redis.Redis) -> Callable[..., Any]:
    """Make the views' WSGI application behind ``adapter``.

    Keywords are adapter-neutral options (``lifetime``, ``idle_timeout``,
    ``cookie_name``, ...), translated to Flask config or middleware arguments.
    """
    build = build_flask_app if adapter == "flask" else build_wsgi_app
    return lambda **options: build(redis_client, **options)


@pytest.fixture
def make_client(make_application: Callable[..., Any]) -> Callable[..., Client]:
    """Make a cookie-keeping test client of a new application; see ``make_application``."""

    def make(**options: Any) -> Client:
        application = make_application(**options)
        if isinstance(application, Flask):
            return application.test_client()
        return Client(application)

    return make


@pytest.fixture
def client(make_client: Callable[..., Client]) -> Client:
    return make_client()


@pytest.fixture
def make_app(redis_client: redis.Redis) -> Callable[..., Flask]:
    """Build the Flask test app on the shared server, with extra config as keywords."""
    return lambda **config: build_flask_app(redis_client, **config)


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def flask_client(app: Flask) -> FlaskClient:
    return app.test_client()
