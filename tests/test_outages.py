"""Store outages on real servers: killed, restarted on the same port, and hung."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import Client

from flask_scs_redis import RedisStore, SessionMiddleware, SessionStoreUnavailable
from flask_scs_redis.testing import RedisServer

from views import GATES, Gate, build_flask_app, build_wsgi_app


def url_client(server: RedisServer, **config: Any) -> Client:
    """The Flask views on a client built from the URL, as SCS_REDIS_URL users get it."""
    config = {"SCS_REDIS_URL": server.url, "SCS_REDIS_TIMEOUT": 0.3, **config}
    return build_flask_app(None, **config).test_client()


def test_while_redis_is_down_untouched_requests_work_and_others_get_503(
    fresh_redis_server: RedisServer,
) -> None:
    client = url_client(fresh_redis_server, SCS_RETRY_AFTER=7)
    assert client.get("/incr").text == "1"
    fresh_redis_server.stop()
    assert client.get("/none").text == "ok"
    response = client.get("/read")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"


def test_a_store_failure_at_save_time_turns_the_response_into_a_503(
    fresh_redis_server: RedisServer,
) -> None:
    client = url_client(fresh_redis_server)
    client.get("/incr")
    gate = GATES["save"] = Gate()
    responses = []
    worker = threading.Thread(
        target=lambda: responses.append(client.get("/incr", query_string={"hold": "save"}))
    )
    worker.start()
    assert gate.arrived.wait(10)  # the view ran and read the session...
    fresh_redis_server.stop()  # ...and the store dies before the save
    gate.release.set()
    worker.join(10)
    GATES.clear()
    assert responses[0].status_code == 503
    assert responses[0].headers["Retry-After"] == "5"


def test_the_switch_lets_the_exception_propagate(fresh_redis_server: RedisServer) -> None:
    client = url_client(fresh_redis_server, SCS_PROPAGATE_UNAVAILABLE=True)
    client.get("/incr")
    fresh_redis_server.stop()
    with pytest.raises(SessionStoreUnavailable):
        client.get("/read")


def test_sessions_work_again_once_redis_is_back_without_a_restart(
    fresh_redis_server: RedisServer,
) -> None:
    client = url_client(fresh_redis_server)
    client.get("/incr")
    fresh_redis_server.stop()
    assert client.get("/incr").status_code == 503
    fresh_redis_server.start()  # same port, empty, and without the cached script
    assert client.get("/incr").text == "1"
    assert client.get("/incr").text == "2"  # the compare-and-set script is loaded again


@pytest.mark.parametrize("adapter", ["flask", "wsgi"])
def test_a_hung_server_costs_a_request_the_timeout_not_forever(
    adapter: str, fresh_redis_server: RedisServer
) -> None:
    if adapter == "flask":
        client = url_client(fresh_redis_server)
    else:
        store = RedisStore.from_url(fresh_redis_server.url, timeout=0.3)
        client = Client(build_wsgi_app(store.client))
    client.get("/incr")
    fresh_redis_server.pause()  # accepts connections, never answers
    outcome: list[Any] = []

    def read() -> None:
        try:
            outcome.append(client.get("/read").status_code)
        except SessionStoreUnavailable as error:
            outcome.append(error)

    started = time.monotonic()
    worker = threading.Thread(target=read, daemon=True)  # a hang must fail, not stall the run
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), "the request hung on the stopped server"
    assert time.monotonic() - started < 2
    if adapter == "flask":
        assert outcome == [503]
    else:
        assert isinstance(outcome[0], SessionStoreUnavailable)
    assert client.get("/none").text == "ok"
    fresh_redis_server.resume()
    assert client.get("/read").text == "1"


def test_the_middleware_lets_the_outage_reach_the_server(fresh_redis_server: RedisServer) -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [])
        return [repr(environ["scs.session"].get("n")).encode()]

    client = Client(SessionMiddleware(app, RedisStore.from_url(fresh_redis_server.url)))
    fresh_redis_server.stop()
    client.set_cookie("session", "A" * 43)
    started = time.monotonic()
    with pytest.raises(SessionStoreUnavailable):
        client.get("/")
    assert time.monotonic() - started < 3  # two quick retries with backoff, then the error


def test_url_clients_get_bounded_timeouts_and_retries(fresh_redis_server: RedisServer) -> None:
    store = RedisStore.from_url(fresh_redis_server.url)
    kwargs = store.client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 1.0
    assert kwargs["socket_connect_timeout"] == 1.0
    assert kwargs["retry"].get_retries() == 2
    app = build_flask_app(None, SCS_REDIS_URL=fresh_redis_server.url, SCS_REDIS_TIMEOUT=2.5)
    kwargs = app.session_interface.engine.store.client.connection_pool.connection_kwargs  # type: ignore[attr-defined]
    assert kwargs["socket_timeout"] == 2.5


def test_the_503_comes_from_the_extension_only_when_installed(redis_client: Any) -> None:
    app: Flask = build_flask_app(redis_client)
    assert SessionStoreUnavailable in app.error_handler_spec[None][None]
    propagating = build_flask_app(redis_client, SCS_PROPAGATE_UNAVAILABLE=True)
    assert SessionStoreUnavailable not in propagating.error_handler_spec[None].get(None, {})
