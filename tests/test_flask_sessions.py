"""The Flask adapter's behaviour, end to end through the test client on real Redis."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import msgpack
import pytest
import redis
from flask import Flask, Response, session, stream_with_context
from flask.testing import FlaskClient
from markupsafe import Markup

from flask_scs_redis import (
    RedisSessionInterface,
    RedisSessions,
    Session,
    SessionTooLargeError,
    UnsupportedValueError,
)
from flask_scs_redis.codec import decode
from flask_scs_redis.record import unpack_record
from flask_scs_redis.testing import CommandCounter
from flask_scs_redis.tokens import is_well_formed, new_token

MakeApp = Callable[..., Flask]
Count = Callable[[], CommandCounter]


def cookie_token(client: FlaskClient) -> str | None:
    cookie = client.get_cookie("session")
    return None if cookie is None else cookie.value


def stored_keys(redis_client: redis.Redis) -> list[bytes]:
    return sorted(redis_client.scan_iter(match="scs:session:*"))


def stored_values(redis_client: redis.Redis) -> dict[str, Any]:
    (key,) = stored_keys(redis_client)
    record = redis_client.get(key)
    assert record is not None
    return decode(unpack_record(record).values)


def set_cookie_headers(response: Any) -> list[str]:
    return list(response.headers.getlist("Set-Cookie"))


# 1. Tokens


def test_the_cookie_carries_a_fresh_well_formed_token(client: FlaskClient) -> None:
    client.get("/incr")
    token = cookie_token(client)
    assert token is not None and is_well_formed(token)


def test_the_token_is_only_in_the_cookie_and_the_key_is_its_hash(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    client.get("/incr")
    token = cookie_token(client)
    assert token is not None
    (key,) = stored_keys(redis_client)
    assert token.encode() not in key
    assert token.encode() not in redis_client.get(key)  # type: ignore[operator]


def test_an_unknown_well_formed_token_is_never_adopted(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    planted = new_token()
    client.set_cookie("session", planted)
    assert client.get("/read").data == b"None"
    client.get("/incr")
    issued = cookie_token(client)
    assert issued is not None and issued != planted
    assert len(stored_keys(redis_client)) == 1


def test_a_malformed_cookie_starts_an_empty_session(client: FlaskClient) -> None:
    client.set_cookie("session", "x" * 4000)
    assert client.get("/read").data == b"None"
    assert client.get("/incr").data == b"1"
    assert is_well_formed(cookie_token(client))


# 2. Record


def test_the_record_carries_the_deadline_and_its_ttl_is_set_with_the_write(
    make_app: MakeApp, redis_client: redis.Redis
) -> None:
    client = make_app(SCS_LIFETIME=3600).test_client()
    before = time.time()
    client.get("/incr")
    (key,) = stored_keys(redis_client)
    record = unpack_record(redis_client.get(key))  # type: ignore[arg-type]
    assert before + 3600 - 0.001 <= record.deadline_ms / 1000 <= time.time() + 3600
    assert redis_client.pexpiretime(key) == record.deadline_ms


def test_the_ttl_is_the_idle_expiry_when_that_comes_first(
    make_app: MakeApp, redis_client: redis.Redis
) -> None:
    client = make_app(SCS_LIFETIME=3600, SCS_IDLE_TIMEOUT=60).test_client()
    before = time.time()
    client.get("/incr")
    (key,) = stored_keys(redis_client)
    expiry = redis_client.pexpiretime(key) / 1000
    assert before + 60 - 0.001 <= expiry <= time.time() + 60


def test_a_record_past_its_deadline_is_treated_as_absent(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    client.get("/incr")
    (key,) = stored_keys(redis_client)
    fields = list(msgpack.unpackb(redis_client.get(key)))
    fields[1] = int(time.time() * 1000) - 1  # the deadline has passed, the key has not expired
    redis_client.set(key, msgpack.packb(fields), keepttl=True)
    assert client.get("/read").data == b"None"


def test_the_session_exposes_its_deadline_as_aware_utc(make_app: MakeApp) -> None:
    client = make_app(SCS_LIFETIME=timedelta(hours=2)).test_client()
    client.get("/incr")
    deadline = datetime.fromisoformat(client.get("/deadline").text)
    assert deadline.tzinfo == timezone.utc
    expected = datetime.now(timezone.utc) + timedelta(hours=2)
    assert abs(deadline - expected) < timedelta(seconds=5)


# 3. Codec, through a real request


def test_values_of_every_type_survive_a_round_trip_through_redis(
    app: Flask, client: FlaskClient
) -> None:
    from test_codec import SAMPLES, same_types

    with client.session_transaction() as sess:
        sess.update(SAMPLES)

    @app.get("/check")
    def check() -> str:
        return str(same_types(dict(session), SAMPLES))

    assert client.get("/check").text == "True"


def test_an_unsupported_value_fails_the_save_and_keeps_the_old_record(
    app: Flask, client: FlaskClient, redis_client: redis.Redis
) -> None:
    @app.get("/bad")
    def bad() -> str:
        session["n"] = 99
        session["obj"] = object()
        return "ok"

    client.get("/incr")
    before = stored_values(redis_client)

    with pytest.raises(UnsupportedValueError, match=r"builtins\.object at session\['obj'\]"):
        client.get("/bad")
    assert stored_values(redis_client) == before


# 4. Lazy


def test_an_untouched_session_is_never_loaded(client: FlaskClient, count: Count) -> None:
    client.get("/incr")
    with count() as counted:
        response = client.get("/none")
    assert counted.total == 0
    assert set_cookie_headers(response) == []
    assert "Cookie" not in response.vary


# 6. Change detection


def test_a_nested_change_is_saved_without_setting_modified(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    client.get("/cart")
    client.get("/append/apple")
    client.get("/append/pear")
    assert stored_values(redis_client)["cart"] == ["apple", "pear"]


def test_a_permanent_session_refreshes_its_cookie_without_rewriting_the_record(
    make_app: MakeApp, count: Count
) -> None:
    client = make_app(SESSION_REFRESH_EACH_REQUEST=True, SCS_IDLE_TIMEOUT=60).test_client()
    client.get("/permanent")
    with count() as counted:
        response = client.get("/read")
    assert counted.by_command == {"getex": 1}
    assert len(set_cookie_headers(response)) == 1


def test_without_refresh_each_request_a_read_sends_no_cookie(make_app: MakeApp) -> None:
    client = make_app(SESSION_REFRESH_EACH_REQUEST=False).test_client()
    client.get("/permanent")
    assert set_cookie_headers(client.get("/read")) == []


def test_a_non_permanent_session_read_sends_no_cookie(client: FlaskClient) -> None:
    client.get("/incr")
    response = client.get("/read")
    assert set_cookie_headers(response) == []
    assert "Cookie" in response.vary


# 7. Empty sessions


def test_an_empty_session_is_never_stored(client: FlaskClient, redis_client: redis.Redis) -> None:
    response = client.get("/read")
    assert stored_keys(redis_client) == []
    assert set_cookie_headers(response) == []


def test_a_session_emptied_by_the_request_is_deleted_with_its_cookie(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    client.get("/incr")
    response = client.get("/clear")
    assert stored_keys(redis_client) == []
    (header,) = set_cookie_headers(response)
    assert header.startswith("session=;") and "Max-Age=0" in header
    assert cookie_token(client) is None


# renew() and destroy()


def test_renew_moves_the_values_to_a_new_token_and_deletes_the_old_record(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    client.get("/incr")
    old_token = cookie_token(client)
    old_keys = stored_keys(redis_client)
    client.get("/login/alice")
    new_token_value = cookie_token(client)
    assert new_token_value not in (None, old_token)
    assert stored_keys(redis_client) != old_keys and len(stored_keys(redis_client)) == 1
    assert stored_values(redis_client) == {"n": 1, "user": "alice"}
    # The old token is dead.
    client.set_cookie("session", old_token)  # type: ignore[arg-type]
    assert client.get("/read").data == b"None"


def test_renew_restarts_the_absolute_lifetime(make_app: MakeApp) -> None:
    client = make_app(SCS_LIFETIME=60).test_client()
    client.get("/incr")
    first = datetime.fromisoformat(client.get("/deadline").text)
    time.sleep(0.05)
    client.get("/renew")
    assert datetime.fromisoformat(client.get("/deadline").text) > first


def test_destroy_deletes_the_record_clears_values_and_drops_the_cookie(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    client.get("/incr")
    old_token = cookie_token(client)
    response = client.get("/logout")
    assert stored_keys(redis_client) == []
    (header,) = set_cookie_headers(response)
    assert "Max-Age=0" in header
    client.set_cookie("session", old_token)  # type: ignore[arg-type]
    assert client.get("/read").data == b"None"


def test_a_write_after_destroy_starts_a_new_session_with_a_new_token(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    client.get("/incr")
    old_token = cookie_token(client)
    client.get("/logout-then-write")
    assert cookie_token(client) not in (None, old_token)
    assert stored_values(redis_client) == {"after": True}


def test_destroy_deletes_the_record_at_once_not_at_the_end_of_the_request(
    app: Flask, client: FlaskClient, redis_client: redis.Redis
) -> None:
    @app.get("/destroy-and-look")
    def destroy_and_look() -> str:
        session.destroy()
        return str(len(stored_keys(redis_client)))

    client.get("/incr")

    assert client.get("/destroy-and-look").text == "0"


def test_token_is_none_until_first_saved(client: FlaskClient) -> None:
    assert client.get("/token").text == "None"
    client.get("/incr")
    assert client.get("/token").text == repr(cookie_token(client))


# 8. Cookies


def test_flasks_cookie_attributes_apply_on_set_and_on_delete(make_app: MakeApp) -> None:
    client = make_app(
        SESSION_COOKIE_NAME="sid",
        SESSION_COOKIE_DOMAIN="example.test",
        SESSION_COOKIE_PATH="/app",
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_PARTITIONED=True,
    ).test_client()
    base = "https://example.test"
    set_header = set_cookie_headers(client.get("/incr", base_url=base))[0]
    delete_header = set_cookie_headers(client.get("/logout", base_url=base))[0]
    for header in (set_header, delete_header):
        assert header.startswith("sid=")
        for attribute in (
            "Domain=example.test",
            "Path=/app",
            "Secure",
            "HttpOnly",
            "SameSite=Strict",
            "Partitioned",
        ):
            assert attribute in header, (attribute, header)


def test_the_cookie_path_falls_back_to_application_root(make_app: MakeApp) -> None:
    client = make_app(APPLICATION_ROOT="/root").test_client()
    assert "Path=/root" in set_cookie_headers(client.get("/incr"))[0]


def test_a_persistent_cookie_expires_at_the_deadline(make_app: MakeApp) -> None:
    client = make_app(SCS_LIFETIME=3600).test_client()
    header = set_cookie_headers(client.get("/permanent"))[0]
    assert "Max-Age=3599" in header or "Max-Age=3600" in header
    assert "Expires=" in header


def test_a_persistent_cookie_expires_at_the_idle_expiry_when_sooner(make_app: MakeApp) -> None:
    client = make_app(SCS_LIFETIME=3600, SCS_IDLE_TIMEOUT=120).test_client()
    header = set_cookie_headers(client.get("/permanent"))[0]
    assert "Max-Age=119" in header or "Max-Age=120" in header


def test_a_non_permanent_session_gets_a_browser_session_cookie(client: FlaskClient) -> None:
    header = set_cookie_headers(client.get("/incr"))[0]
    assert "Expires=" not in header and "Max-Age" not in header


def test_vary_cookie_is_sent_when_the_session_was_accessed(client: FlaskClient) -> None:
    client.get("/incr")
    assert "Cookie" in client.get("/read").vary
    assert "Cookie" not in client.get("/none").vary


def test_set_cookie_follows_a_subclass_should_set_cookie(
    redis_client: redis.Redis,
) -> None:
    from apps import build_app

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

        app = build_app(SCS_REDIS=redis_client)
        CustomSessions(app)
        assert type(app.session_interface) is interface
        assert check(set_cookie_headers(app.test_client().get("/incr")))


def test_flask_cookie_settings_are_read_at_request_time(app: Flask) -> None:
    app.config["SESSION_COOKIE_NAME"] = "changed_after_init"
    assert set_cookie_headers(app.test_client().get("/incr"))[0].startswith("changed_after_init=")


def test_the_session_is_a_dict_and_a_session_mixin(app: Flask) -> None:
    from flask.sessions import SessionMixin

    with app.test_request_context():
        assert isinstance(session._get_current_object(), dict)  # type: ignore[attr-defined]
        assert isinstance(session._get_current_object(), SessionMixin)  # type: ignore[attr-defined]


# 9. The Flask contract


def test_session_transaction_reads_and_writes_the_real_session(client: FlaskClient) -> None:
    with client.session_transaction() as sess:
        assert isinstance(sess, Session)
        sess["n"] = 41
    assert client.get("/incr").data == b"42"
    with client.session_transaction() as sess:
        assert sess["n"] == 42


def test_changes_made_in_after_request_are_saved(app: Flask, client: FlaskClient) -> None:
    @app.after_request
    def mark(response: Response) -> Response:
        session["seen_by_after_request"] = True
        return response

    client.get("/none")
    with client.session_transaction() as sess:
        assert sess["seen_by_after_request"] is True


def test_the_session_works_inside_stream_with_context(app: Flask, client: FlaskClient) -> None:
    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Any:
            yield "n="
            yield repr(session.get("n"))

        return Response(stream_with_context(chunks()))

    client.get("/incr")
    assert client.get("/stream").text == "n=1"


def test_a_session_written_before_an_http_error_is_saved(client: FlaskClient) -> None:
    assert client.get("/abort-after-write").status_code == 404
    with client.session_transaction() as sess:
        assert sess["before_abort"] is True


def test_a_session_written_before_an_unhandled_error_is_saved(make_app: MakeApp) -> None:
    app = make_app(TESTING=False)
    client = app.test_client()
    assert client.get("/fail-after-write").status_code == 500
    with client.session_transaction() as sess:
        assert sess["before_failure"] is True


def test_flash_keeps_markup_and_categories(client: FlaskClient) -> None:
    client.get("/flash", query_string={"message": "plain", "category": "info"})
    with client.session_transaction() as sess:
        sess["_flashes"].append(("error", Markup("<b>bold</b>")))
    flashes = client.get("/flashes").text
    assert flashes == repr([("info", "plain"), ("error", Markup("<b>bold</b>"))])
    assert client.get("/flashes").text == "[]"


def test_the_extension_registers_itself(app: Flask) -> None:
    extension = app.extensions["scs_redis"]
    assert isinstance(extension, RedisSessions)
    assert isinstance(app.session_interface, RedisSessionInterface)
    assert extension.store(app) is app.session_interface.engine.store


# Size limit


def test_an_oversize_session_is_refused_and_the_old_record_stays(
    make_app: MakeApp, redis_client: redis.Redis
) -> None:
    app = make_app(SCS_MAX_SIZE=200)
    client = app.test_client()

    @app.get("/huge")
    def huge() -> str:
        session["blob"] = "x" * 500
        return "ok"

    client.get("/incr")
    before = stored_values(redis_client)

    with pytest.raises(SessionTooLargeError, match=r"over the limit of 200 bytes") as raised:
        client.get("/huge")
    assert raised.value.limit == 200 and raised.value.size > 500
    assert stored_values(redis_client) == before


# Corrupt records


@pytest.mark.parametrize(
    "record",
    [
        b"not msgpack \xc1",
        msgpack.packb({"not": "a record"}),
        msgpack.packb([99, 0, 0, b""]),
        msgpack.packb([1, 4_000_000_000_000, 0, b"\xd4\x63\x00"]),
        msgpack.packb([1, 4_000_000_000_000, 0, msgpack.packb({"a": 1})])[:-2],
    ],
    ids=["not-msgpack", "not-a-record", "unknown-version", "unknown-extension", "truncated"],
)
def test_a_corrupt_record_is_no_session_and_the_log_hides_the_token(
    client: FlaskClient,
    redis_client: redis.Redis,
    record: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client.get("/incr")
    token = cookie_token(client)
    (key,) = stored_keys(redis_client)
    redis_client.set(key, record, keepttl=True)
    assert client.get("/read").data == b"None"
    assert "unreadable session record" in caplog.text
    assert token is not None and token not in caplog.text
