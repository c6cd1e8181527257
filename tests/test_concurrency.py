"""Overlapping requests of one session, interleaved on purpose with threads and gates.

Request A runs its view, then waits at a gate before its session is saved;
request B runs from start to finish meanwhile; then A is let go. That is the
interleaving that loses data in other session stores.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from werkzeug.test import Client, TestResponse

from harness import stored_sessions
from views import GATES, Gate


@pytest.fixture
def two_tabs(make_application: Callable[..., Any]) -> Iterator[tuple[Client, Client]]:
    """Two clients of one app that carry the same session cookie, as two browser tabs."""
    application = make_application()

    def client() -> Client:
        return application.test_client() if isinstance(application, Flask) else Client(application)

    first, second = client(), client()
    first.get("/set", query_string={"key": "n", "value": "1"})
    cookie = first.get_cookie("session")
    assert cookie is not None
    second.set_cookie("session", cookie.value)
    yield first, second
    GATES.clear()


def overlap(
    held: tuple[Client, str, dict[str, str]], other: tuple[Client, str, dict[str, str]]
) -> tuple[TestResponse, TestResponse]:
    """Run ``held`` up to its save, run ``other`` whole, then let ``held`` save."""
    gate = GATES["held"] = Gate()
    responses: dict[str, TestResponse] = {}
    held_client, held_path, held_query = held

    def run_held() -> None:
        responses["held"] = held_client.get(held_path, query_string={**held_query, "hold": "held"})

    thread = threading.Thread(target=run_held)
    thread.start()
    assert gate.arrived.wait(10), "the held request never reached its gate"
    other_client, other_path, other_query = other
    responses["other"] = other_client.get(other_path, query_string=other_query)
    gate.release.set()
    thread.join(10)
    return responses["held"], responses["other"]


def test_changes_to_different_keys_both_land(
    two_tabs: tuple[Client, Client], redis_client: redis.Redis
) -> None:
    first, second = two_tabs
    overlap(
        (first, "/set", {"key": "a", "value": "from A"}),
        (second, "/set", {"key": "b", "value": "from B"}),
    )
    assert stored_sessions(redis_client) == [{"n": "1", "b": "from B", "a": "from A"}]


def test_changes_to_the_same_key_end_with_the_later_save(
    two_tabs: tuple[Client, Client], redis_client: redis.Redis
) -> None:
    first, second = two_tabs
    overlap(
        (first, "/set", {"key": "k", "value": "saved last"}),
        (second, "/set", {"key": "k", "value": "saved first"}),
    )
    assert stored_sessions(redis_client) == [{"n": "1", "k": "saved last"}]


def test_a_deletion_and_a_write_of_another_key_both_land(
    two_tabs: tuple[Client, Client], redis_client: redis.Redis
) -> None:
    first, second = two_tabs
    first.get("/set", query_string={"key": "x", "value": "doomed"})
    overlap(
        (first, "/delete", {"key": "x"}),
        (second, "/set", {"key": "y", "value": "kept"}),
    )
    assert stored_sessions(redis_client) == [{"n": "1", "y": "kept"}]


def test_a_write_never_brings_back_a_destroyed_session(
    two_tabs: tuple[Client, Client], redis_client: redis.Redis
) -> None:
    first, second = two_tabs
    held, _ = overlap(
        (first, "/set", {"key": "a", "value": "too late"}),
        (second, "/logout", {}),
    )
    assert held.status_code == 200
    assert held.headers.getlist("Set-Cookie") == []
    assert stored_sessions(redis_client) == []


def test_a_write_never_brings_back_a_renewed_sessions_old_token(
    two_tabs: tuple[Client, Client], redis_client: redis.Redis
) -> None:
    first, second = two_tabs
    old_token = first.get_cookie("session").value  # type: ignore[union-attr]
    held, _ = overlap(
        (first, "/set", {"key": "a", "value": "too late"}),
        (second, "/login", {"user": "alice"}),
    )
    assert held.status_code == 200
    assert held.headers.getlist("Set-Cookie") == []
    assert second.get_cookie("session").value != old_token  # type: ignore[union-attr]
    assert stored_sessions(redis_client) == [{"n": "1", "user": "alice"}]
    assert first.get("/read").text == "None"  # the old token is dead


def test_a_write_that_lands_during_a_renewal_is_carried_to_the_new_token(
    two_tabs: tuple[Client, Client], redis_client: redis.Redis
) -> None:
    first, second = two_tabs
    old_token = first.get_cookie("session").value  # type: ignore[union-attr]
    overlap(
        (first, "/login", {"user": "alice"}),
        (second, "/set", {"key": "cart", "value": "apples"}),
    )
    assert first.get_cookie("session").value != old_token  # type: ignore[union-attr]
    assert stored_sessions(redis_client) == [{"n": "1", "cart": "apples", "user": "alice"}]


def test_an_emptied_session_keeps_what_another_request_added(
    two_tabs: tuple[Client, Client], redis_client: redis.Redis
) -> None:
    first, second = two_tabs
    overlap(
        (first, "/clear", {}),
        (second, "/set", {"key": "late", "value": "kept"}),
    )
    assert stored_sessions(redis_client) == [{"late": "kept"}]
