"""The WSGI middleware: when it commits, what it wraps, and what it refuses."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.test import Client, EnvironBuilder

from flask_scs_redis import (
    ConfigurationError,
    RedisStore,
    Session,
    SessionMiddleware,
)
from flask_scs_redis.record import read_record
from flask_scs_redis.testing import RedisServer

from views import build_flask_app, build_wsgi_app

Environ = dict[str, Any]


def middleware(app: Any, redis_client: redis.Redis, **options: Any) -> SessionMiddleware:
    return SessionMiddleware(app, RedisStore(redis_client), **options)


class Served:
    """What a PEP 3333 server made of one request."""

    def __init__(self, app: Any, cookie: str | None = None) -> None:
        environ = EnvironBuilder(headers={"Cookie": cookie} if cookie else None).get_environ()
        self.status = ""
        self.headers: list[tuple[str, str]] = []
        sent = False

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            if exc_info is not None and sent:
                raise exc_info[1].with_traceback(exc_info[2])
            self.status, self.headers = status, headers
            return lambda data: None

        iterable = app(environ, start_response)
        chunks = []
        try:
            for chunk in iterable:
                sent = sent or bool(chunk)
                chunks.append(chunk)
        finally:
            if hasattr(iterable, "close"):
                iterable.close()
        self.body = b"".join(chunks)

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    @property
    def cookie(self) -> str:
        (set_cookie,) = self.header("Set-Cookie")
        return set_cookie.split(";")[0]


def test_the_session_is_committed_before_the_body_is_sent(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)

    def app(environ: Environ, start_response: Any) -> Iterator[bytes]:
        session: Session = environ["scs.session"]
        session["n"] = 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        # By now the record is stored and the cookie is in the headers.
        yield repr(store.find(store.key_for(session.token or "")) is not None).encode()

    response = Client(SessionMiddleware(app, store)).get("/")
    assert response.text == "True"
    assert response.headers["Set-Cookie"].startswith("session=")
    assert response.headers["Vary"] == "Cookie"


def test_an_app_that_starts_the_response_on_first_iteration_gets_its_cookie(
    redis_client: redis.Redis,
) -> None:
    def app(environ: Environ, start_response: Any) -> Iterator[bytes]:
        environ["scs.session"]["n"] = 1
        start_response("200 OK", [])
        yield b"late start"

    client = Client(middleware(app, redis_client))
    response = client.get("/")
    assert response.text == "late start"
    assert client.get_cookie("session") is not None


def test_a_second_start_response_with_exc_info_keeps_the_cookie(redis_client: redis.Redis) -> None:
    def app(environ: Environ, start_response: Any) -> list[bytes]:
        environ["scs.session"]["user"] = "alice"
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("the body could not be made")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"error page"]

    served = Served(middleware(app, redis_client))
    assert served.status.startswith("500")
    assert served.cookie.startswith("session=")
    assert len(list(redis_client.scan_iter())) == 1


class ClosingBody:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        self.closed += 1


def test_close_is_propagated_to_the_apps_iterable(redis_client: redis.Redis) -> None:
    body = ClosingBody([b"a", b"b"])

    def app(environ: Environ, start_response: Any) -> ClosingBody:
        start_response("200 OK", [])
        return body

    assert Served(middleware(app, redis_client)).body == b"ab"
    assert body.closed == 1


def test_close_is_propagated_when_the_session_was_used(redis_client: redis.Redis) -> None:
    body = ClosingBody([b"x"])

    def app(environ: Environ, start_response: Any) -> ClosingBody:
        environ["scs.session"]["n"] = 1
        start_response("200 OK", [])
        return body

    Served(middleware(app, redis_client))
    assert body.closed == 1


def test_a_change_during_the_body_is_saved_without_a_warning(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: Environ, start_response: Any) -> Iterator[bytes]:
        session: Session = environ["scs.session"]
        session["n"] = session.get("n", 0) + 1
        start_response("200 OK", [])
        yield b"first chunk"
        session["late"] = f"written while streaming response {session['n']}"
        session["later"] = "and again"
        yield b"second chunk"

    session_middleware = middleware(app, redis_client)
    cookie = Served(session_middleware).cookie
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flask_scs_redis"):
        served = Served(session_middleware, cookie=cookie)
    assert served.body == b"first chunksecond chunk"
    # Saved under the same token, and the session was used before start_response
    # (Vary went out): there is nothing to warn about.
    warnings = [r for r in caplog.records if "after start_response" in r.getMessage()]
    assert warnings == []
    assert served.cookie == cookie
    store = RedisStore(redis_client)
    record = store.find(store.key_for(cookie.split("=", 1)[1]))
    assert record is not None
    _, values = read_record(record)
    assert values == {"n": 2, "late": "written while streaming response 2", "later": "and again"}


def test_no_warning_when_nothing_changes_after_start_response(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: Environ, start_response: Any) -> Iterator[bytes]:
        environ["scs.session"]["n"] = 1
        start_response("200 OK", [])
        yield repr(environ["scs.session"]["n"]).encode()

    with caplog.at_level(logging.WARNING, logger="flask_scs_redis"):
        Served(middleware(app, redis_client))
    assert caplog.records == []


def test_the_cookie_persists_by_default_and_a_session_can_opt_out(
    redis_client: redis.Redis,
) -> None:
    def app(environ: Environ, start_response: Any) -> list[bytes]:
        session: Session = environ["scs.session"]
        session["n"] = 1
        if environ["PATH_INFO"] == "/browser-session":
            session.permanent = False
        start_response("200 OK", [])
        return [b""]

    client = Client(middleware(app, redis_client, lifetime=600))
    persistent = client.get("/").headers["Set-Cookie"]
    assert "Max-Age=599" in persistent or "Max-Age=600" in persistent
    browser_session = client.get("/browser-session").headers["Set-Cookie"]
    assert "Max-Age" not in browser_session
    assert "Expires" not in browser_session


def test_the_session_is_found_at_the_configured_environ_key(redis_client: redis.Redis) -> None:
    def app(environ: Environ, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [type(environ["my.session"]).__name__.encode()]

    assert (
        Client(middleware(app, redis_client, environ_key="my.session")).get("/").text == "Session"
    )


def test_vary_is_merged_with_the_apps_own(redis_client: redis.Redis) -> None:
    def app(environ: Environ, start_response: Any) -> list[bytes]:
        environ["scs.session"]["n"] = 1
        start_response("200 OK", [("Vary", "Accept-Encoding")])
        return [b""]

    response = Client(middleware(app, redis_client)).get("/")
    assert response.headers.getlist("Vary") == ["Accept-Encoding, Cookie"]


def test_from_url_gives_the_middleware_a_store(redis_server: RedisServer) -> None:
    def app(environ: Environ, start_response: Any) -> list[bytes]:
        session: Session = environ["scs.session"]
        session["n"] = session.get("n", 0) + 1
        start_response("200 OK", [])
        return [str(session["n"]).encode()]

    client = Client(SessionMiddleware(app, RedisStore.from_url(redis_server.url, prefix="url:")))
    assert [client.get("/").text for _ in range(3)] == ["1", "2", "3"]


def test_a_flask_app_and_a_mounted_wsgi_app_share_one_session(redis_client: redis.Redis) -> None:
    flask_app = build_flask_app(redis_client)
    legacy = build_wsgi_app(redis_client)
    flask_app.wsgi_app = DispatcherMiddleware(flask_app.wsgi_app, {"/legacy": legacy})  # type: ignore[method-assign]
    client = flask_app.test_client()
    client.get("/login", query_string={"user": "alice"})
    client.get("/legacy/incr")
    client.get("/incr")
    assert client.get("/legacy/read").text == "2"
    client.get("/legacy/logout")
    assert client.get("/read").text == "None"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lifetime": "1 day"}, "lifetime must be a timedelta"),
        ({"lifetime": -1}, "lifetime must be positive"),
        ({"idle_timeout": 0}, "idle_timeout must be positive"),
        ({"max_size": 0}, "max_size must be a whole number above zero"),
        ({"cookie_name": "bad name"}, "cookie_name must be a cookie token"),
        ({"cookie_name": ""}, "cookie_name must be a cookie token"),
        ({"cookie_path": "relative"}, "cookie_path must start with '/'"),
        ({"cookie_domain": 42}, "cookie_domain must be a str"),
        ({"cookie_secure": "yes"}, "cookie_secure must be True or False"),
        ({"cookie_httponly": 1}, "cookie_httponly must be True or False"),
        ({"cookie_samesite": "sometimes"}, "cookie_samesite must be 'Strict', 'Lax', 'None'"),
        ({"cookie_samesite": "None"}, "cookie_samesite='None' needs cookie_secure=True"),
        ({"cookie_partitioned": True}, "cookie_partitioned=True needs cookie_secure=True"),
        ({"cookie_persist": None}, "cookie_persist must be True or False"),
        ({"environ_key": ""}, "environ_key must not be empty"),
    ],
)
def test_invalid_options_fail_at_construction(
    redis_client: redis.Redis, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        middleware(lambda environ, start_response: [], redis_client, **options)


def test_an_unknown_option_is_a_type_error(redis_client: redis.Redis) -> None:
    with pytest.raises(TypeError, match="cookie_max_age"):
        middleware(lambda environ, start_response: [], redis_client, cookie_max_age=5)


def test_the_store_and_app_are_checked(redis_client: redis.Redis) -> None:
    with pytest.raises(ConfigurationError, match="store must be a RedisStore"):
        SessionMiddleware(lambda environ, start_response: [], redis_client)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="app must be a WSGI callable"):
        SessionMiddleware(None, RedisStore(redis_client))  # type: ignore[arg-type]


def test_samesite_is_spelled_as_browsers_expect(redis_client: redis.Redis) -> None:
    def app(environ: Environ, start_response: Any) -> list[bytes]:
        environ["scs.session"]["n"] = 1
        start_response("200 OK", [])
        return [b""]

    header = Client(middleware(app, redis_client, cookie_samesite="strict")).get("/").headers
    assert "SameSite=Strict" in header["Set-Cookie"]
