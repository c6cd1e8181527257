"""Over real HTTP: the examples behind real servers, driven by a client with a cookie jar."""

from __future__ import annotations

import functools
import html
import itertools
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.cookiejar import Cookie, CookieJar
from pathlib import Path

import pytest
import redis
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.http import dump_cookie
from werkzeug.sansio.http import parse_cookie
from werkzeug.serving import make_server

from flask_scs_redis.cookies import CookieSettings, cookie_in, max_age_until
from flask_scs_redis.testing import RedisServer
from flask_scs_redis.testing.serving import gunicorn

from harness import load_script

EXAMPLES = Path(__file__).parent.parent / "examples"


class Browser:
    """An HTTP client with a cookie jar, as a browser keeps one."""

    def __init__(self, base_url: str, user_agent: str | None = None) -> None:
        self.base_url = base_url
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        if user_agent is not None:
            self.opener.addheaders = [("User-Agent", user_agent)]

    def get(self, path: str = "/") -> str:
        with self.opener.open(self.base_url + path, timeout=10) as response:
            return str(response.read().decode())

    def post(self, path: str, form: str = "") -> str:
        with self.opener.open(self.base_url + path, data=form.encode(), timeout=10) as response:
            return str(response.read().decode())

    def cookie(self, name: str = "session") -> Cookie | None:
        return next((cookie for cookie in self.jar if cookie.name == name), None)

    @property
    def token(self) -> str | None:
        cookie = self.cookie()
        return None if cookie is None else cookie.value


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


CHROME_ON_LINUX = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/126.0.0.0 Safari/537.36"
)
SAFARI_ON_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
FIREFOX_ON_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0"
)


@dataclass
class Demo:
    """The Flask demo, served by a threaded Werkzeug server."""

    app: Flask
    base_url: str

    def browser(self, user_agent: str | None = None) -> Browser:
        return Browser(self.base_url, user_agent)

    def logged_in(self, username: str, user_agent: str, remember: bool = False) -> Browser:
        browser = self.browser(user_agent)
        page = browser.post("/login", f"username={username}" + ("&remember=on" if remember else ""))
        assert f"Logged in as <b>{username}</b>" in page
        return browser

    def session_ids(self, username: str) -> set[str]:
        with self.app.app_context():
            return {info.id for info in self.app.extensions["scs_redis"].user_sessions(username)}


@pytest.fixture
def demo(redis_server: RedisServer, redis_client: redis.Redis) -> Iterator[Demo]:
    app = load_script("examples/flask_app.py").create_app(redis_server.url)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Demo(app, f"http://127.0.0.1:{server.server_port}")
    server.shutdown()
    thread.join(timeout=10)


def text(page: str) -> str:
    """The words of ``page`` as a reader sees them: no tags, entities decoded, spaces collapsed."""
    words = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    return re.sub(r" ([.,])", r"\1", words)  # "<span>in 30 days</span>." is "in 30 days."


def devices(page: str) -> list[str]:
    """The device entries of the Active sessions page, as text, in their order."""
    return [text(entry) for entry in re.findall(r'<li class="device.*?</li>', page, re.DOTALL)]


def test_the_demo_names_each_device_and_says_when_in_words(demo: Demo) -> None:
    phone = demo.logged_in("alice", SAFARI_ON_IPHONE)
    laptop = demo.logged_in("alice", CHROME_ON_LINUX)
    assert "This device: Chrome on Linux" in text(laptop.get())
    page = laptop.get("/sessions")
    # This device first, though the phone logged in before it.
    this_device, other = devices(page)
    assert re.fullmatch(
        r"Chrome on Linux This device started just now · last active just now"
        r" · ends in (29|30) minutes",
        this_device,
    )
    assert re.fullmatch(
        r"Safari on iPhone started just now · last active just now · ends in (29|30) minutes"
        r" Log out",
        other,
    )
    assert page.count("This device") == 1
    # The exact times are there on hover.
    assert len(re.findall(r' title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"', page)) == 6
    # The phone sees the same two devices, with itself first.
    assert [entry.split(" started")[0] for entry in devices(phone.get("/sessions"))] == [
        "Safari on iPhone This device",
        "Chrome on Linux",
    ]


def test_the_demo_logs_out_other_devices(demo: Demo) -> None:
    laptop = demo.logged_in("alice", CHROME_ON_LINUX)
    phone = demo.logged_in("alice", SAFARI_ON_IPHONE)
    desktop = demo.logged_in("alice", FIREFOX_ON_WINDOWS)
    bob = demo.logged_in("bob", FIREFOX_ON_WINDOWS)
    page = laptop.post("/sessions/log-out-others")
    assert "Logged out 2 other devices." in page
    assert [entry.split(" started")[0] for entry in devices(page)] == [
        "Chrome on Linux This device"
    ]
    assert "Log out other devices" not in page
    assert "You are not logged in on any other device." in page
    assert "Logged in as" not in phone.get()
    assert "Logged in as" not in desktop.get()
    assert "Logged in as <b>alice</b>" in laptop.get()
    assert "Logged in as <b>bob</b>" in bob.get()  # another user's sessions are untouched
    assert "No other device was logged in." in laptop.post("/sessions/log-out-others")


def test_the_demo_logs_out_one_device_of_the_user_only(demo: Demo) -> None:
    laptop = demo.logged_in("alice", CHROME_ON_LINUX)
    phone = demo.logged_in("alice", SAFARI_ON_IPHONE)
    desktop = demo.logged_in("alice", FIREFOX_ON_WINDOWS)
    bob = demo.logged_in("bob", FIREFOX_ON_WINDOWS)
    (laptop_id,) = demo.session_ids("alice") - set(
        re.findall(r'action="/sessions/([^/"]+)/log-out"', laptop.get("/sessions"))
    )
    page = laptop.get("/sessions")
    phone_entry = next(
        entry
        for entry in re.findall(r'<li class="device.*?</li>', page, re.DOTALL)
        if "Safari on iPhone" in entry
    )
    (action,) = re.findall(r'action="(/sessions/[^"]+/log-out)"', phone_entry)
    page = laptop.post(action)
    assert "Logged out Safari on iPhone." in page
    assert [entry.split(" started")[0] for entry in devices(page)] == [
        "Chrome on Linux This device",
        "Firefox on Windows",
    ]
    assert "Logged in as" not in phone.get()
    assert "Logged in as <b>alice</b>" in desktop.get()
    # Neither another user's session nor this device's own is this form's to end.
    (bob_id,) = demo.session_ids("bob")
    for session_id in (bob_id, laptop_id):
        with pytest.raises(urllib.error.HTTPError) as raised:
            laptop.post(f"/sessions/{session_id}/log-out")
        assert raised.value.code == 404
    assert "Logged in as <b>bob</b>" in bob.get()
    assert "Logged in as <b>alice</b>" in laptop.get()


def test_the_demo_asks_for_a_name_and_a_login_first(demo: Demo) -> None:
    browser = demo.browser(CHROME_ON_LINUX)
    page = browser.get("/sessions")  # redirected to the login form
    assert "Please log in first." in page
    assert 'name="remember"' in page
    assert "Please enter a name." in browser.post("/login", "username=+")
    assert "Please log in first." in browser.post("/sessions/log-out-others")


def test_the_demo_remembers_a_device_only_when_asked(demo: Demo) -> None:
    forgetful = demo.logged_in("alice", CHROME_ON_LINUX)
    cookie = forgetful.cookie()
    assert cookie is not None
    assert cookie.expires is None  # gone when the browser closes
    assert "if you do nothing" in text(forgetful.get())
    remembered = demo.logged_in("alice", FIREFOX_ON_WINDOWS, remember=True)
    # The session itself lasts 30 days, idle or not, in a persistent cookie;
    # Flask-Login sets no remember cookie of its own.
    assert remembered.cookie("remember_token") is None
    cookie = remembered.cookie()
    assert cookie is not None
    assert cookie.expires is not None
    assert cookie.expires - time.time() > timedelta(days=29).total_seconds()
    page = text(remembered.get())
    assert "This device: Firefox on Windows · remembered" in page
    assert "It ends in 30 days." in page
    page = remembered.post("/logout")
    assert "You are logged out." in page
    assert "Logged in as" not in page
    assert remembered.cookie("remember_token") is None


def test_a_remembered_device_is_logged_out_like_any_other(demo: Demo) -> None:
    laptop = demo.logged_in("alice", CHROME_ON_LINUX)
    remembered = demo.logged_in("alice", FIREFOX_ON_WINDOWS, remember=True)
    assert "Logged out 1 other device." in laptop.post("/sessions/log-out-others")
    assert "Logged in as" not in remembered.get()
    # Nor does a remember cookie from elsewhere log anyone in (the demo has no
    # SECRET_KEY to check one with).
    stale = urllib.request.Request(
        demo.base_url + "/", headers={"Cookie": "remember_token=alice|0123456789abcdef"}
    )
    with urllib.request.urlopen(stale, timeout=10) as response:
        assert "Logged in as" not in response.read().decode()


def test_the_cookie_is_written_exactly_as_werkzeugs_dump_cookie_writes_it() -> None:
    # Set-Cookie values are put together from parts werkzeug wrote once per setting.
    soon = datetime.now(timezone.utc) + timedelta(days=3)
    for domain, path, secure, httponly, samesite, partitioned in itertools.product(
        [None, "example.com", ".example.org:8000"],
        [None, "/", "/a b;"],
        [False, True],
        [False, True],
        [None, "Lax", "strict"],
        [False, True],
    ):
        settings = CookieSettings("session", domain, path, secure, httponly, samesite, partitioned)
        werkzeugs = functools.partial(
            dump_cookie,
            "session",
            path=path,
            domain=domain,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
            partitioned=partitioned,
        )
        for value, expires in [("aZ0-_", None), ("token", soon), ('a "b";', soon)]:
            assert settings.dump(value, expires) == werkzeugs(
                value, max_age=max_age_until(expires), expires=expires
            )
        assert settings.dump_deletion() == werkzeugs("", max_age=0, expires=0)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet='session=;ab \t"\\\x00é', max_size=40))
def test_the_session_cookie_is_found_as_werkzeug_finds_it(header: str) -> None:
    assert cookie_in(header, "session") == parse_cookie(header).get("session")
    assert cookie_in(f"{header}; session=tok", "session") == parse_cookie(
        f"{header}; session=tok"
    ).get("session")
