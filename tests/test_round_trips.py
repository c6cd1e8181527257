"""The round-trip budget, counted as the commands the server ran, for both adapters."""

from __future__ import annotations

import pytest
from werkzeug.test import Client

from harness import Count, MakeClient


def start_session(client: Client) -> None:
    assert client.get("/incr").text == "1"


def test_a_request_that_never_touches_the_session_sends_nothing(
    client: Client, count: Count
) -> None:
    start_session(client)
    with count() as counted:
        response = client.get("/none")
    assert counted.by_command == {}
    assert "Set-Cookie" not in response.headers
    assert "Vary" not in response.headers


def test_creating_a_session_costs_one_command(client: Client, count: Count) -> None:
    with count() as counted:
        start_session(client)
    assert counted.by_command == {"set": 1}


def test_reading_costs_one_script_that_slides_the_window(client: Client, count: Count) -> None:
    start_session(client)
    with count() as counted:
        assert client.get("/read").text == "1"
    # One script reads the record and slides its expiry, never past its deadline.
    assert counted.by_command == {"evalsha": 1}
    assert counted.in_scripts == {"get": 1, "pexpireat": 1}


def test_reading_without_a_window_costs_one_script_that_slides_nothing(
    adapter: str, make_client: MakeClient, count: Count
) -> None:
    """The read is a script even with no app-wide window: a session may have its own."""
    if adapter == "flask":
        pytest.skip("under Flask, PERMANENT_SESSION_LIFETIME is always a window")
    client = make_client(idle_timeout=None)
    start_session(client)
    with count() as counted:
        assert client.get("/read").text == "1"
    assert counted.by_command == {"evalsha": 1}
    assert counted.in_scripts == {"get": 1}


def test_changing_a_session_costs_two_commands(client: Client, count: Count) -> None:
    start_session(client)
    with count() as counted:
        assert client.get("/incr").text == "2"
    # The read, then a compare-and-set script: one round trip that reads and writes in Redis.
    assert counted.by_command == {"evalsha": 2}
    assert counted.in_scripts == {"get": 2, "pexpireat": 1, "set": 1}


def test_writing_the_same_content_costs_one_command_and_no_rewrite(
    client: Client, count: Count
) -> None:
    start_session(client)
    with count() as counted:
        client.get("/rewrite")
    assert counted.by_command == {"evalsha": 1}


def test_destroying_an_unread_session_costs_one_command(client: Client, count: Count) -> None:
    start_session(client)
    with count() as counted:
        client.get("/logout")
    # One script deletes the record and answers it, which names the user to unindex.
    assert counted.by_command == {"evalsha": 1}
    assert counted.in_scripts == {"type": 1, "get": 1, "del": 1}


def test_destroying_a_session_read_first_costs_its_read_and_one_script(
    client: Client, count: Count
) -> None:
    start_session(client)
    with count() as counted:
        client.get("/read-then-logout")
    # The read, then the same script as for an unread session.
    assert counted.by_command == {"evalsha": 2}


def test_destroying_without_a_user_index_costs_one_delete(
    make_client: MakeClient, count: Count
) -> None:
    client = make_client(user_key=None)
    start_session(client)
    with count() as counted:
        client.get("/logout")
    assert counted.by_command == {"evalsha": 1}


def test_renewing_costs_a_read_and_one_move(client: Client, count: Count) -> None:
    start_session(client)
    with count() as counted:
        client.get("/renew")
    # The read, then one script: compare the old, SET the new, DEL the old, all or nothing.
    assert counted.by_command == {"evalsha": 2}
    assert counted.in_scripts == {"get": 2, "pexpireat": 1, "set": 1, "del": 1}


def test_emptying_a_session_costs_a_read_and_a_compare_and_set(
    client: Client, count: Count
) -> None:
    start_session(client)
    with count() as counted:
        client.get("/clear")
    # The record is rewritten empty, to expire within a minute (see test_concurrency).
    assert counted.by_command == {"evalsha": 2}
    assert counted.in_scripts == {"get": 2, "pexpireat": 1, "set": 1}


def test_a_malformed_cookie_sends_no_command(client: Client, count: Count) -> None:
    client.set_cookie("session", "not-a-token")
    with count() as counted:
        assert client.get("/read").text == "None"
    assert counted.by_command == {}
