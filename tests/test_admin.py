"""Session administration: the per-user index, log out everywhere, listing and the CLI."""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import Client

from flask_scs_redis import RedisSessions, RedisStore, SessionAdmin
from flask_scs_redis.keys import KeySpace
from flask_scs_redis.record import Record, pack_record
from flask_scs_redis.testing import CommandCounter

from harness import MakeApp, cookie_token, store_of
from views import build_flask_app, build_wsgi_app


def log_in(client: Client, user: str) -> None:
    assert client.get("/set", query_string={"key": "_user_id", "value": user}).status_code == 200


def indexed(redis_client: redis.Redis, user: str) -> list[str]:
    return [
        m.decode() for m in redis_client.zrange(KeySpace("scs:session:", True).index(user), 0, -1)
    ]


def store_id(app: Flask, client: Client) -> str:
    store = store_of(app)
    return store.id_of(store.key_for(cookie_token(client) or ""))


# The per-user index


def test_login_renews_the_token_and_indexes_the_session_by_store_id(
    app: Flask, flask_client: FlaskClient, redis_client: redis.Redis
) -> None:
    flask_client.get("/incr")
    anonymous = cookie_token(flask_client)
    log_in(flask_client, "alice")
    assert cookie_token(flask_client) not in (None, anonymous)  # fixation defence, no app code
    assert indexed(redis_client, "alice") == [store_id(app, flask_client)]
    assert cookie_token(flask_client) not in indexed(redis_client, "alice")  # never the raw token
    assert flask_client.get("/read").text == "1"  # the values came along


def test_without_renew_on_login_the_token_stays(make_app: MakeApp) -> None:
    client = make_app(SCS_RENEW_ON_LOGIN=False).test_client()
    client.get("/incr")
    before = cookie_token(client)
    log_in(client, "alice")
    assert cookie_token(client) == before


def test_the_index_follows_renew_switch_removal_and_destroy(
    app: Flask, flask_client: FlaskClient, redis_client: redis.Redis
) -> None:
    log_in(flask_client, "alice")
    flask_client.get("/renew")
    assert indexed(redis_client, "alice") == [store_id(app, flask_client)]
    log_in(flask_client, "bob")  # switching user renews too
    assert indexed(redis_client, "alice") == []
    assert indexed(redis_client, "bob") == [store_id(app, flask_client)]
    flask_client.get("/delete", query_string={"key": "_user_id"})
    assert indexed(redis_client, "bob") == []
    log_in(flask_client, "carol")
    flask_client.get("/logout")
    assert indexed(redis_client, "carol") == []


def test_expired_sessions_leave_the_index(make_app: MakeApp, redis_client: redis.Redis) -> None:
    app = make_app(SCS_LIFETIME=0.5)
    client = app.test_client()
    log_in(client, "alice")
    assert len(indexed(redis_client, "alice")) == 1
    time.sleep(0.7)
    with app.app_context():
        assert RedisSessions().admin().user_sessions("alice") == []
    assert redis_client.exists("scs:session:user:alice") == 0  # the index key expired too


def test_a_session_whose_record_vanished_is_pruned_when_listed(
    app: Flask, flask_client: FlaskClient, redis_client: redis.Redis
) -> None:
    log_in(flask_client, "alice")
    redis_client.delete(store_of(app).key_for(cookie_token(flask_client) or ""))
    with app.app_context():
        assert RedisSessions().admin().user_sessions("alice") == []
    assert indexed(redis_client, "alice") == []


# Log out everywhere


def test_log_out_other_devices_ends_them_and_keeps_this_one(app: Flask) -> None:
    laptop, phone, tablet = (app.test_client() for _ in range(3))
    for device in (laptop, phone, tablet):
        log_in(device, "alice")
        device.get("/incr")
    mine = laptop.get("/mine").text.split(",")
    assert len(mine) == 3
    assert sum(entry.endswith("*") for entry in mine) == 1  # the current one is marked
    assert laptop.get("/log-out-others").text == "2"
    assert laptop.get("/read").text == "1"
    for device in (phone, tablet):  # checked from the other clients themselves
        assert device.get("/read").text == "None"
    assert laptop.get("/mine").text == store_id(app, laptop) + "*"


def test_log_out_everywhere_ends_every_session(app: Flask, redis_client: redis.Redis) -> None:
    devices = [app.test_client() for _ in range(3)]
    for device in devices:
        log_in(device, "alice")
    assert devices[0].get("/log-out-everywhere").text == "3"
    assert [device.get("/read").text for device in devices] == ["None"] * 3
    assert indexed(redis_client, "alice") == []


def test_past_the_limit_a_users_oldest_sessions_are_destroyed(make_app: MakeApp) -> None:
    app = make_app(SCS_MAX_SESSIONS_PER_USER=2)
    first, second, third = (app.test_client() for _ in range(3))
    for device in (first, second, third):
        log_in(device, "alice")
        device.get("/incr")
        time.sleep(0.01)  # deadlines a millisecond apart at least
    assert first.get("/read").text == "None"
    assert second.get("/read").text == "1"
    assert third.get("/read").text == "1"
    assert len(third.get("/mine").text.split(",")) == 2


def test_ending_one_session_reads_and_deletes_it_in_one_command(
    app: Flask, flask_client: FlaskClient, redis_client: redis.Redis
) -> None:
    log_in(flask_client, "alice")
    session_id = store_id(app, flask_client)
    with app.app_context():
        admin = RedisSessions().admin()
        with CommandCounter(redis_client) as counted:
            assert admin.destroy(session_id)
        # One script deletes the record and answers it: it names the user whose index to clean.
        assert counted.by_command == {"evalsha": 1, "zrem": 1}
        assert not admin.destroy(session_id)
    assert indexed(redis_client, "alice") == []
    assert flask_client.get("/read").text == "None"


# Metadata


def test_sessions_carry_created_last_seen_and_an_optional_description(
    app: Flask, flask_client: FlaskClient
) -> None:
    log_in(flask_client, "alice")
    with app.app_context():
        (first,) = RedisSessions().admin().user_sessions("alice")
    assert first.description is None  # nothing about the client by default
    time.sleep(0.02)
    flask_client.get("/read")  # a read does not write, so last_seen stays
    with app.app_context():
        (after_read,) = RedisSessions().admin().user_sessions("alice")
    assert after_read.last_seen == first.last_seen
    flask_client.get("/describe", query_string={"as": "Firefox on Linux"})
    with app.app_context():
        (described,) = RedisSessions().admin().user_sessions("alice")
    assert described.description == "Firefox on Linux"
    assert described.last_seen > first.last_seen
    assert described.created_at == first.created_at
    assert described.created_at <= described.last_seen < described.expires_at


def test_wsgi_users_get_the_index_and_the_admin_over_a_store(redis_client: redis.Redis) -> None:
    application = build_wsgi_app(redis_client)
    phone, laptop = Client(application), Client(application)
    for device in (phone, laptop):
        log_in(device, "alice")
    admin = SessionAdmin(RedisStore(redis_client))
    assert len(admin.user_sessions("alice")) == 2
    assert admin.destroy_user_sessions("alice") == 2
    assert phone.get("/read").text == "None"


# Listing and counting at scale


def test_iterating_ten_thousand_sessions_goes_in_pipelined_batches(
    redis_client: redis.Redis,
) -> None:
    store = RedisStore(redis_client)
    deadline = int(time.time() * 1000) + 600_000
    blob, _ = pack_record(Record(1, deadline, 0, b"\x81\xa8_user_id\xa1u"))
    pipe = redis_client.pipeline(transaction=False)
    for number in range(10_000):
        pipe.set(store.key_for(f"{number:043d}"), blob)
    pipe.execute()

    class CountingStore(RedisStore):
        fetches: ClassVar[list[int]] = []

        def fetch(self, keys: list[str]) -> list[tuple[bytes | None, int]]:
            self.fetches.append(len(keys))
            return super().fetch(keys)

    admin = SessionAdmin(CountingStore(redis_client))
    with CommandCounter(redis_client) as counted:
        sessions = list(admin.iter_sessions(batch=500))
    assert len(sessions) == 10_000
    assert all(info.user == "u" for info, _ in sessions)
    # One pipelined round trip of GET and PTTL per 500 sessions, and no KEYS.
    assert CountingStore.fetches == [500] * 20
    assert "keys" not in counted.by_command
    assert counted.by_command["get"] == 10_000
    assert counted.by_command["scan"] < 100
    assert admin.count() == 10_000


# The CLI


@pytest.fixture
def cli_app(app: Flask, redis_client: redis.Redis) -> Flask:
    for user in ("alice", "alice", "bob"):
        client = app.test_client()
        log_in(client, user)
        client.get("/incr")
    return app


def run(app: Flask, *args: str, input: str | None = None) -> Any:
    return app.test_cli_runner().invoke(args=["scs", *args], input=input)


def test_cli_count(cli_app: Flask) -> None:
    result = run(cli_app, "count")
    assert result.exit_code == 0
    assert result.output.strip() == "3"


def test_cli_list_and_json(cli_app: Flask) -> None:
    plain = run(cli_app, "list")
    assert plain.exit_code == 0
    assert len(plain.output.splitlines()) == 1 + 3  # a header row, then the sessions
    rows = [
        json.loads(line)
        for line in run(cli_app, "list", "--user", "alice", "--json").output.splitlines()
    ]
    assert [row["user"] for row in rows] == ["alice", "alice"]
    assert set(rows[0]) == {"id", "user", "created_at", "last_seen", "expires_at", "description"}


def test_cli_show_and_delete(cli_app: Flask) -> None:
    row = json.loads(run(cli_app, "list", "--user", "bob", "--json").output)
    shown = run(cli_app, "show", row["id"])
    assert shown.exit_code == 0
    assert "'_user_id': 'bob'" in shown.output
    assert run(cli_app, "delete", row["id"]).exit_code == 0
    missing = run(cli_app, "delete", row["id"])
    assert missing.exit_code == 1
    assert "no session" in missing.output
    assert "Traceback" not in missing.output
    assert run(cli_app, "show", "nope").exit_code == 2  # under 8 characters: wrong usage


def test_cli_purge_user(cli_app: Flask) -> None:
    result = run(cli_app, "purge", "--user", "alice")
    assert result.exit_code == 0
    assert "ended 2 sessions of alice" in result.output
    assert run(cli_app, "count").output.strip() == "1"


def test_cli_purge_all_needs_yes_and_shows_progress(cli_app: Flask) -> None:
    refused = run(cli_app, "purge", "--all")
    assert refused.exit_code == 2
    assert "--yes" in refused.output
    assert run(cli_app, "count").output.strip() == "3"
    assert run(cli_app, "purge").exit_code == 2  # neither --user nor --all
    done = run(cli_app, "purge", "--all", "--yes")
    assert done.exit_code == 0
    assert "Ending sessions" in done.output
    assert "ended 3 sessions" in done.output
    assert run(cli_app, "count").output.strip() == "0"


def test_cli_errors_are_messages_not_tracebacks(make_app: MakeApp) -> None:
    app = build_flask_app(None, SCS_REDIS_URL="redis://127.0.0.1:1/0", SCS_REDIS_RETRIES=0)
    result = run(app, "count")
    assert result.exit_code == 1
    assert "cannot be reached" in result.output
    assert "Traceback" not in result.output


def test_without_a_user_key_nothing_is_indexed(
    make_app: MakeApp, redis_client: redis.Redis
) -> None:
    client = make_app(SCS_USER_KEY=None).test_client()
    client.get("/incr")
    before = cookie_token(client)
    log_in(client, "alice")
    assert cookie_token(client) == before  # no index, no automatic renewal
    assert list(redis_client.scan_iter(match="scs:session:user:*")) == []
