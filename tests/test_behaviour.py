"""The behaviour the README promises, run over the Flask and the WSGI adapter alike.

Sections follow the README: "The Session API", "How it works" (token and key,
record, expiry, caching, refresh) and "What can be stored".
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import msgpack
import pytest
import redis
from werkzeug.test import Client

from flask_scs_redis import Session, SessionTooLargeError, UnsupportedValueError
from flask_scs_redis.record import unpack_record
from flask_scs_redis.tokens import is_well_formed, new_token

from harness import (
    Count,
    MakeClient,
    cookie_token,
    edit_record,
    set_cookie_headers,
    stored_keys,
    stored_values,
)

# Tokens (README: How it works)


def test_the_cookie_carries_a_fresh_well_formed_token(client: Client) -> None:
    client.get("/incr")
    token = cookie_token(client)
    assert token is not None
    assert is_well_formed(token)


def test_the_token_is_only_in_the_cookie_and_the_key_is_its_hash(
    client: Client, redis_client: redis.Redis
) -> None:
    client.get("/incr")
    token = cookie_token(client)
    assert token is not None
    (key,) = stored_keys(redis_client)
    assert token.encode() not in key
    assert token.encode() not in redis_client.get(key)  # type: ignore[operator]


def test_an_unknown_well_formed_token_is_never_adopted(
    client: Client, redis_client: redis.Redis
) -> None:
    planted = new_token()
    client.set_cookie("session", planted)
    assert client.get("/read").text == "None"
    client.get("/incr")
    issued = cookie_token(client)
    assert issued is not None
    assert issued != planted
    assert len(stored_keys(redis_client)) == 1


def test_a_malformed_cookie_starts_an_empty_session(client: Client, count: Count) -> None:
    client.set_cookie("session", "x" * 4000)
    with count() as counted:
        assert client.get("/read").text == "None"
    assert counted.total == 0
    assert client.get("/incr").text == "1"
    assert is_well_formed(cookie_token(client))


# The record and its expiry (README: How it works)


def test_the_record_carries_the_deadline_and_its_ttl_is_set_with_the_write(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = make_client(lifetime=3600)
    before = time.time()
    client.get("/incr")
    (key,) = stored_keys(redis_client)
    record = unpack_record(redis_client.get(key))  # type: ignore[arg-type]
    assert before + 3600 - 0.001 <= record.deadline_ms / 1000 <= time.time() + 3600
    assert redis_client.pexpiretime(key) == record.deadline_ms


def test_the_ttl_is_the_idle_expiry_when_that_comes_first(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = make_client(lifetime=3600, idle_timeout=60)
    before = time.time()
    client.get("/incr")
    (key,) = stored_keys(redis_client)
    expiry = redis_client.pexpiretime(key) / 1000
    assert before + 60 - 0.001 <= expiry <= time.time() + 60


def test_a_record_past_its_deadline_is_treated_as_absent(
    client: Client, redis_client: redis.Redis
) -> None:
    client.get("/incr")
    (key,) = stored_keys(redis_client)
    # The deadline has passed, but the key has not expired.
    edit_record(redis_client, key, deadline_ms=int(time.time() * 1000) - 1)
    assert client.get("/read").text == "None"


def test_the_session_exposes_its_deadline_as_aware_utc(make_client: MakeClient) -> None:
    client = make_client(lifetime=timedelta(hours=2))
    client.get("/incr")
    deadline = datetime.fromisoformat(client.get("/deadline").text)
    assert deadline.tzinfo == timezone.utc
    expected = datetime.now(timezone.utc) + timedelta(hours=2)
    assert abs(deadline - expected) < timedelta(seconds=5)


# Values (README: What can be stored), through a real request


def test_an_unsupported_value_fails_the_save_and_keeps_the_old_record(
    client: Client, redis_client: redis.Redis
) -> None:
    client.get("/incr")
    before = stored_values(redis_client)
    with pytest.raises(UnsupportedValueError, match=r"builtins\.object at session\['obj'\]"):
        client.get("/unsupported")
    assert stored_values(redis_client) == before


# Lazy loading (README: The Session API)


def test_an_untouched_session_is_never_loaded(client: Client, count: Count) -> None:
    client.get("/incr")
    with count() as counted:
        response = client.get("/none")
    assert counted.total == 0
    assert set_cookie_headers(response) == []
    assert "Vary" not in response.headers


# Change detection and refresh (README: How it works)


def test_a_nested_change_is_saved_without_setting_modified(
    client: Client, redis_client: redis.Redis
) -> None:
    client.get("/cart")
    client.get("/append", query_string={"item": "apple"})
    client.get("/append", query_string={"item": "pear"})
    assert stored_values(redis_client)["cart"] == ["apple", "pear"]


def test_a_permanent_session_refreshes_its_cookie_without_rewriting_the_record(
    make_client: MakeClient, count: Count
) -> None:
    client = make_client(idle_timeout=60)
    client.get("/permanent")
    with count() as counted:
        response = client.get("/read")
    assert counted.by_command == {"evalsha": 1}
    assert len(set_cookie_headers(response)) == 1


def test_without_refresh_each_request_a_permanent_read_sends_no_cookie(
    make_client: MakeClient,
) -> None:
    client = make_client(refresh_each_request=False)
    client.get("/permanent")
    assert set_cookie_headers(client.get("/read")) == []
    assert len(set_cookie_headers(client.get("/incr"))) == 1  # a change still sends it


def test_a_non_permanent_session_read_sends_no_cookie(client: Client) -> None:
    client.get("/incr")
    response = client.get("/read")
    assert set_cookie_headers(response) == []
    assert "Cookie" in response.vary


# Empty sessions (README: How it works)


def test_an_empty_session_is_never_stored(client: Client, redis_client: redis.Redis) -> None:
    response = client.get("/read")
    assert stored_keys(redis_client) == []
    assert set_cookie_headers(response) == []


def test_a_session_emptied_by_the_request_ends_with_its_cookie(
    client: Client, redis_client: redis.Redis
) -> None:
    client.get("/incr")
    response = client.get("/clear")
    # The record stays a minute, empty, for requests in flight (see test_concurrency).
    (key,) = stored_keys(redis_client)
    assert stored_values(redis_client) == {}
    assert 0 < redis_client.pttl(key) <= 60_000
    (header,) = set_cookie_headers(response)
    assert header.startswith("session=;")
    assert "Max-Age=0" in header
    assert cookie_token(client) is None


# renew() and destroy() (README: The Session API)


def test_renew_moves_the_values_to_a_new_token_and_deletes_the_old_record(
    client: Client, redis_client: redis.Redis
) -> None:
    client.get("/incr")
    old_token = cookie_token(client)
    old_keys = stored_keys(redis_client)
    client.get("/login", query_string={"user": "alice"})
    new_token_value = cookie_token(client)
    assert new_token_value not in (None, old_token)
    assert stored_keys(redis_client) != old_keys
    assert len(stored_keys(redis_client)) == 1
    assert stored_values(redis_client) == {"n": 1, "user": "alice"}
    client.set_cookie("session", old_token)  # type: ignore[arg-type]
    assert client.get("/read").text == "None"  # the old token is dead


def test_renew_restarts_the_absolute_lifetime(make_client: MakeClient) -> None:
    client = make_client(lifetime=60)
    client.get("/incr")
    first = datetime.fromisoformat(client.get("/deadline").text)
    time.sleep(0.05)
    client.get("/renew")
    assert datetime.fromisoformat(client.get("/deadline").text) > first


def test_destroy_deletes_the_record_clears_values_and_drops_the_cookie(
    client: Client, redis_client: redis.Redis
) -> None:
    client.get("/incr")
    old_token = cookie_token(client)
    response = client.get("/logout")
    assert stored_keys(redis_client) == []
    (header,) = set_cookie_headers(response)
    assert "Max-Age=0" in header
    client.set_cookie("session", old_token)  # type: ignore[arg-type]
    assert client.get("/read").text == "None"


def test_a_write_after_destroy_starts_a_new_session_with_a_new_token(
    client: Client, redis_client: redis.Redis
) -> None:
    client.get("/incr")
    old_token = cookie_token(client)
    client.get("/logout-then-write")
    assert cookie_token(client) not in (None, old_token)
    assert stored_values(redis_client) == {"after": True}


def test_destroy_deletes_the_record_at_once_not_at_the_end_of_the_request(
    client: Client,
) -> None:
    client.get("/incr")
    assert client.get("/destroy-and-look").text == "None"


def test_token_is_none_until_first_saved(client: Client) -> None:
    assert client.get("/token").text == "None"
    client.get("/incr")
    assert client.get("/token").text == repr(cookie_token(client))


# Cookies (README: Configuration, Any WSGI app)


def test_the_cookie_attributes_apply_on_set_and_on_delete(make_client: MakeClient) -> None:
    client = make_client(
        cookie_name="sid",
        cookie_domain="example.test",
        cookie_path="/app",
        cookie_secure=True,
        cookie_httponly=True,
        cookie_samesite="Strict",
        cookie_partitioned=True,
    )
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


def test_a_persistent_cookie_expires_at_the_deadline(make_client: MakeClient) -> None:
    client = make_client(lifetime=3600)
    header = set_cookie_headers(client.get("/permanent"))[0]
    assert "Max-Age=3599" in header or "Max-Age=3600" in header
    assert "Expires=" in header


def test_a_refreshed_persistent_cookie_follows_the_sliding_window(
    make_client: MakeClient,
) -> None:
    """Each read slides the record and re-sends the cookie, so both move together."""
    client = make_client(lifetime=3600, idle_timeout=120)
    header = set_cookie_headers(client.get("/permanent"))[0]
    assert "Max-Age=119" in header or "Max-Age=120" in header
    (again,) = set_cookie_headers(client.get("/read"))
    assert "Max-Age=119" in again or "Max-Age=120" in again


def test_a_cookie_sent_only_on_change_expires_at_the_deadline(make_client: MakeClient) -> None:
    """Reads slide the record without sending it: it must outlast the window."""
    client = make_client(lifetime=3600, idle_timeout=120, refresh_each_request=False)
    header = set_cookie_headers(client.get("/permanent"))[0]
    assert "Max-Age=3599" in header or "Max-Age=3600" in header


def test_the_cookie_never_expires_before_the_record_it_names(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    """Without refresh, reads slide the record's expiry and send no cookie."""
    client = make_client(lifetime=3600, idle_timeout=2, refresh_each_request=False)
    response = client.get("/permanent")
    (header,) = set_cookie_headers(response)
    cookie_expires = time.time() + int(header.split("Max-Age=")[1].split(";")[0])
    (key,) = stored_keys(redis_client)
    for _ in range(3):
        time.sleep(1)
        assert set_cookie_headers(client.get("/read")) == []  # no cookie resent
        assert time.time() + redis_client.pttl(key) / 1000 <= cookie_expires + 1


def test_a_non_permanent_session_gets_a_browser_session_cookie(client: Client) -> None:
    header = set_cookie_headers(client.get("/incr"))[0]
    assert "Expires=" not in header
    assert "Max-Age" not in header


def test_vary_cookie_is_sent_when_the_session_was_accessed(client: Client) -> None:
    client.get("/incr")
    assert "Cookie" in client.get("/read").vary
    assert "Cookie" not in client.get("/none").vary


# Size limit (README: Errors)


def test_an_oversize_session_is_refused_and_the_old_record_stays(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = make_client(max_size=200)
    client.get("/incr")
    before = stored_values(redis_client)
    with pytest.raises(SessionTooLargeError, match=r"over the limit of 200 bytes") as raised:
        client.get("/huge", query_string={"size": "500"})
    assert raised.value.limit == 200
    assert raised.value.size > 500
    assert stored_values(redis_client) == before


# Corrupt records (README: How it works)


@pytest.mark.parametrize(
    "record",
    [
        b"not msgpack \xc1",
        msgpack.packb({"not": "a record"}),
        msgpack.packb([99, 1, 4_000_000_000_000, 0, b"\x80"]),
        msgpack.packb([1, 1, 4_000_000_000_000, 0, b"\x81\xa1a\xd4\x63\x00"]),
        msgpack.packb([1, 1, 4_000_000_000_000, 0, msgpack.packb({"a": 1})])[:-2],
    ],
    ids=["not-msgpack", "not-a-record", "unknown-version", "unknown-extension", "truncated"],
)
def test_a_corrupt_record_is_no_session_is_deleted_and_the_log_hides_the_token(
    client: Client,
    redis_client: redis.Redis,
    record: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client.get("/incr")
    token = cookie_token(client)
    (key,) = stored_keys(redis_client)
    redis_client.set(key, record, keepttl=True)
    assert client.get("/read").text == "None"
    assert redis_client.exists(key) == 0  # the unreadable record is deleted
    assert "deleted an unreadable session record" in caplog.text
    assert token is not None
    assert token not in caplog.text
    assert key.decode().removeprefix("scs:session:") not in caplog.text


# Extension points (README: The Session API)


class CartSession(Session):
    """A session class of the app's own, with a helper its views use."""

    def add_to_cart(self, item: str) -> None:
        self.setdefault("cart", []).append(item)


def test_the_session_class_named_by_the_adapter_is_what_views_get(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = make_client(session_class=CartSession)
    assert client.get("/kind").text == "CartSession"
    client.get("/incr")
    assert client.get("/kind").text == "CartSession"  # a stored session too
    assert make_client().get("/kind").text == "Session"
