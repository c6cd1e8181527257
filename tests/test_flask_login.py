"""Flask-Login on server-side sessions, with the real Flask-Login.

With the integration (``SCS_FLASK_LOGIN``, on by default) ``logout_user()``
ends the session, remember-me is the session itself (permanent, with a long
lifetime of its own and no idle timeout), Flask-Login's ``remember_token``
cookie is never set, and one from before the switch is refused. Without it,
Flask-Login behaves as on Flask's cookie sessions, which the tests compare
against a plain Flask app.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import redis
from flask import Flask, request, session
from flask.testing import FlaskClient
from flask_login import (
    LoginManager,
    UserMixin,
    confirm_login,
    current_user,
    login_fresh,
    login_user,
    logout_user,
)
from werkzeug.test import TestResponse

from flask_scs_redis import RedisSessions
from flask_scs_redis.testing.topologies import RedisClusterServers

from harness import (
    Count,
    cookie_token,
    http_get,
    serving,
    set_cookie_headers,
    store_of,
    stored_keys,
    stored_sessions,
)

SECRET = "the-secret-key-flask-login-signs-with"
USERS = {"alice", "bob"}
CART = ["apple", "pear"]
DAY = 24 * 3600
# Flask-Login's default REMEMBER_COOKIE_DURATION.
YEAR = 365 * DAY
# Flask's default PERMANENT_SESSION_LIFETIME.
MONTH = 31 * DAY

ORDERS = ["login-manager-first", "redis-sessions-first"]


class User(UserMixin):  # type: ignore[misc]
    def __init__(self, user_id: str) -> None:
        self.id = user_id


def load_user(user_id: str) -> User | None:
    return User(user_id) if user_id in USERS or user_id.startswith("user-") else None


# The apps.


def add_views(app: Flask, redis_views: bool = True) -> None:
    """The views every app here has; ``redis_views``: those that need this extension."""

    @app.get("/login")
    def login() -> str:
        seconds = request.args.get("seconds")
        login_user(
            User(request.args.get("user", "alice")),
            remember=request.args.get("remember") == "1",
            duration=timedelta(seconds=float(seconds)) if seconds else None,
        )
        return "ok"

    @app.get("/me")
    def me() -> str:
        return str(current_user.get_id() or "anonymous")

    @app.get("/logout")
    def logout() -> str:
        logout_user()
        return "ok"

    @app.get("/fresh")
    def fresh() -> str:
        return str(login_fresh())

    @app.get("/confirm")
    def confirm() -> str:
        confirm_login()
        return "ok"

    @app.get("/cart")
    def cart() -> str:
        session["cart"] = CART
        return "ok"

    @app.get("/show-cart")
    def show_cart() -> str:
        return repr(session.get("cart"))

    @app.get("/untouched")
    def untouched() -> str:
        return "ok"

    if not redis_views:
        return

    @app.get("/logout-destroy")
    def logout_destroy() -> str:
        logout_user()
        session.destroy()  # type: ignore[attr-defined]
        return "ok"

    @app.get("/destroy-logout")
    def destroy_logout() -> str:
        session.destroy()  # type: ignore[attr-defined]
        logout_user()
        return "ok"

    @app.get("/everywhere")
    def everywhere() -> str:
        return str(RedisSessions().destroy_user_sessions(current_user.get_id()))

    @app.get("/others")
    def others() -> str:
        return str(RedisSessions().destroy_user_sessions(current_user.get_id(), keep_current=True))

    @app.get("/sessions")
    def sessions() -> str:
        listed = RedisSessions().user_sessions(current_user.get_id())
        return json.dumps([{"id": info.id, "current": info.current} for info in listed])

    @app.get("/kill")
    def kill() -> str:
        return str(RedisSessions().destroy(request.args["id"]))

    @app.get("/renew")
    def renew() -> str:
        session.renew()  # type: ignore[attr-defined]
        return "ok"


def login_manager(app: Flask, protection: str | None = None) -> None:
    manager = LoginManager()
    manager.user_loader(load_user)
    manager.session_protection = protection
    manager.init_app(app)


def redis_app(
    redis_client: redis.Redis,
    order: str = ORDERS[0],
    protection: str | None = None,
    **config: Any,
) -> Flask:
    """An app on this extension with Flask-Login, set up in ``order``."""
    app = Flask(__name__)
    app.config.update(TESTING=True, SECRET_KEY=SECRET, SCS_REDIS=redis_client, **config)
    if order == "login-manager-first":
        login_manager(app, protection)
        RedisSessions(app)
    else:
        RedisSessions(app)
        login_manager(app, protection)
    add_views(app)
    return app


def cookie_app(protection: str | None = None, **config: Any) -> Flask:
    """A plain Flask app with Flask-Login, its sessions in Flask's signed cookies."""
    app = Flask(__name__)
    app.config.update(TESTING=True, SECRET_KEY=SECRET, **config)
    login_manager(app, protection)
    add_views(app, redis_views=False)
    return app


@pytest.fixture(params=ORDERS)
def order(request: pytest.FixtureRequest) -> str:
    """Whether the LoginManager is set up before or after ``RedisSessions(app)``."""
    return str(request.param)


MakeLoginApp = Callable[..., Flask]


@pytest.fixture
def make_login_app(redis_client: redis.Redis, order: str) -> MakeLoginApp:
    """Build an app with the integration on the shared server, extra config as keywords."""
    return lambda protection=None, **config: redis_app(redis_client, order, protection, **config)


# Reading responses and records.


def cookie_lines(response: TestResponse, name: str) -> list[str]:
    """The Set-Cookie lines of ``response`` for the cookie ``name``."""
    return [line for line in set_cookie_headers(response) if line.split("=", 1)[0] == name]


def cookie_names(response: TestResponse) -> list[str]:
    return sorted(line.split("=", 1)[0] for line in set_cookie_headers(response))


def attributes(line: str) -> dict[str, str]:
    """The attributes of a Set-Cookie line, by lower-case name."""
    found = {}
    for part in line.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        found[key.lower()] = value
    return found


def deletes(line: str) -> bool:
    """Whether the Set-Cookie ``line`` deletes its cookie."""
    value = line.split(";", 1)[0].split("=", 1)[1].strip('"')
    expires = attributes(line).get("expires", "")
    return value == "" and (attributes(line).get("max-age") == "0" or "1970" in expires)


def sets_a_value(line: str) -> bool:
    return not deletes(line)


def max_age(response: TestResponse, name: str = "session") -> int | None:
    """The Max-Age of the one Set-Cookie for ``name``; None for a browser-session cookie."""
    (line,) = cookie_lines(response, name)
    assert sets_a_value(line), line
    value = attributes(line).get("max-age")
    return None if value is None else int(value)


def no_remember_cookie_set(response: TestResponse, name: str = "remember_token") -> bool:
    return not any(sets_a_value(line) for line in cookie_lines(response, name))


def record_key(app: Flask, client: FlaskClient) -> str:
    token = cookie_token(client)
    assert token is not None
    return store_of(app).key_for(token)


def ttl_seconds(redis_client: redis.Redis, app: Flask, client: FlaskClient) -> float:
    pttl = redis_client.pttl(record_key(app, client))
    assert pttl > 0, pttl
    return int(pttl) / 1000


def about(seconds: float, expected: float, slack: float = 5) -> bool:
    """Whether ``seconds`` is ``expected`` give or take the time a test takes, never more."""
    return expected - slack <= seconds <= expected


def session_records(redis_client: redis.Redis) -> list[bytes]:
    """The keys of session records (not the per-user indexes)."""
    return [key for key in stored_keys(redis_client) if not key.endswith(b":user")]


def get(client: FlaskClient, path: str, **kwargs: Any) -> TestResponse:
    response = client.get(path, **kwargs)
    assert response.status_code == 200, (path, response.status_code, response.text)
    return response


# 1, 2 and 3: remember-me is the session, with a lifetime of its own.

REMEMBERED_LIFETIMES = [
    pytest.param({"REMEMBER_COOKIE_DURATION": timedelta(days=30)}, "", 30 * DAY, id="duration"),
    pytest.param({"REMEMBER_COOKIE_DURATION": 7 * DAY}, "", 7 * DAY, id="duration-in-seconds"),
    pytest.param(
        {"REMEMBER_COOKIE_DURATION": timedelta(days=30), "SCS_REMEMBER_LIFETIME": 2 * DAY},
        "",
        2 * DAY,
        id="scs-remember-lifetime",
    ),
    pytest.param({}, f"&seconds={3 * DAY}", 3 * DAY, id="login-user-duration"),
    pytest.param({}, "", YEAR, id="flask-login-default"),
]


@pytest.mark.parametrize(("config", "query", "lifetime"), REMEMBERED_LIFETIMES)
def test_remember_me_is_a_persistent_session_cookie_with_its_own_lifetime(
    make_login_app: MakeLoginApp,
    redis_client: redis.Redis,
    config: dict[str, Any],
    query: str,
    lifetime: int,
) -> None:
    app = make_login_app(PERMANENT_SESSION_LIFETIME=timedelta(hours=2), **config)
    client = app.test_client()
    response = get(client, "/login?remember=1" + query)
    assert cookie_names(response) == ["session"]  # no remember_token of Flask-Login's
    assert client.get_cookie("remember_token") is None
    age = max_age(response)
    assert age is not None and about(age, lifetime)
    assert about(ttl_seconds(redis_client, app, client), lifetime)  # not the 2 h idle window
    (values,) = stored_sessions(redis_client)
    assert values["_user_id"] == "alice"
    assert "_remember" not in values and "_remember_seconds" not in values
    # Later requests keep it: the user, the cookie's age and the record's TTL.
    assert get(client, "/me").text == "alice"
    response = get(client, "/cart")
    assert no_remember_cookie_set(response)
    age = max_age(response)
    assert age is not None and about(age, lifetime)
    assert about(ttl_seconds(redis_client, app, client), lifetime)


@pytest.mark.parametrize(
    ("config", "window"),
    [
        pytest.param({"PERMANENT_SESSION_LIFETIME": timedelta(hours=2)}, 2 * 3600, id="flask"),
        pytest.param({"SCS_IDLE_TIMEOUT": 600}, 600, id="scs-idle-timeout"),
        pytest.param({}, MONTH, id="default"),
    ],
)
def test_a_login_without_remember_keeps_the_apps_default_lifetime(
    make_login_app: MakeLoginApp, redis_client: redis.Redis, config: dict[str, Any], window: int
) -> None:
    app = make_login_app(REMEMBER_COOKIE_DURATION=timedelta(days=30), **config)
    client = app.test_client()
    response = get(client, "/login")
    assert cookie_names(response) == ["session"]
    assert max_age(response) is None  # a browser-session cookie
    assert "expires" not in attributes(cookie_lines(response, "session")[0])
    assert about(ttl_seconds(redis_client, app, client), window)
    assert get(client, "/me").text == "alice"
    assert about(ttl_seconds(redis_client, app, client), window)


def test_another_users_login_without_remember_does_not_inherit_remember_me(
    make_login_app: MakeLoginApp, redis_client: redis.Redis
) -> None:
    # Alice logs in with "remember me"; then, in the same browser and without
    # logging out, bob logs in without it. As with plain Flask-Login, bob's
    # session is a browser session with the app's idle window, not a year-long
    # remembered one carried over by the renewal.
    app = make_login_app(PERMANENT_SESSION_LIFETIME=timedelta(hours=2))
    client = app.test_client()
    get(client, "/login?remember=1")
    alice_token = cookie_token(client)
    response = get(client, "/login?user=bob")
    assert cookie_token(client) != alice_token  # a new user: a new token
    assert get(client, "/me").text == "bob"
    assert max_age(response) is None  # a browser-session cookie, as without remember
    assert about(ttl_seconds(redis_client, app, client), 2 * 3600)


def test_login_renews_the_token_and_keeps_the_values(
    make_login_app: MakeLoginApp, redis_client: redis.Redis
) -> None:
    app = make_login_app()
    client = app.test_client()
    get(client, "/cart")
    anonymous = cookie_token(client)
    assert anonymous is not None
    get(client, "/login?remember=1")
    assert cookie_token(client) not in (None, anonymous)
    assert get(client, "/show-cart").text == repr(CART)
    assert len(session_records(redis_client)) == 1  # the anonymous record is gone
    # The planted token is worthless.
    planted = app.test_client()
    planted.set_cookie("session", anonymous)
    assert get(planted, "/me").text == "anonymous"
    assert get(planted, "/show-cart").text == "None"


def test_a_remembered_session_outlives_the_idle_window_and_a_plain_one_does_not(
    redis_client: redis.Redis,
) -> None:
    """A 1 s window (Flask's, ours, or an absolute cap; either order of set-up), 1.5 s idle."""
    devices: list[tuple[Flask, str, FlaskClient, FlaskClient, FlaskClient]] = []
    windows: list[dict[str, Any]] = [
        {"PERMANENT_SESSION_LIFETIME": 1},
        {"SCS_IDLE_TIMEOUT": 1},
        {"SCS_LIFETIME": 1},
    ]
    for order in ORDERS:
        for config in windows:
            user = f"user-{len(devices)}"  # the apps share the Redis, so the users' indexes
            app = redis_app(
                redis_client, order, REMEMBER_COOKIE_DURATION=timedelta(days=30), **config
            )
            remembered, plain, upgraded = (app.test_client() for _ in range(3))
            get(remembered, f"/login?remember=1&user={user}")
            get(plain, f"/login?user={user}")
            assert ttl_seconds(redis_client, app, plain) <= 1
            # Logged in, then again with remember-me: the same user, so no new token.
            get(upgraded, f"/login?user={user}")
            get(upgraded, f"/login?remember=1&user={user}")
            devices.append((app, user, remembered, plain, upgraded))
    time.sleep(1.5)
    for app, user, remembered, plain, upgraded in devices:
        assert get(remembered, "/me").text == user
        assert get(upgraded, "/me").text == user
        assert about(ttl_seconds(redis_client, app, upgraded), 30 * DAY)
        assert get(plain, "/me").text == "anonymous"
        # The lifetime holds after reads and a renewal (counted again from it).
        assert about(ttl_seconds(redis_client, app, remembered), 30 * DAY)
        get(remembered, "/renew")
        assert get(remembered, "/me").text == user
        assert about(ttl_seconds(redis_client, app, remembered), 30 * DAY)
        age = max_age(get(remembered, "/cart"))
        assert age is not None and about(age, 30 * DAY)
        # Log out everywhere still finds it, past the app's window.
        laptop = app.test_client()
        get(laptop, f"/login?user={user}")
        assert get(laptop, "/everywhere").text == "3"
        assert get(remembered, "/me").text == "anonymous"
        assert get(upgraded, "/me").text == "anonymous"


# 4: logging out ends the session, whichever way.


@pytest.mark.parametrize("logout", ["/logout", "/logout-destroy", "/destroy-logout"])
@pytest.mark.parametrize("remember", ["0", "1"])
def test_logging_out_ends_the_session_and_a_copied_cookie_with_it(
    make_login_app: MakeLoginApp, redis_client: redis.Redis, logout: str, remember: str
) -> None:
    app = make_login_app()
    client = app.test_client()
    get(client, f"/login?remember={remember}")
    get(client, "/cart")
    copied = cookie_token(client)
    assert copied is not None
    assert len(session_records(redis_client)) == 1
    response = get(client, logout)
    assert cookie_names(response) == ["session"]
    (line,) = cookie_lines(response, "session")
    assert deletes(line), line
    assert attributes(line)["max-age"] == "0"
    assert stored_keys(redis_client) == []  # the record and the user's index
    assert client.get_cookie("session") is None
    assert get(client, "/me").text == "anonymous"
    assert get(client, "/show-cart").text == "None"
    # The token captured before logging out, replayed from elsewhere, is worth nothing.
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert get(thief, "/me").text == "anonymous"
    assert get(thief, "/show-cart").text == "None"
    assert stored_keys(redis_client) == []


def test_every_way_of_logging_out_answers_alike(make_login_app: MakeLoginApp) -> None:
    app = make_login_app()
    answers = set()
    for logout in ["/logout", "/logout-destroy", "/destroy-logout"]:
        client = app.test_client()
        get(client, "/login?remember=1")
        response = get(client, logout)
        answers.add((tuple(set_cookie_headers(response)), response.headers.get("Vary")))
    assert len(answers) == 1, answers


# 5 and 6: log out everywhere, and one device.


@pytest.mark.parametrize("keep_current", [False, True])
def test_log_out_everywhere_ends_remembered_sessions_too(
    make_login_app: MakeLoginApp, redis_client: redis.Redis, keep_current: bool
) -> None:
    app = make_login_app()
    phone, tablet, laptop, other_user = (app.test_client() for _ in range(4))
    get(phone, "/login?remember=1")
    get(tablet, "/login")
    get(laptop, "/login")
    get(other_user, "/login?user=bob&remember=1")
    response = get(laptop, "/others" if keep_current else "/everywhere")
    assert response.text == ("2" if keep_current else "3")
    assert no_remember_cookie_set(response)
    assert get(phone, "/me").text == "anonymous"
    assert get(tablet, "/me").text == "anonymous"
    assert get(laptop, "/me").text == ("alice" if keep_current else "anonymous")
    assert get(other_user, "/me").text == "bob"
    users = sorted(str(values.get("_user_id")) for values in stored_sessions(redis_client))
    assert users == (["alice", "bob"] if keep_current else ["bob"])


def test_destroying_a_remembered_session_by_id_logs_that_device_out(
    make_login_app: MakeLoginApp,
) -> None:
    app = make_login_app()
    phone, laptop = app.test_client(), app.test_client()
    get(phone, "/login?remember=1")
    get(laptop, "/login")
    listed = json.loads(get(laptop, "/sessions").text)
    assert sorted(entry["current"] for entry in listed) == [False, True]
    (phone_id,) = [entry["id"] for entry in listed if not entry["current"]]
    assert get(laptop, "/kill", query_string={"id": phone_id}).text == "True"
    assert get(phone, "/me").text == "anonymous"
    assert get(laptop, "/me").text == "alice"
    assert [entry["current"] for entry in json.loads(get(laptop, "/sessions").text)] == [True]


# 7 and 8: Flask-Login's remember_token cookie.


def old_remember_cookie(app: Flask, name: str = "remember_token", path: str = "/") -> str:
    """Log in with remember-me on ``app``; return the remember cookie it set."""
    client = app.test_client()
    response = get(client, "/login?remember=1")
    assert any(sets_a_value(line) for line in cookie_lines(response, name))
    cookie = client.get_cookie(name, path=path)
    assert cookie is not None
    return cookie.value


@pytest.mark.parametrize("source", ["cookie-sessions", "integration-off"])
@pytest.mark.parametrize(
    ("name", "path"), [("remember_token", "/"), ("keep_me", "/"), ("remember_token", "/me")]
)
def test_a_remember_cookie_from_before_the_switch_is_refused_and_deleted(
    make_login_app: MakeLoginApp, redis_client: redis.Redis, source: str, name: str, path: str
) -> None:
    config = {"REMEMBER_COOKIE_NAME": name, "REMEMBER_COOKIE_PATH": path}
    if source == "cookie-sessions":
        old_app = cookie_app(**config)
    else:
        old_app = redis_app(redis_client, SCS_FLASK_LOGIN=False, **config)
    cookie = old_remember_cookie(old_app, name, path)
    redis_client.flushall()
    # It is a good cookie: the old app logs a browser with only it in.
    old_browser = old_app.test_client()
    old_browser.set_cookie(name, cookie, path=path)
    assert get(old_browser, "/me").text == "alice"
    redis_client.flushall()

    app = make_login_app(**config)
    browser = app.test_client()
    browser.set_cookie(name, cookie, path=path)
    response = get(browser, "/me")
    assert response.text == "anonymous"
    assert cookie_names(response) == [name]
    (line,) = cookie_lines(response, name)
    assert deletes(line), line
    assert attributes(line)["path"] == path
    assert stored_keys(redis_client) == []  # no session just for that
    assert browser.get_cookie(name, path=path) is None
    assert get(browser, "/me").text == "anonymous"

    # Sent with a session of its own, it is refused and deleted too; the session stays.
    browser = app.test_client()
    get(browser, "/login")
    browser.set_cookie(name, cookie, path=path)
    response = get(browser, "/me")
    assert response.text == "alice"
    (line,) = cookie_lines(response, name)
    assert deletes(line), line
    # And once that session ends, the cookie does not log the browser back in.
    browser.set_cookie(name, cookie, path=path)
    get(browser, "/logout")
    browser.set_cookie(name, cookie, path=path)
    assert get(browser, "/me").text == "anonymous"


def test_refresh_each_request_never_sets_a_remember_cookie(
    make_login_app: MakeLoginApp, redis_client: redis.Redis
) -> None:
    app = make_login_app(REMEMBER_COOKIE_REFRESH_EACH_REQUEST=True)
    # An anonymous visitor gets no session for it.
    visitor = app.test_client()
    response = get(visitor, "/me")
    assert response.text == "anonymous"
    assert set_cookie_headers(response) == []
    assert stored_keys(redis_client) == []

    client = app.test_client()
    for path in ["/login?remember=1", "/me", "/cart", "/fresh", "/me", "/login", "/me"]:
        response = get(client, path)
        assert no_remember_cookie_set(response), (path, set_cookie_headers(response))
        assert client.get_cookie("remember_token") is None
    assert get(client, "/me").text == "alice"
    (values,) = stored_sessions(redis_client)
    assert "_remember" not in values
    response = get(client, "/logout")
    assert no_remember_cookie_set(response)
    assert stored_keys(redis_client) == []
    assert get(client, "/me").text == "anonymous"
    assert stored_keys(redis_client) == []


# 9: session protection and fresh logins, as Flask-Login documents them.

HOME = {"environ_base": {"REMOTE_ADDR": "10.0.0.1"}, "headers": {"User-Agent": "Home/1.0"}}
ELSEWHERE = [
    pytest.param(
        {"environ_base": {"REMOTE_ADDR": "10.9.9.9"}, "headers": HOME["headers"]}, id="ip"
    ),
    pytest.param(
        {"environ_base": HOME["environ_base"], "headers": {"User-Agent": "Thief/2.0"}}, id="agent"
    ),
]


def both_apps(redis_client: redis.Redis, order: str, protection: str) -> list[Flask]:
    """The app with the integration, and a plain cookie-session app to compare with."""
    return [redis_app(redis_client, order, protection), cookie_app(protection)]


@pytest.mark.parametrize("elsewhere", ELSEWHERE)
def test_strong_protection_drops_the_user_of_a_session_used_elsewhere(
    redis_client: redis.Redis, order: str, elsewhere: dict[str, Any]
) -> None:
    for app in both_apps(redis_client, order, "strong"):
        client = app.test_client()
        get(client, "/login", **HOME)
        get(client, "/cart", **HOME)
        assert get(client, "/me", **HOME).text == "alice"
        assert get(client, "/me", **elsewhere).text == "anonymous"
        assert get(client, "/me", **HOME).text == "anonymous"  # the user is gone for good
        assert get(client, "/show-cart", **HOME).text == repr(CART)  # the rest stays
    assert [values.get("_user_id") for values in stored_sessions(redis_client)] == [None]


@pytest.mark.parametrize("elsewhere", ELSEWHERE)
def test_strong_protection_of_a_remembered_session_used_elsewhere(
    redis_client: redis.Redis, order: str, elsewhere: dict[str, Any]
) -> None:
    # With strong protection, plain Flask-Login logs out a remember-me login used
    # from another IP or user agent: its session is not permanent, so its user is
    # dropped, and its remember cookie cleared. A remembered session here is
    # permanent, which Flask-Login would only mark not fresh; the integration
    # ends it instead, so remember-me does not weaken strong protection.
    plain, integrated = cookie_app("strong"), redis_app(redis_client, order, "strong")
    for label, app in [("plain", plain), ("integrated", integrated)]:
        client = app.test_client()
        get(client, "/login?remember=1", **HOME)
        assert get(client, "/me", **HOME).text == "alice"
        response = get(client, "/me", **elsewhere)
        assert no_remember_cookie_set(response)
        assert (label, response.text) == (label, "anonymous")
        assert (label, get(client, "/me", **HOME).text) == (label, "anonymous")


@pytest.mark.parametrize("elsewhere", ELSEWHERE)
@pytest.mark.parametrize("remember", ["0", "1"])
def test_basic_protection_marks_a_session_used_elsewhere_not_fresh(
    redis_client: redis.Redis, order: str, elsewhere: dict[str, Any], remember: str
) -> None:
    for app in both_apps(redis_client, order, "basic"):
        client = app.test_client()
        get(client, f"/login?remember={remember}", **HOME)
        assert get(client, "/fresh", **HOME).text == "True"
        assert get(client, "/me", **elsewhere).text == "alice"
        assert get(client, "/fresh", **elsewhere).text == "False"
        assert get(client, "/fresh", **HOME).text == "False"  # stored, so it holds
        get(client, "/confirm", **elsewhere)  # the user gave the password again
        assert get(client, "/fresh", **elsewhere).text == "True"
        assert get(client, "/me", **elsewhere).text == "alice"
    (values,) = stored_sessions(redis_client)
    assert values["_fresh"] is True


def test_fresh_logins_and_confirm_login(make_login_app: MakeLoginApp) -> None:
    app = make_login_app()
    client = app.test_client()
    assert get(client, "/fresh").text == "False"
    get(client, "/login?remember=1")
    assert get(client, "/fresh").text == "True"
    get(client, "/renew")  # a new token keeps the values, freshness too
    assert get(client, "/fresh").text == "True"
    get(client, "/confirm")
    assert get(client, "/fresh").text == "True"
    assert get(client, "/me").text == "alice"


# 10: with the integration off, Flask-Login behaves as on Flask's cookie sessions.


def steps(app: Flask) -> list[tuple[str, list[str], bool]]:
    """Log in with remember-me, log out, come back: per step the body, cookie names and sets."""
    client = app.test_client()
    seen = []
    for path in ["/login?remember=1", "/cart", "/me", "/logout", "/me", "/show-cart"]:
        response = get(client, path)
        remember = cookie_lines(response, "remember_token")
        seen.append((response.text, cookie_names(response), any(map(sets_a_value, remember))))
    return seen


def test_with_the_integration_off_flask_login_behaves_as_on_cookie_sessions(
    redis_client: redis.Redis, order: str
) -> None:
    integration_off = redis_app(redis_client, order, SCS_FLASK_LOGIN=False)
    off, plain = steps(integration_off), steps(cookie_app())
    assert off == plain
    assert off[0] == ("ok", ["remember_token", "session"], True)  # remember=True sets it
    _, names, sets = off[3]
    assert "remember_token" in names and not sets  # logout_user clears it
    assert [body for body, _, _ in off[4:]] == ["anonymous", repr(CART)]
    # logout_user only popped its keys: the record is still there, without the user.
    (values,) = stored_sessions(redis_client)
    assert values["cart"] == CART
    assert "_user_id" not in values

    # And the remember cookie logs a browser in on both.
    for app in (integration_off, cookie_app()):
        cookie = old_remember_cookie(app)
        browser = app.test_client()
        browser.set_cookie("remember_token", cookie)
        assert get(browser, "/me").text == "alice"


# 11: an app without Flask-Login sees no change.


def app_without_flask_login(redis_client: redis.Redis, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(TESTING=True, SCS_REDIS=redis_client, **config)
    RedisSessions(app)

    @app.get("/none")
    def untouched() -> str:
        return "ok"

    @app.get("/cart")
    def cart() -> str:
        session["cart"] = CART
        return "ok"

    @app.get("/login")
    def login() -> str:
        session["_user_id"] = "alice"
        session["_remember"] = "set"
        if request.args.get("remember"):
            session.permanent = True
        return "ok"

    @app.get("/show")
    def show() -> str:
        return json.dumps(sorted(session.keys()))

    @app.get("/cookies")
    def cookies() -> str:
        return json.dumps(sorted(request.cookies))

    @app.get("/end")
    def end() -> str:
        session.destroy()  # type: ignore[attr-defined]
        return "ok"

    return app


def normalized(header: str, client: FlaskClient, ages: list[int]) -> str:
    """``header`` without the client's token and the cookie's expiry, which differ run to run.

    The Max-Age taken out goes to ``ages``.
    """
    token = cookie_token(client)
    if token:
        header = header.replace(token, "TOKEN")
    ages.extend(int(age) for age in re.findall(r"Max-Age=(\d+)", header))
    header = re.sub(r"Max-Age=\d+", "Max-Age=AGE", header)
    return re.sub(r"Expires=[^;]*", "Expires=WHEN", header)


@pytest.mark.parametrize("order", ORDERS)
def test_a_request_that_never_touches_the_session_costs_nothing_with_flask_login(
    redis_client: redis.Redis, count: Count, order: str
) -> None:
    """Flask-Login's after_request asks every request for "_remember": no read for that."""
    client = redis_app(redis_client, order).test_client()
    get(client, "/login?remember=1")
    with count() as counted:
        response = get(client, "/untouched")
    assert counted.by_command == {}
    # Flask marks a session accessed through its proxy, as Flask-Login's after_request
    # reaches it, so Vary: Cookie is sent, as with Flask's own sessions; no read is.
    assert set_cookie_headers(response) == []
    assert get(client, "/me").text == "alice"


def test_an_app_without_flask_login_sees_no_change(redis_client: redis.Redis, count: Count) -> None:
    def run(flag: bool) -> tuple[list[Any], list[int]]:
        redis_client.flushall()
        ages: list[int] = []
        client = app_without_flask_login(redis_client, SCS_FLASK_LOGIN=flag).test_client()
        client.set_cookie("remember_token", "alice|not-a-real-signature")
        seen: list[Any] = []
        paths = ["/none", "/cookies", "/cart", "/login?remember=1", "/show", "/none", "/end"]
        for path in [*paths, "/show", "/cookies"]:
            with count() as counted:
                response = get(client, path)
            headers = [(key, normalized(value, client, ages)) for key, value in response.headers]
            seen.append((path, response.text, headers, counted.by_command, counted.in_scripts))
        assert client.get_cookie("remember_token") is not None  # nobody deleted it
        return seen, ages

    (on, ages_on), (off, ages_off) = run(True), run(False)
    assert on == off
    assert len(ages_on) == len(ages_off) > 0
    assert all(abs(a - b) <= 1 for a, b in zip(ages_on, ages_off))
    assert on[1][1] == json.dumps(["remember_token"])  # the app sees the cookie
    assert on[4][1] == json.dumps(["_permanent", "_remember", "_user_id", "cart"])


# 12: over real HTTP.


def set_cookies(headers: list[tuple[str, str]]) -> dict[str, str]:
    """The cookies a response sets, by name: the value and its attributes."""
    found = {}
    for key, value in headers:
        if key.lower() == "set-cookie":
            found[value.split("=", 1)[0]] = value
    return found


def session_cookie(headers: list[tuple[str, str]]) -> str:
    return set_cookies(headers)["session"].split(";", 1)[0]


def test_remember_me_and_log_out_everywhere_over_http(
    redis_client: redis.Redis, order: str
) -> None:
    app = redis_app(redis_client, order, REMEMBER_COOKIE_DURATION=timedelta(days=30))
    with serving(app) as port:
        status, headers, _ = http_get(port, "/login?remember=1")
        assert status == 200
        assert list(set_cookies(headers)) == ["session"]
        line = set_cookies(headers)["session"]
        assert about(int(attributes(line)["max-age"]), 30 * DAY)
        phone = {"Cookie": session_cookie(headers)}
        _, headers, _ = http_get(port, "/login")
        laptop = {"Cookie": session_cookie(headers)}
        assert http_get(port, "/me", phone)[2] == b"alice"
        assert http_get(port, "/me", laptop)[2] == b"alice"

        status, headers, body = http_get(port, "/everywhere", laptop)
        assert (status, body) == (200, b"2")
        assert "remember_token" not in set_cookies(headers)
        assert http_get(port, "/me", phone)[2] == b"anonymous"
        assert http_get(port, "/me", laptop)[2] == b"anonymous"
        # A remember cookie of Flask-Login's from before is refused there too.
        old = old_remember_cookie(cookie_app())
        status, headers, body = http_get(port, "/me", {"Cookie": f"remember_token={old}"})
        assert (status, body) == (200, b"anonymous")
        assert deletes(set_cookies(headers)["remember_token"])
    assert stored_keys(redis_client) == []


@pytest.mark.cluster
def test_remember_me_and_log_out_everywhere_on_a_cluster() -> None:
    """Records, the user's index and its re-scoring land on different nodes: one key a step."""
    with RedisClusterServers(replicas_per_primary=0) as servers:
        cluster = servers.client()
        try:
            app = redis_app(cluster, SCS_IDLE_TIMEOUT=1)
            phone, laptop = app.test_client(), app.test_client()
            get(phone, "/login?remember=1")
            get(laptop, "/login")
            time.sleep(1.3)  # the laptop's idle window passes; the remembered phone stays
            assert get(phone, "/me").text == "alice"
            assert get(laptop, "/me").text != "alice"
            get(laptop, "/login")
            assert get(laptop, "/everywhere").text == "2"
            assert get(phone, "/me").text != "alice"
        finally:
            cluster.close()


# Encryption at rest under Flask-Login.


ENCRYPTED = {"SCS_ENCRYPT": True, "SCS_ENCRYPTION_KEYS": ["flask-login-at-rest-secret-0123456789"]}


def test_flask_login_works_alike_with_encryption_at_rest(
    make_login_app: MakeLoginApp, redis_client: redis.Redis
) -> None:
    app = make_login_app(**ENCRYPTED)
    phone, laptop, other_user = app.test_client(), app.test_client(), app.test_client()
    get(phone, "/login?user=user-alice&remember=1")
    get(laptop, "/login?user=user-alice")
    get(laptop, "/cart")
    get(other_user, "/login?user=user-bob")
    assert get(laptop, "/show-cart").text == repr(CART)
    assert get(phone, "/me").text == "user-alice"
    everything = b"".join(
        key
        + (
            redis_client.get(key) or b""
            if redis_client.type(key) == b"string"
            else b"".join(redis_client.zrange(key, 0, -1))
        )
        for key in redis_client.scan_iter()
    )
    # Whole names: three letters alone turn up in base64 keys (one run in a few hundred).
    for plain in (b"user-alice", b"user-bob", b"apple"):
        assert plain not in everything, plain
    listed = json.loads(get(laptop, "/sessions").text)
    assert sorted(entry["current"] for entry in listed) == [False, True]
    assert get(laptop, "/others").text == "1"  # the remembered phone too
    assert get(phone, "/me").text == "anonymous"
    get(laptop, "/logout")
    assert get(laptop, "/me").text == "anonymous"
    assert get(other_user, "/me").text == "user-bob"
    assert len(session_records(redis_client)) == 1
