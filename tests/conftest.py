"""Fixtures: real redis-server processes of our own, and a Flask app on them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from flask_scs_redis.testing import CommandCounter, RedisServer

from apps import build_app


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
    yield client
    client.close()


@pytest.fixture
def count(redis_client: redis.Redis) -> Callable[[], CommandCounter]:
    """Make a counter of the commands the shared server runs in a ``with`` block."""
    return lambda: CommandCounter(redis_client)


@pytest.fixture
def make_app(redis_client: redis.Redis) -> Callable[..., Flask]:
    """Build the test app on the shared server, with extra config as keywords."""

    def make(**config: Any) -> Flask:
        return build_app(SCS_REDIS=redis_client, **config)

    return make


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
