"""The lean command path: its own connections, as safe as redis-py's pool.

Every test runs against a real server. What they check is what the pool
gave for free: a late reply never answers the next command, threads never
share a connection mid-command, a forked child never uses its parent's
socket, and a restarted server (its connections dropped, its scripts gone)
is reached again without an error.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from flask import Flask, session

from flask_scs_redis import RedisSessions, RedisStore, SessionStoreUnavailable
from flask_scs_redis.commands import Commands
from flask_scs_redis.scripts import READ
from flask_scs_redis.testing import RedisServer


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def connections(server: RedisServer) -> int:
    with server.client() as admin:
        return len(admin.client_list()) - 1  # not admin's own


def test_a_url_client_takes_the_lean_path_and_redis_py_clients_of_other_kinds_do_not(
    server: RedisServer,
) -> None:
    assert Commands(RedisStore.from_url(server.url).client).lean
    blocking = redis.Redis(connection_pool=redis.BlockingConnectionPool(port=server.port))
    assert not Commands(blocking).lean
    assert Commands(blocking).execute("PING") is True  # redis-py's path, with its callbacks


def test_a_reply_that_came_too_late_never_answers_the_next_command(server: RedisServer) -> None:
    commands = Commands(RedisStore.from_url(server.url, timeout=0.2).client)
    commands.execute("SET", "mine", b"mine")
    with server.client() as admin:
        admin.execute_command("CLIENT", "PAUSE", 600, "ALL")
        with pytest.raises(SessionStoreUnavailable, match="Timeout"):
            commands.execute("GET", "other")
    time.sleep(0.5)  # the pause is over, and the GET that timed out answered
    # The paused GET is answered by now; had its connection been kept, this would read it.
    assert commands.execute("GET", "mine") == b"mine"


def test_threads_never_share_a_connection_mid_command(server: RedisServer) -> None:
    commands = Commands(RedisStore.from_url(server.url).client)
    wrong: list[tuple[int, object]] = []

    def work(number: int) -> None:
        for round_number in range(150):
            value = f"{number}:{round_number}".encode()
            commands.execute("SET", f"thread:{number}", value)
            answer = commands.execute("GET", f"thread:{number}")
            if answer != value:
                wrong.append((number, answer))

    threads = [threading.Thread(target=work, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    assert 1 <= connections(server) <= 8  # no more than ran at once, and kept for the next


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_makes_its_own_connection(server: RedisServer) -> None:
    commands = Commands(RedisStore.from_url(server.url).client)
    commands.execute("SET", "parent", b"1")
    assert connections(server) == 1
    child = os.fork()
    if child == 0:  # the child: its own connection, and the parent's untouched
        try:
            ok = commands.execute("INCR", "child") == 1 and connections(server) == 2
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert commands.execute("GET", "parent") == b"1"  # the parent's socket still works


def test_a_restarted_server_is_reached_again_and_its_scripts_loaded_again(
    server: RedisServer,
) -> None:
    client = RedisStore.from_url(server.url, retries=3).client
    commands, read = Commands(client), client.register_script(READ)
    commands.execute("SET", "key", b"\x95\x01\x02\x03\x04\x05")
    assert commands.script(read, ["key"], [0, ""]) is not None
    server.stop()
    server.start()  # empty, with no scripts; the held connection is dead
    assert commands.execute("SET", "key", b"\x95\x01\x02\x03\x04\x05")
    assert commands.script(read, ["key"], [0, ""]) == b"\x95\x01\x02\x03\x04\x05"


def test_a_requests_commands_bypass_redis_pys_pool(server: RedisServer) -> None:
    app = Flask(__name__)
    app.config.update(SCS_REDIS_URL=server.url, SECRET_KEY="unused")
    RedisSessions(app)

    @app.get("/write")
    def write() -> str:
        session["n"] = session.get("n", 0) + 1
        return str(session["n"])

    client = app.test_client()
    assert client.get("/write").text == "1"  # a new session: its SET NX
    assert client.get("/write").text == "2"  # the scripts load through redis-py, once
    pool = RedisSessions().store(app).client.connection_pool
    pool.reset()  # forgets its connections: using it again would make one
    assert [client.get("/write").text for _ in range(3)] == ["3", "4", "5"]
    client.delete_cookie("session")
    assert client.get("/write").text == "1"  # another new session
    # redis-py counts the connections its pool made: none, for reads, writes and SET NX.
    assert pool._created_connections == 0
