"""What goes out on the wire when the store fails, and how the session's headers merge.

Every test here serves its app over real HTTP (werkzeug's server in a
thread), as the point is the header lines a client receives.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask, Response, session

from flask_scs_redis import RedisSessions, RedisStore, SessionMiddleware, SessionStoreUnavailable
from flask_scs_redis.testing import RedisServer

from harness import http_get, serving

VIEW_HEADERS = [
    ("Cache-Control", "public, max-age=3600"),
    ("ETag", '"v1"'),
    ("Content-Encoding", "gzip"),
    ("Content-Disposition", "attachment; filename=report.csv"),
    ("Set-Cookie", "theme=dark; Path=/"),
]


def flask_app(url: str, during_view: Callable[[], None], **config: Any) -> Flask:
    """A Flask app whose view reads the session, runs ``during_view``, then changes it."""
    app = Flask(__name__)
    app.config.update(SCS_REDIS_URL=url, SCS_REDIS_TIMEOUT=0.3, SCS_REDIS_RETRIES=0, **config)
    RedisSessions(app)

    @app.get("/")
    def view() -> Response:
        session["n"] = session.get("n", 0) + 1
        during_view()
        session["after"] = True
        response = Response("the view's body")
        for name, value in VIEW_HEADERS:
            response.headers.add(name, value)
        return response

    return app


def wsgi_app(url: str, during_view: Callable[[], None], **options: Any) -> SessionMiddleware:
    """The same view as a bare WSGI app behind the middleware."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        values = environ["scs.session"]
        values["n"] = values.get("n", 0) + 1
        during_view()
        values["after"] = True
        start_response("200 OK", [("Content-Type", "text/plain"), *VIEW_HEADERS])
        return [b"the view's body"]

    store = RedisStore.from_url(url, timeout=0.3, retries=0)
    return SessionMiddleware(app, store, **options)


def header_names(headers: list[tuple[str, str]]) -> set[str]:
    return {name.lower() for name, _ in headers}


def values_of(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in headers if key.lower() == name.lower()]


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as started:
        yield started


@pytest.mark.parametrize("build", [flask_app, wsgi_app], ids=["flask", "wsgi"])
def test_a_failed_save_answers_a_fresh_503(
    server: RedisServer, build: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, "flask_scs_redis"),
        serving(build(server.url, server.stop)) as port,
    ):
        status, headers, body = http_get(port, "/")
    assert status == 503
    assert values_of(headers, "Retry-After") == ["5"]
    assert values_of(headers, "Cache-Control") == ["no-store"]
    assert not header_names(headers) & {"etag", "content-encoding", "content-disposition"}
    assert not header_names(headers) & {"set-cookie", "vary"}
    assert body == b"Sessions are unavailable for a moment. Please try again shortly.\n"
    assert "Connection refused" in caplog.text or "Error 111" in caplog.text


def test_the_503_of_a_failed_first_use_is_as_fresh_after_after_request(
    server: RedisServer,
) -> None:
    app = flask_app(server.url, lambda: None)

    @app.after_request
    def cache_everything(response: Response) -> Response:
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response

    server.stop()
    with serving(app) as port:
        status, headers, _ = http_get(port, "/", {"Cookie": "session=" + "A" * 43})
    assert status == 503
    assert values_of(headers, "Cache-Control") == ["no-store"]


@pytest.mark.parametrize("build", [flask_app, wsgi_app], ids=["flask", "wsgi"])
def test_vary_and_cache_control_on_several_lines_are_merged(
    server: RedisServer, build: Callable[..., Any]
) -> None:
    def app_with_lines(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["scs.session"]["n"] = 1
        start_response(
            "200 OK",
            [
                ("Vary", "Origin"),
                ("Vary", "Accept-Encoding"),
                ("Cache-Control", "private"),
                ("Cache-Control", "max-age=0"),
            ],
        )
        return [b"ok"]

    if build is wsgi_app:
        application: Any = SessionMiddleware(app_with_lines, RedisStore.from_url(server.url))
    else:
        application = Flask(__name__)
        application.config["SCS_REDIS_URL"] = server.url
        RedisSessions(application)

        @application.get("/")
        def view() -> Response:
            session["n"] = 1
            response = Response("ok")
            for name, value in [
                ("Vary", "Origin"),
                ("Vary", "Accept-Encoding"),
                ("Cache-Control", "private"),
                ("Cache-Control", "max-age=0"),
            ]:
                response.headers.add(name, value)
            return response

    with serving(application) as port:
        status, headers, _ = http_get(port, "/")
    assert status == 200
    vary = {v.strip().lower() for line in values_of(headers, "Vary") for v in line.split(",")}
    assert vary == {"origin", "accept-encoding", "cookie"}
    cache = ", ".join(values_of(headers, "Cache-Control"))
    assert "private" in cache and "max-age=0" in cache and 'no-cache="Set-Cookie"' in cache


def test_with_propagation_a_failed_save_reaches_the_apps_handler_once(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    app = flask_app(server.url, server.pause, SCS_PROPAGATE_UNAVAILABLE=True)

    @app.errorhandler(SessionStoreUnavailable)
    def own_page(error: SessionStoreUnavailable) -> tuple[str, int]:
        return "our own outage page", 503

    try:
        with caplog.at_level(logging.INFO), serving(app) as port:
            started = time.monotonic()
            status, _, body = http_get(port, "/")
            elapsed = time.monotonic() - started
    finally:
        server.resume()
    assert (status, body) == (503, b"our own outage page")
    assert elapsed < 0.55  # one timeout of 0.3 s, not two
    assert "finalizing" not in caplog.text


def test_with_propagation_and_no_handler_a_failed_save_is_logged_once(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    app = flask_app(server.url, server.pause, SCS_PROPAGATE_UNAVAILABLE=True)
    try:
        with caplog.at_level(logging.INFO), serving(app) as port:
            status, _, _ = http_get(port, "/")
    finally:
        server.resume()
    assert status == 500
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1, [record.getMessage() for record in errors]
    assert errors[0].exc_info is not None  # one traceback


def bottle_like(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A framework's catch-all: any exception becomes its own 500 page."""
    import sys

    try:
        count = environ["scs.session"].get("n", 0)
    except Exception:
        start_response("500 Internal Server Error", [("Content-Type", "text/html")], sys.exc_info())
        return [b"<h1>Critical error</h1>"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(count).encode()]


def plain(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """An app that lets the exception out."""
    count = environ["scs.session"].get("n", 0)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(count).encode()]


@pytest.mark.parametrize("app", [bottle_like, plain], ids=["framework-500", "exception"])
def test_the_middleware_answers_an_outage_with_503_through_a_frameworks_500(
    server: RedisServer, caplog: pytest.LogCaptureFixture, app: Any
) -> None:
    middleware = SessionMiddleware(app, RedisStore.from_url(server.url, retries=0))
    server.stop()
    with caplog.at_level(logging.WARNING, "flask_scs_redis"), serving(middleware) as port:
        answers = [http_get(port, "/", {"Cookie": "session=" + "A" * 43}) for _ in range(5)]
    for status, headers, body in answers:
        assert status == 503
        assert values_of(headers, "Retry-After") == ["5"]
        assert b"Critical" not in body
    # Logged with its cause, once for the five.
    outages = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(outages) == 1
    assert "refused" in outages[0].getMessage().lower() or "111" in outages[0].getMessage()


def test_the_middleware_can_let_the_outage_propagate(server: RedisServer) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["scs.session"].get("n")
        start_response("200 OK", [])
        return [b"ok"]

    middleware = SessionMiddleware(
        app, RedisStore.from_url(server.url, retries=0), propagate_unavailable=True
    )
    server.stop()
    with serving(middleware) as port:
        status, _, _ = http_get(port, "/", {"Cookie": "session=" + "A" * 43})
    assert status == 500  # the WSGI server's own answer to the exception


def streaming(use_early: bool, use_late: Callable[[Any], None]) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        values = environ["scs.session"]
        if use_early:
            values["n"] = values.get("n", 0) + 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first "
        use_late(values)
        yield b"second"

    return app


@pytest.mark.parametrize(
    ("use_early", "use_late", "warned"),
    [
        (False, lambda values: values.get("n"), True),  # first read while streaming
        (True, lambda values: values.__setitem__("late", 1), False),  # saved: nothing to warn
        (False, lambda values: None, False),
    ],
    ids=["first-read-late", "late-write-saved", "untouched"],
)
def test_a_session_first_used_while_streaming_is_warned_about_once(
    server: RedisServer,
    caplog: pytest.LogCaptureFixture,
    use_early: bool,
    use_late: Callable[[Any], None],
    warned: bool,
) -> None:
    store = RedisStore.from_url(server.url)
    with serving(SessionMiddleware(streaming(True, lambda values: None), store)) as port:
        _, headers, _ = http_get(port, "/")
    cookie = values_of(headers, "Set-Cookie")[0].split(";")[0]
    middleware = SessionMiddleware(streaming(use_early, use_late), store)
    with caplog.at_level(logging.WARNING, "flask_scs_redis"), serving(middleware) as port:
        status, headers, body = http_get(port, "/", {"Cookie": cookie})
    assert (status, body) == (200, b"first second")
    warnings = [r.getMessage() for r in caplog.records if "start_response" in r.getMessage()]
    assert len(warnings) == (1 if warned else 0), warnings
    assert all("saved (saved)" not in warning for warning in warnings)
    if warned:
        assert "Vary: Cookie" in warnings[0]


@pytest.mark.parametrize(
    ("url", "cause"),
    [
        ("redis://:wrong@127.0.0.1:{port}/0", "invalid username-password pair"),
        ("redis://127.0.0.1:{port}/0", "refused to authenticate"),
    ],
    ids=["wrong-password", "missing-password"],
)
def test_an_outage_is_logged_with_its_cause_once_per_interval(
    url: str, cause: str, caplog: pytest.LogCaptureFixture
) -> None:
    with RedisServer() as guarded:
        guarded.client().config_set("requirepass", "right")
        app = flask_app(url.format(port=guarded.port), lambda: None)
        with caplog.at_level(logging.WARNING, "flask_scs_redis"), serving(app) as port:
            statuses = [http_get(port, "/")[0] for _ in range(4)]
    assert statuses == [503] * 4
    outages = [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(outages) == 1
    assert cause in outages[0]
