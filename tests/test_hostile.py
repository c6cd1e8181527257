"""Hostile and broken input: fuzzed cookies, payloads built to hurt, and cache headers."""

from __future__ import annotations

import contextlib
import tracemalloc
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from flask_scs_redis.codec import MAX_EXTENSION_DEPTH, decode
from flask_scs_redis.testing import CommandCounter
from flask_scs_redis.tokens import is_well_formed, new_token

from harness import MakeClient

TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

cookie_names = st.sampled_from(
    ["session", "Session", "SESSION", "session ", " session", "sessio", "sessionx", "scs:session:"]
).map(str.encode)
cookie_values = st.one_of(
    st.text().map(lambda text: text.encode("utf-8", "surrogatepass")),  # unicode and controls
    st.binary(max_size=200),  # any bytes, invalid UTF-8 included
    st.text(alphabet="*?[]\\^!-", max_size=60).map(str.encode),  # glob characters
    st.integers(0, 20_000).map(lambda size: b"A" * size),  # huge values
    st.text(alphabet=TOKEN_ALPHABET, min_size=41, max_size=45).map(str.encode),  # near-tokens
    st.builds(lambda: new_token().encode()),  # real-looking tokens that the store does not know
    st.builds(lambda: b"scs:session:" + new_token().encode()),  # prefix look-alikes
    st.builds(lambda: new_token().encode() + b"*"),
)
# A server hands the application the header's bytes as a latin-1 str.
cookie_headers = st.builds(
    lambda pairs, separator: separator.join(name + b"=" + value for name, value in pairs).decode(
        "latin-1"
    ),
    st.lists(st.tuples(cookie_names, cookie_values), max_size=4),
    st.sampled_from([b"; ", b";", b", ", b" ; "]),
)


def environ_with_cookies(cookie_header: str) -> dict[str, Any]:
    environ = EnvironBuilder(path="/read").get_environ()
    environ["HTTP_COOKIE"] = cookie_header
    return environ


def served_status(application: Any, cookie_header: str) -> str:
    """Call the app as a server would, with a raw Cookie header, and return the status."""
    environ = environ_with_cookies(cookie_header)
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    body = application(environ, start_response)
    try:
        b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()
    return statuses[-1]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cookie_header=cookie_headers)
def test_no_cookie_header_makes_a_request_fail_or_query_redis_for_a_malformed_token(
    make_application: Callable[..., Any], redis_client: redis.Redis, cookie_header: str
) -> None:
    application = make_application()
    with CommandCounter(redis_client) as counted:
        status = served_status(application, cookie_header)
    assert status == "200 OK"
    chosen = Request(environ_with_cookies(cookie_header)).cookies.get("session")
    expected = {"evalsha": 1} if is_well_formed(chosen) else {}
    assert counted.by_command == expected


def test_duplicate_session_cookies_use_the_first_and_never_fail(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = make_client()
    client.get("/incr")
    token = client.get_cookie("session").value  # type: ignore[union-attr]
    application = client.application
    assert served_status(application, f"session={token}; session=junk") == "200 OK"
    assert served_status(application, f"session=junk; session={token}") == "200 OK"


# Cache headers


def test_setting_the_cookie_forbids_shared_caches_to_reuse_it(
    make_client: MakeClient,
) -> None:
    client = make_client()
    assert client.get("/incr").headers["Cache-Control"] == 'no-cache="Set-Cookie"'
    assert client.get("/logout").headers["Cache-Control"] == 'no-cache="Set-Cookie"'
    assert "Cache-Control" not in client.get("/read").headers  # no cookie, no directive
    assert "Cache-Control" not in client.get("/none").headers


# Payloads built to hurt the decoder


def test_deeply_nested_lists_are_refused() -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError means "no session"
        decode(b"\x81\xa1a" + b"\x91" * 100_000 + b"\x00")


def test_deeply_nested_extension_types_are_refused_without_exhausting_the_stack() -> None:
    inner = msgpack.packb(0)
    for _ in range(10_000):
        inner = msgpack.packb([msgpack.ExtType(1, inner)])  # tuples in tuples
    with pytest.raises(ValueError, match="nested more than"):
        decode(msgpack.packb({"a": msgpack.ExtType(1, inner)}))


def test_extension_nesting_up_to_the_limit_round_trips() -> None:
    from flask_scs_redis import UnsupportedValueError
    from flask_scs_redis.codec import encode

    value: Any = 0
    for _ in range(MAX_EXTENSION_DEPTH):
        value = (value,)
    assert decode(encode({"t": value})) == {"t": value}
    with pytest.raises(UnsupportedValueError, match="nested more than"):
        encode({"t": (value,)})


@pytest.mark.parametrize(
    "payload",
    [
        b"\x81\xa1a\xdd\xff\xff\xff\xff",  # an array of 4 billion items
        b"\x81\xa1a\xdf\xff\xff\xff\xff",  # a map of 4 billion pairs
        b"\x81\xa1a\xc6\xff\xff\xff\xff",  # 4 GiB of bytes
        b"\x81\xa1a\xdb\xff\xff\xff\xff",  # a 4 GiB string
        b"\x81\xa1a\xc9\xff\xff\xff\xff\x01",  # a 4 GiB extension
        b"\x81\xa1a\xc7\xff\x0b" + b"9" * 255,  # an integer of 255 digits is fine...
        b"\x81\xa1a\xc9\x00\x01\x00\x00\x0b" + b"9" * 65536,  # ...one of 65536 is refused
    ],
)
def test_huge_declared_lengths_are_refused_without_allocating_them(payload: bytes) -> None:
    tracemalloc.start()
    try:
        with contextlib.suppress(ValueError):
            decode(payload)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
