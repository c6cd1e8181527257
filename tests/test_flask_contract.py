"""The Flask side of the contract: Flask's config keys, hooks, helpers and test client.

Flask's ``modified`` rule is kept by the WSGI adapter too, so its tests run over both.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import redis
from flask import Flask, Response, flash, get_flashed_messages, session, stream_with_context
from flask.sessions import SessionMixin
from flask.testing import FlaskClient
from markupsafe import Markup
from werkzeug.test import Client

from flask_scs_redis import RedisSessionInterface, RedisSessions, RedisStore, Session

from harness import Count, MakeApp, cookie_token, set_cookie_headers, stored_values
from test_codec import SAMPLES, same_types
from views import build_flask_app, view


def test_values_of_every_type_survive_a_round_trip_through_redis(app: Flask) -> None:
    @app.get("/check")
    def check() -> str:
        return str(same_types(dict(session), SAMPLES))

    client = app.test_client()
    with client.session_transaction() as sess:
        sess.update(SAMPLES)
    assert client.get("/check").text == "True"


def test_the_cookie_path_falls_back_to_application_root(make_app: MakeApp) -> None:
    client = make_app(APPLICATION_ROOT="/root").test_client()
    assert "Path=/root" in set_cookie_headers(client.get("/incr"))[0]


def test_the_lifetime_defaults_to_permanent_session_lifetime(make_app: MakeApp) -> None:
    client = make_app(PERMANENT_SESSION_LIFETIME=3600).test_client()
    header = set_cookie_headers(client.get("/permanent"))[0]
    assert "Max-Age=3599" in header or "Max-Age=3600" in header


def test_set_cookie_follows_a_subclass_should_set_cookie(redis_client: redis.Redis) -> None:
    class NeverSetCookie(RedisSessionInterface):
        def should_set_cookie(self, app: Flask, session: Any) -> bool:
            return False

    class NamedCookie(RedisSessionInterface):
        def get_cookie_name(self, app: Flask) -> str:
            return "custom"

    for interface, check in [
        (NeverSetCookie, lambda headers: headers == []),
        (NamedCookie, lambda headers: headers[0].startswith("custom=")),
    ]:

        class CustomSessions(RedisSessions):
            interface_class = interface

        app = build_flask_app(redis_client)
        CustomSessions(app)
        assert type(app.session_interface) is interface
        assert check(set_cookie_headers(app.test_client().get("/incr")))


def test_flask_cookie_settings_are_read_at_request_time(app: Flask) -> None:
    app.config["SESSION_COOKIE_NAME"] = "changed_after_init"
    assert set_cookie_headers(app.test_client().get("/incr"))[0].startswith("changed_after_init=")


def test_the_session_is_a_dict_and_a_session_mixin(app: Flask) -> None:
    with app.test_request_context():
        current = session._get_current_object()  # type: ignore[attr-defined]
        assert isinstance(current, dict)
        assert isinstance(current, SessionMixin)


def test_session_transaction_reads_and_writes_the_real_session(flask_client: FlaskClient) -> None:
    with flask_client.session_transaction() as sess:
        assert isinstance(sess, Session)
        sess["n"] = 41
    assert flask_client.get("/incr").text == "42"
    with flask_client.session_transaction() as sess:
        assert sess["n"] == 42


def test_changes_made_in_after_request_are_saved(app: Flask) -> None:
    @app.after_request
    def mark(response: Response) -> Response:
        session["seen_by_after_request"] = True
        return response

    client = app.test_client()
    client.get("/none")
    with client.session_transaction() as sess:
        assert sess["seen_by_after_request"] is True


def test_the_session_works_inside_stream_with_context(app: Flask) -> None:
    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Any:
            yield "n="
            yield repr(session.get("n"))

        return Response(stream_with_context(chunks()))

    client = app.test_client()
    client.get("/incr")
    assert client.get("/stream").text == "n=1"


def test_a_session_written_before_an_http_error_is_saved(flask_client: FlaskClient) -> None:
    assert flask_client.get("/abort-after-write").status_code == 404
    with flask_client.session_transaction() as sess:
        assert sess["before_abort"] is True


def test_a_session_written_before_an_unhandled_error_is_saved(make_app: MakeApp) -> None:
    client = make_app(TESTING=False).test_client()
    assert client.get("/fail-after-write").status_code == 500
    with client.session_transaction() as sess:
        assert sess["before_failure"] is True


def test_flash_keeps_markup_and_categories(flask_client: FlaskClient) -> None:
    flask_client.get("/flash", query_string={"message": "plain", "category": "info"})
    with flask_client.session_transaction() as sess:
        sess["_flashes"].append(("error", Markup("<b>bold</b>")))
    flashes = flask_client.get("/flashes").text
    assert flashes == repr([("info", "plain"), ("error", Markup("<b>bold</b>"))])
    assert flask_client.get("/flashes").text == "[]"


def test_the_extension_registers_itself(app: Flask) -> None:
    extension = app.extensions["scs_redis"]
    assert isinstance(extension, RedisSessions)
    assert isinstance(app.session_interface, RedisSessionInterface)
    assert extension.store(app) is app.session_interface.engine.store


def test_a_session_class_on_the_interface_is_what_views_get(redis_client: redis.Redis) -> None:
    class CartSession(Session):
        def add_to_cart(self, item: str) -> None:
            self.setdefault("cart", []).append(item)

    class CartInterface(RedisSessionInterface):
        session_class = CartSession

    class CartSessions(RedisSessions):
        interface_class = CartInterface

    app = Flask(__name__)
    app.config["SCS_REDIS"] = redis_client
    CartSessions(app)

    @app.get("/add/<item>")
    def add(item: str) -> str:
        assert isinstance(session, CartSession)
        session.add_to_cart(item)
        return ",".join(session["cart"])

    client = app.test_client()
    assert client.get("/add/apple").text == "apple"
    assert client.get("/add/pear").text == "apple,pear"
    with client.session_transaction() as sess:
        assert type(sess) is CartSession


# Flask's ``modified``: set by every change through the dict, and by hand.


@view("/mark-modified")
def mark_modified(session: Session, args: Mapping[str, str], store: RedisStore) -> str:
    session.modified = True
    return "ok"


Use = Callable[[Session], object]

#: Every way to change the values, as Flask's CallbackDict counts them.
CHANGES: dict[str, Use] = {
    "assign": lambda sess: sess.__setitem__("n", 2),
    "assign-an-equal-value": lambda sess: sess.__setitem__("n", 1),
    "delete": lambda sess: sess.__delitem__("n"),
    "pop": lambda sess: sess.pop("n"),
    "pop-with-a-default": lambda sess: sess.pop("n", None),
    "popitem": lambda sess: sess.popitem(),
    "update": lambda sess: sess.update(m=2),
    "update-with-nothing": lambda sess: sess.update(),
    "or-assign": lambda sess: operator.ior(sess, {"m": 2}),
    "setdefault-of-a-new-key": lambda sess: sess.setdefault("m", 2),
    "clear": lambda sess: sess.clear(),
    "permanent": lambda sess: setattr(sess, "permanent", True),
}

#: Reads, and the calls that change nothing in Flask's eyes either.
READS: dict[str, Use] = {
    "getitem": lambda sess: sess["n"],
    "get": lambda sess: sess.get("n"),
    "contains": lambda sess: "n" in sess,
    "iter": lambda sess: list(sess),
    "len": len,
    "keys-values-items": lambda sess: (sess.keys(), sess.values(), sess.items()),
    "copy": lambda sess: sess.copy(),
    "or": lambda sess: sess | {"m": 2},
    "equals": lambda sess: sess == {"n": 1},
    "permanent-read": lambda sess: sess.permanent,
    "setdefault-of-an-existing-key": lambda sess: sess.setdefault("n", 5),
    "pop-of-a-missing-key-with-a-default": lambda sess: sess.pop("absent", None),
    # Seen only at the save, by comparing the encoded values.
    "nested-change": lambda sess: sess["cart"].append("apple"),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_each_change_through_the_dict_sets_modified(flask_client: FlaskClient, change: Use) -> None:
    flask_client.get("/incr")
    with flask_client.session_transaction() as sess:
        assert isinstance(sess, Session)
        assert sess["n"] == 1
        assert not sess.modified
        change(sess)
        assert sess.modified


@pytest.mark.parametrize("read", READS.values(), ids=READS.keys())
def test_reads_leave_modified_unset(flask_client: FlaskClient, read: Use) -> None:
    flask_client.get("/incr")
    flask_client.get("/cart")
    with flask_client.session_transaction() as sess:
        assert isinstance(sess, Session)
        read(sess)
        assert not sess.modified


def test_flash_sets_modified_after_it_was_reset(app: Flask) -> None:
    """Flask's ``test_flashes``: ``flash`` assigns the list it appended to."""
    with app.test_request_context():
        assert not session.modified
        flash("Zap")
        session.modified = False
        flash("Zip")
        assert session.modified
        assert list(get_flashed_messages()) == ["Zap", "Zip"]


def test_an_unchanged_value_resends_the_cookie_with_the_current_samesite(app: Flask) -> None:
    """Flask's ``test_session_using_samesite_attribute``."""

    @app.get("/samesite")
    def assign() -> str:
        session["testing"] = 42
        return "Hello World"

    client = app.test_client()
    app.config.update(SESSION_COOKIE_SAMESITE="invalid")
    with pytest.raises(ValueError, match="SameSite"):
        client.get("/samesite")
    app.config.update(SESSION_COOKIE_SAMESITE=None)
    assert "samesite" not in client.get("/samesite").headers["set-cookie"].lower()
    app.config.update(SESSION_COOKIE_SAMESITE="Strict")
    assert "samesite=strict" in client.get("/samesite").headers["set-cookie"].lower()
    app.config.update(SESSION_COOKIE_SAMESITE="Lax")
    assert "samesite=lax" in client.get("/samesite").headers["set-cookie"].lower()


def test_modified_set_by_hand_sends_the_cookie_without_a_write(
    client: Client, count: Count
) -> None:
    with count() as counted:
        response = client.get("/mark-modified")
    assert set_cookie_headers(response) == []  # a new session that stays empty gets none
    assert counted.by_command == {}
    client.get("/incr")
    token = cookie_token(client)
    with count() as counted:
        response = client.get("/mark-modified")
    (header,) = set_cookie_headers(response)
    assert header.startswith(f"session={token};")
    assert counted.by_command == {"evalsha": 1}  # read to check the token it re-sends


def test_assigning_an_equal_value_sends_the_cookie_without_a_write(
    client: Client, count: Count
) -> None:
    client.get("/incr")
    with count() as counted:
        response = client.get("/rewrite")
    assert len(set_cookie_headers(response)) == 1
    assert counted.by_command == {"evalsha": 1}


def test_a_nested_change_is_written_and_sends_the_cookie(
    client: Client, count: Count, redis_client: redis.Redis
) -> None:
    client.get("/cart")
    with count() as counted:
        response = client.get("/append", query_string={"item": "apple"})
    assert stored_values(redis_client)["cart"] == ["apple"]
    assert counted.in_scripts.get("set") == 1
    assert len(set_cookie_headers(response)) == 1
