"""Over real HTTP: the examples behind real servers, driven by a client with a cookie jar."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
import redis
from werkzeug.serving import make_server

from flask_scs_redis.testing import RedisServer
from flask_scs_redis.testing.serving import gunicorn

from harness import load_script

EXAMPLES = Path(__file__).parent.parent / "examples"


class Browser:
    """An HTTP client with a cookie jar, as a browser keeps one."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str = "/") -> str:
        with self.opener.open(self.base_url + path, timeout=10) as response:
            return str(response.read().decode())

    def post(self, path: str, form: str = "") -> str:
        with self.opener.open(self.base_url + path, data=form.encode(), timeout=10) as response:
            return str(response.read().decode())

    @property
    def token(self) -> str | None:
        return next((cookie.value for cookie in self.jar if cookie.name == "session"), None)


def visits(page: str) -> int:
    marker = "Visits in this session: "
    return int(page.split(marker, 1)[1].split("<", 1)[0])


def counter_login_logout(base_url: str) -> None:
    browser = Browser(base_url)
    assert visits(browser.get()) == 1
    assert visits(browser.get()) == 2
    anonymous_token = browser.token
    page = browser.post("/login", "username=alice")  # 303, followed with a GET
    assert "Logged in as <b>alice</b>" in page
    assert visits(page) == 3
    assert browser.token not in (None, anonymous_token)
    logged_in_token = browser.token
    page = browser.post("/logout")
    assert visits(page) == 1  # a new session, started by the page after the redirect
    assert "alice" not in page
    assert browser.token not in (None, logged_in_token)
    # The logged-in token is dead on the server too, not just forgotten by the browser.
    replayed = urllib.request.Request(
        base_url + "/", headers={"Cookie": f"session={logged_in_token}"}
    )
    with urllib.request.urlopen(replayed, timeout=10) as response:
        page = response.read().decode()
    assert visits(page) == 1
    assert "alice" not in page


@pytest.fixture(params=["wsgi_app", "flask_app"])
def threaded_server(
    request: pytest.FixtureRequest, redis_server: RedisServer, redis_client: redis.Redis
) -> Iterator[str]:
    """One of the two examples, served by a threaded Werkzeug server."""
    app = load_script(f"examples/{request.param}.py").create_app(redis_server.url)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def test_counter_login_and_logout_over_http(threaded_server: str) -> None:
    counter_login_logout(threaded_server)


def test_concurrent_browsers_keep_separate_sessions(threaded_server: str) -> None:
    def browse(_: int) -> list[int]:
        browser = Browser(threaded_server)
        return [visits(browser.get()) for _ in range(10)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(browse, range(16)))
    assert results == [list(range(1, 11))] * 16


def test_a_request_that_never_touches_the_session_gets_no_cookie(threaded_server: str) -> None:
    browser = Browser(threaded_server)
    with pytest.raises(urllib.error.HTTPError) as raised:
        browser.get("/missing")
    assert raised.value.code == 404
    assert raised.value.headers.get("Set-Cookie") is None
    assert browser.token is None


@pytest.fixture
def gunicorn_server(redis_server: RedisServer, redis_client: redis.Redis) -> Iterator[str]:
    pytest.importorskip("gunicorn")
    with gunicorn(
        "wsgi_app:create_app()",
        pythonpath=str(EXAMPLES),
        env={"SCS_REDIS_URL": redis_server.url},
        threads=4,
        probe="/missing",
    ) as port:
        yield f"http://127.0.0.1:{port}"


def test_counter_login_and_logout_under_gunicorn(gunicorn_server: str) -> None:
    counter_login_logout(gunicorn_server)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: counter_login_logout(gunicorn_server), range(8)))
    assert results == [None] * 8


def test_the_demo_lists_active_sessions_and_logs_out_other_devices(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    app = load_script("examples/flask_app.py").create_app(redis_server.url)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{server.server_port}"
    try:
        laptop, phone = Browser(base_url), Browser(base_url)
        for device in (laptop, phone):
            device.post("/login", "username=alice")
        page = laptop.get("/sessions")
        assert page.count("<tr>") == 3  # a header and two sessions
        assert page.count("(this one)") == 1
        page = laptop.post("/sessions/log-out-others")
        assert "Logged out 1 other session(s)." in page
        assert page.count("<tr>") == 2
        assert "Logged in as" not in phone.get()
        assert "Logged in as" in laptop.get()
    finally:
        server.shutdown()
        thread.join(timeout=10)
