"""Encryption at rest under load and spread out: concurrency, Cluster, Sentinel, migration.

Every test here runs with ``SCS_ENCRYPT`` on against real Redis servers and
checks what is stored: each record's values are sealed (they begin with
0xC1, the plaintext is nowhere in the record) and open, with the cookie's
token and the server secret, to exactly the values expected. So none of
them would pass with sealing skipped, and the merging ones would not pass
if a save that lost its compare-and-set could not open the record that won.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from http.cookies import SimpleCookie
from typing import Any, NamedTuple
from urllib.parse import urlencode

import pytest
import redis
from werkzeug.test import Client

from flask_scs_redis import Outcome, RedisStore, SessionEngine
from flask_scs_redis.indexes import Indexes
from flask_scs_redis.keys import KeySpace
from flask_scs_redis.record import CorruptRecordError, read_record, unpack_record
from flask_scs_redis.sealing import SEALED, Sealer
from flask_scs_redis.testing import RedisServer
from flask_scs_redis.testing.topologies import RedisClusterServers, RedisSentinelGroup

from harness import PREFIX, ROOT, cookie_token, http_get, opened, serving, store_of, stored
from test_migration import (
    CART,
    CSRF,
    LOGGED_IN,
    USER,
    cookie_session_app,
    flask_session_app,
    logged_in,
    new_app,
    switched,
    values_of,
)
from views import GATES, Gate, build_flask_app, build_wsgi_app

SECRET = "the-server-secret-every-node-shares-0123456789"
NEW_SECRET = "the-server-secret-rotated-in-later-0123456789"
OTHER_SECRET = "a-server-secret-of-some-other-deployment-0123"
#: Adapter-neutral options (see views.py) that switch encryption at rest on.
SEALING: dict[str, Any] = {"encrypt": True, "encryption_keys": [SECRET]}
#: The same as Flask config keys.
SEALING_CONFIG: dict[str, Any] = {"SCS_ENCRYPT": True, "SCS_ENCRYPTION_KEYS": [SECRET]}
DAY = timedelta(days=1)


# What is stored.


def sealer(*secrets: str) -> Sealer:
    return Sealer([secret.encode() for secret in secrets or (SECRET,)])


def record_key(token: str, prefix: str = PREFIX) -> str:
    """The key of ``token``'s record (tokens hashed, the default)."""
    return KeySpace(prefix, hash_tokens=True).record(token)


def record_keys(client: Any, prefix: str = PREFIX) -> list[str]:
    """The keys of every session record under ``prefix`` (on every primary of a Cluster)."""
    return [key for chunk in RedisStore(client, prefix=prefix).scan_keys() for key in chunk]


def assert_sealed(blob: bytes, *plaintexts: str) -> None:
    """``blob`` is a record whose values are sealed, and none of ``plaintexts`` shows in it."""
    record = unpack_record(blob)
    assert record.sealed and record.values[:1] == SEALED
    with pytest.raises(CorruptRecordError, match="encryption is off"):
        read_record(blob)
    for plaintext in plaintexts:
        assert plaintext.encode() not in blob, plaintext


def sealed_values(
    client: Any,
    token: str,
    *plaintexts: str,
    prefix: str = PREFIX,
    secrets: tuple[str, ...] = (SECRET,),
) -> dict[Any, Any]:
    """The values of ``token``'s record, which must be there and sealed, opened as a node would."""
    blob = client.get(record_key(token, prefix))
    assert blob is not None, "no record for the token"
    assert_sealed(blob, *plaintexts)
    return read_record(blob, sealer(*secrets), token)[1]


def sealed_for_another_token(client: Any, key: str, token: str) -> bool:
    """Whether the record at ``key`` is sealed so that ``token`` cannot open it."""
    blob = client.get(key)
    assert blob is not None
    try:
        read_record(blob, sealer(), token)
    except CorruptRecordError:
        return True
    return False


# Sessions at the engine.


def engine_on(client: Any, prefix: str = PREFIX) -> SessionEngine:
    return SessionEngine(RedisStore(client, prefix=prefix), sealer=sealer())


def renewed_beside_a_write(engine: SessionEngine, old: str) -> str:
    """Renew the session of ``old`` (logging in) while another request writes to it.

    Both read it first; the write lands first, so the move loses once and
    merges. Return the new token.
    """
    renewing, writing = opened(engine, old), opened(engine, old)
    renewing.renew()
    renewing["user"] = "plaintext-alice"
    writing["cart"] = "plaintext-cart"
    assert engine.commit(writing) is Outcome.SAVED
    assert engine.commit(renewing) is Outcome.RENEWED
    assert renewing.token is not None
    return renewing.token


# Requests over HTTP, held after their view ran until the test lets them save.


class Held(NamedTuple):
    gate: Gate
    thread: threading.Thread
    answer: dict[str, Any]


@pytest.fixture
def gates() -> Iterator[None]:
    yield
    GATES.clear()


def cookie_in(headers: list[tuple[str, str]]) -> str | None:
    """The session token a response's Set-Cookie gives ("" for a deletion), or None."""
    for name, value in headers:
        if name.lower() == "set-cookie":
            morsel = SimpleCookie(value).get("session")
            if morsel is not None:
                return morsel.value
    return None


def send(port: int, token: str | None, path: str, **query: str) -> dict[str, Any]:
    """GET ``path`` with ``token`` as the cookie: the status, headers and body."""
    headers = {} if token is None else {"Cookie": f"session={token}"}
    status, lines, body = http_get(port, f"{path}?{urlencode(query)}", headers)
    return {"status": status, "headers": lines, "body": body, "cookie": cookie_in(lines)}


def hold(port: int, token: str, go: threading.Event, path: str, **query: str) -> Held:
    """Send a request that loads the session, runs its view, then waits for ``go`` to save."""
    name = f"sealed-{uuid.uuid4().hex}"
    gate = GATES[name] = Gate()
    gate.release = go
    answer: dict[str, Any] = {}

    def run() -> None:
        try:
            answer.update(send(port, token, path, hold=name, **query))
        except Exception as exc:  # an answer that never came is a failure the test reports
            answer.update(status=f"no answer: {exc!r}", cookie=None)

    thread = threading.Thread(target=run)
    thread.start()
    return Held(gate, thread, answer)


def all_arrived(*held: Held) -> None:
    for request in held:
        assert request.gate.arrived.wait(10), "a held request never reached its gate"


def finished(*held: Held) -> list[dict[str, Any]]:
    for request in held:
        request.thread.join(20)
        assert not request.thread.is_alive(), "a request never finished"
    return [request.answer for request in held]


def writers(port: int, token: str, go: threading.Event, numbers: range) -> list[Held]:
    """Held requests that each set a key of their own (``k<number>``) in the session."""
    return [
        hold(port, token, go, "/set", key=f"k{number}", value=f"plaintext-{number}")
        for number in numbers
    ]


def written(numbers: Any) -> dict[str, str]:
    return {f"k{number}": f"plaintext-{number}" for number in numbers}


# Topologies.


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServers]:
    with RedisClusterServers(primaries=3, replicas_per_primary=0) as servers:
        yield servers


def build(adapter: str, client: Any, **options: Any) -> Any:
    """The shared views behind ``adapter`` on ``client``, sealing."""
    return (build_flask_app if adapter == "flask" else build_wsgi_app)(client, **SEALING, **options)


# 1. Concurrent updates merge, and the merged record is sealed.

WRITERS = 16


def test_concurrent_writes_to_one_sealed_session_all_land(
    any_client: Any, adapter: str, gates: None
) -> None:
    """Every writer loads the same revision, then all save at once: all but one must merge."""
    with serving(build(adapter, any_client)) as port:
        token = send(port, None, "/set", key="n", value="plaintext-n")["cookie"]
        assert token
        go = threading.Event()
        held = writers(port, token, go, range(WRITERS))
        all_arrived(*held)
        go.set()
        answers = finished(*held)

    assert [answer["status"] for answer in answers] == [200] * WRITERS
    assert {answer["cookie"] for answer in answers} == {token}  # each saved, none renewed
    expected = {"n": "plaintext-n", **written(range(WRITERS))}
    assert sealed_values(any_client, token, *expected.values()) == expected
    blob = any_client.get(record_key(token))
    assert unpack_record(blob).revision == 1 + WRITERS  # one write each, none lost
    assert record_keys(any_client) == [record_key(token)]


def test_two_writers_of_one_sealed_session_merge_at_the_engine(any_client: Any) -> None:
    engine = engine_on(any_client)
    token = stored(engine, n=1, doomed="plaintext-doomed")
    first, second = opened(engine, token), opened(engine, token)
    first["a"] = "plaintext-A"
    second["b"] = "plaintext-B"
    del second["doomed"]

    assert engine.commit(first) is Outcome.SAVED
    assert engine.commit(second) is Outcome.SAVED  # lost the compare-and-set, then merged

    assert sealed_values(any_client, token, "plaintext-A", "plaintext-B") == {
        "n": 1,
        "a": "plaintext-A",
        "b": "plaintext-B",
    }
    assert dict(opened(engine, token)) == {"n": 1, "a": "plaintext-A", "b": "plaintext-B"}


# 2. Renewal and logout racing writes.


def test_writes_racing_a_renewal_land_under_the_new_token_or_not_at_all(
    any_client: Any, gates: None
) -> None:
    """Early writes land before the login; late ones race it: each lands once, or vanishes."""
    with serving(build("flask", any_client)) as port:
        old = send(port, None, "/set", key="n", value="plaintext-n")["cookie"]
        assert old
        go_early, go_late = threading.Event(), threading.Event()
        early = writers(port, old, go_early, range(0, 6))
        login = hold(port, old, go_late, "/login", user="plaintext-alice")
        late = writers(port, old, go_late, range(6, 12))
        all_arrived(*early, login, *late)
        go_early.set()
        early_answers = finished(*early)
        go_late.set()
        login_answer, *late_answers = finished(login, *late)

    answers = [*early_answers, login_answer, *late_answers]
    assert [answer["status"] for answer in answers] == [200] * 13
    assert [answer["cookie"] for answer in early_answers] == [old] * 6
    new = login_answer["cookie"]
    assert new and new != old
    # A late write that was saved (its cookie sent) landed before the move, which carried it.
    landed = [number for number, answer in zip(range(6, 12), late_answers) if answer["cookie"]]
    assert {answer["cookie"] for answer in late_answers} <= {old, None}
    expected = {"n": "plaintext-n", "user": "plaintext-alice", **written([*range(6), *landed])}
    assert sealed_values(any_client, new, *expected.values()) == expected
    # Resealed under the new token's key; the old token names nothing.
    assert sealed_for_another_token(any_client, record_key(new), old)
    assert record_keys(any_client) == [record_key(new)]


def test_a_logout_racing_writes_is_never_undone(any_client: Any, gates: None) -> None:
    """Early writes land before the logout; late ones race it: none leaves a record behind."""
    with serving(build("flask", any_client)) as port:
        token = send(port, None, "/set", key="n", value="plaintext-n")["cookie"]
        assert token
        go_early, go_late = threading.Event(), threading.Event()
        early = writers(port, token, go_early, range(0, 6))
        late = writers(port, token, go_late, range(6, 12))
        all_arrived(*early, *late)
        go_early.set()
        early_answers = finished(*early)
        assert sealed_values(any_client, token) == {"n": "plaintext-n", **written(range(6))}
        go_late.set()
        logout = send(port, token, "/logout")  # while the late writes save
        late_answers = finished(*late)
        assert record_keys(any_client) == []  # no write brought the session back
        after = send(port, token, "/read")

    answers = [*early_answers, logout, *late_answers, after]
    assert [answer["status"] for answer in answers] == [200] * 14
    assert logout["cookie"] == ""  # the cookie is removed
    assert after["body"] == b"None"
    assert after["cookie"] is None


def test_a_write_that_lands_during_a_renewal_is_resealed_under_the_new_token(
    any_client: Any,
) -> None:
    engine = engine_on(any_client)
    old = stored(engine, n=1)
    new = renewed_beside_a_write(engine, old)
    assert new != old

    assert sealed_values(any_client, new, "plaintext-alice", "plaintext-cart") == {
        "n": 1,
        "user": "plaintext-alice",
        "cart": "plaintext-cart",
    }
    assert sealed_for_another_token(any_client, record_key(new), old)
    assert any_client.exists(record_key(old)) == 0
    assert dict(opened(engine, old)) == {}


# 3. Redis Cluster.


@pytest.mark.cluster
def test_sealed_sessions_spread_over_every_cluster_primary_and_read_back(
    cluster: RedisClusterServers,
) -> None:
    client = cluster.client()
    app = build_flask_app(client, prefix="sealed-spread:", **SEALING)
    browsers = [app.test_client() for _ in range(12)]
    for number, browser in enumerate(browsers):
        browser.get("/set", query_string={"key": "who", "value": f"plaintext-{number}"})
    tokens = [cookie_token(browser) for browser in browsers]

    owners = {cluster.primary_for(record_key(str(token))).port for token in tokens}
    assert len(owners) > 1
    for number, (browser, token) in enumerate(zip(browsers, tokens)):
        assert token is not None
        assert browser.get("/incr").text == "1"
        assert sealed_values(client, token, f"plaintext-{number}", prefix="sealed-spread:") == {
            "who": f"plaintext-{number}",
            "n": 1,
        }
    client.close()


@pytest.mark.cluster
def test_a_renewal_across_cluster_nodes_reseals_and_carries_a_concurrent_write(
    cluster: RedisClusterServers,
) -> None:
    """Renew until the new key lives on another primary than the old: each one must hold."""
    client = cluster.client()
    engine = engine_on(client, prefix="sealed-cross:")
    crossed = 0
    for _ in range(40):
        old = stored(engine, n=1)
        new = renewed_beside_a_write(engine, old)
        old_key, new_key = (record_key(t, "sealed-cross:") for t in (old, new))
        assert client.exists(old_key) == 0
        assert sealed_values(client, new, prefix="sealed-cross:") == {
            "n": 1,
            "user": "plaintext-alice",
            "cart": "plaintext-cart",
        }
        assert sealed_for_another_token(client, new_key, old)
        if cluster.primary_for(old_key) is not cluster.primary_for(new_key):
            crossed += 1
            if crossed == 2:
                break
    assert crossed == 2
    client.close()


@pytest.mark.cluster
def test_a_user_index_named_by_the_secret_logs_out_everywhere_on_a_cluster(
    cluster: RedisClusterServers,
) -> None:
    client = cluster.client()
    app = build_flask_app(client, prefix="sealed-users:", **SEALING)
    devices = [app.test_client() for _ in range(4)]
    for device in devices:
        device.get("/set", query_string={"key": "_user_id", "value": "plaintext-alice"})
    store = store_of(app)
    index_key = Indexes(store, sealer()).key("plaintext-alice")

    assert len(devices[0].get("/mine").text.split(",")) == 4
    assert client.zcard(index_key) == 4
    assert client.exists(store.keys.index("plaintext-alice")) == 0  # not the guessable name
    for device in devices:
        token = cookie_token(device)
        assert token is not None
        values = sealed_values(client, token, "plaintext-alice", prefix="sealed-users:")
        assert values == {"_user_id": "plaintext-alice"}

    assert devices[1].get("/log-out-everywhere").text == "4"
    assert [device.get("/mine").text for device in devices] == [""] * 4
    assert record_keys(client, "sealed-users:") == []
    assert client.zcard(index_key) == 0
    client.close()


def until_ok(browser: Client, path: str, timeout: float = 20) -> str:
    """Request ``path`` every 50 ms until it answers 200; return the body."""
    deadline = time.monotonic() + timeout
    while True:
        response = browser.get(path)
        if response.status_code == 200:
            return response.text
        assert time.monotonic() < deadline, f"{path} still answers {response.status_code}"
        time.sleep(0.05)


@pytest.mark.cluster
def test_sealed_sessions_outlive_a_killed_cluster_primary() -> None:
    with RedisClusterServers(primaries=3, replicas_per_primary=1) as servers:
        app = build_flask_app(None, SCS_REDIS_URL=servers.url, SCS_REDIS_TIMEOUT=0.5, **SEALING)
        browsers = [app.test_client() for _ in range(9)]
        for number, browser in enumerate(browsers):
            browser.get("/set", query_string={"key": "n", "value": f"plaintext-{number}"})
        for primary in servers.primaries:  # every write reached a replica
            primary_client = primary.client()
            assert primary_client.wait(1, 5000) == 1
            primary_client.close()
        tokens = [str(cookie_token(browser)) for browser in browsers]
        victim_key = record_key(tokens[0])
        victim = servers.primary_for(victim_key)

        victim.stop()
        # Read back through the app, from the replica that took over.
        assert until_ok(browsers[0], "/read") == repr("plaintext-0")

        assert servers.primary_for(victim_key) is not victim
        for number, browser in enumerate(browsers):
            assert until_ok(browser, "/read") == repr(f"plaintext-{number}")
        until_ok(browsers[0], "/set?key=after&value=plaintext-after")
        client = servers.client()
        for number, token in enumerate(tokens):
            values = sealed_values(client, token, f"plaintext-{number}")
            assert values["n"] == f"plaintext-{number}"
        assert sealed_values(client, tokens[0])["after"] == "plaintext-after"
        client.close()


# 4. Sentinel.


@pytest.mark.sentinel
def test_a_sentinel_watched_primary_keeps_sealed_sessions_its_replica_holds_sealed() -> None:
    with RedisSentinelGroup(replicas=1) as group:
        app = build_flask_app(
            None, SCS_REDIS_URL=group.url, SCS_REDIS_TIMEOUT=0.5, SCS_MIN_REPLICAS=1, **SEALING
        )
        browser = app.test_client()
        assert [browser.get("/incr").text for _ in range(3)] == ["1", "2", "3"]
        old = cookie_token(browser)
        browser.get("/login", query_string={"user": "plaintext-alice"})
        new = cookie_token(browser)
        assert new is not None and new != old
        assert browser.get("/read").text == "3"

        # Each write was acknowledged by the replica: it holds the record, sealed.
        replica = group.replicas[0].client()
        assert sealed_values(replica, new, "plaintext-alice") == {
            "n": 3,
            "user": "plaintext-alice",
        }
        primary = group.current_primary().client()
        assert record_keys(primary) == [record_key(new)]
        browser.get("/logout")
        assert record_keys(primary) == []
        replica.close()
        primary.close()


# 5. Migration.

MIGRATING = ("flask-session", "cookie")


def test_a_flask_session_login_is_adopted_sealed_and_its_old_record_deleted(
    redis_client: redis.Redis,
) -> None:
    sid = logged_in(flask_session_app(redis_client))
    assert redis_client.exists(f"session:{sid}") == 1
    app = new_app(redis_client, MIGRATING, **SEALING_CONFIG)
    browser = switched(app, sid)

    assert values_of(browser) == LOGGED_IN
    token = cookie_token(browser)
    assert token is not None and token != sid
    assert redis_client.exists(f"session:{sid}") == 0
    assert sealed_values(redis_client, token, CSRF, "apple") == LOGGED_IN
    assert values_of(browser) == LOGGED_IN  # read back, opened
    assert redis_client.zcard(Indexes(store_of(app), sealer()).key(USER)) == 1
    assert values_of(switched(app, sid)) == {}  # the old cookie names nothing now
    assert record_keys(redis_client) == [record_key(token)]


def test_a_signed_cookie_session_is_adopted_sealed(redis_client: redis.Redis) -> None:
    cookie = logged_in(cookie_session_app())
    app = new_app(redis_client, MIGRATING, **SEALING_CONFIG)
    browser = switched(app, cookie)
    login = {"_user_id": USER, "cart": CART, "csrf_token": CSRF}

    assert values_of(browser) == login
    token = cookie_token(browser)
    assert token is not None and token != cookie
    assert sealed_values(redis_client, token, CSRF, "apple") == login
    assert values_of(browser) == login
    assert record_keys(redis_client) == [record_key(token)]


# 6. Another node, another process, another secret.

OPEN_IN_ANOTHER_PROCESS = """
import json, sys
from datetime import timedelta
import redis
from flask_scs_redis import RedisStore, SessionEngine
from flask_scs_redis.sealing import Sealer
url, token, secret = sys.argv[1:]
store = RedisStore(redis.Redis.from_url(url))
engine = SessionEngine(store, sealer=Sealer([secret.encode()]))
session = engine.open(token, lifetime=timedelta(days=1))
session.get("n")
print(json.dumps(dict(session), sort_keys=True))
"""


def opened_in_another_process(server: RedisServer, token: str, secret: str = SECRET) -> str:
    done = subprocess.run(
        [sys.executable, "-c", OPEN_IN_ANOTHER_PROCESS, server.url, token, secret],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=True,
    )
    return done.stdout.strip()


def test_a_session_sealed_by_one_node_opens_on_another_and_in_another_process(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    flask_node = build_flask_app(redis_client, **SEALING).test_client()
    flask_node.get("/set", query_string={"key": "cart", "value": "plaintext-cart"})
    token = cookie_token(flask_node)
    assert token is not None
    wsgi_node = Client(build_wsgi_app(redis_server.client(), **SEALING))
    wsgi_node.set_cookie("session", token)

    assert wsgi_node.get("/incr").text == "1"
    assert flask_node.get("/incr").text == "2"
    assert opened_in_another_process(redis_server, token) == '{"cart": "plaintext-cart", "n": 2}'
    assert sealed_values(redis_client, token, "plaintext-cart") == {
        "cart": "plaintext-cart",
        "n": 2,
    }


def test_a_node_with_another_server_secret_starts_afresh_and_deletes_the_record(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    ours = build_flask_app(redis_client, **SEALING).test_client()
    ours.get("/set", query_string={"key": "n", "value": "plaintext-n"})
    token = cookie_token(ours)
    assert token is not None

    assert opened_in_another_process(redis_server, token, OTHER_SECRET) == "{}"
    assert record_keys(redis_client) == []
    assert ours.get("/read").text == "None"


def test_nodes_mid_rotation_open_what_each_other_reseals_while_both_list_both_secrets(
    redis_client: redis.Redis,
) -> None:
    """A rolling rotation: nodes that list the new secret second, then nodes that list it first.

    Each request reseals the session under its node's first secret; the
    other node, listing that secret too, opens it. Nobody is logged out.
    """
    token = cookie_token_of(build_flask_app(redis_client, **SEALING).test_client(), "/incr")
    adding = node(redis_client, token, SECRET, NEW_SECRET)  # first step: new secret opens only
    rotated = node(redis_client, token, NEW_SECRET, SECRET)  # second step: it seals

    for visit, (browser, first_secret) in enumerate(
        [(adding, SECRET), (rotated, NEW_SECRET)] * 2, start=2
    ):
        assert browser.get("/incr").text == str(visit)
        assert sealed_values(redis_client, token, secrets=(first_secret,)) == {"n": visit}


def cookie_token_of(browser: Client, path: str) -> str:
    """The token ``browser`` holds after a request to ``path``."""
    assert browser.get(path).status_code == 200
    token = cookie_token(browser)
    assert token is not None
    return token


def node(redis_client: redis.Redis, token: str, *secrets: str) -> Client:
    """A browser holding ``token``, talking to a node that lists ``secrets``."""
    app = build_flask_app(redis_client, encrypt=True, encryption_keys=list(secrets))
    browser = app.test_client()
    browser.set_cookie("session", token)
    return browser


# 7. Many sessions at once, from threads that serve one another's sessions in turn.


def test_sessions_saved_at_once_from_shared_threads_each_seal_under_their_own_token(
    any_client: Any,
) -> None:
    """Pooled threads, as a WSGI server's, load and save other sessions in turn."""
    engine = engine_on(any_client)
    tokens = [stored(engine, owner=f"plaintext-{number}") for number in range(24)]
    visits = [(number, visit) for visit in range(4) for number in range(24)]

    def visit_session(number: int, visit: int) -> Outcome:
        session = opened(engine, tokens[number])
        session[f"visit-{visit}"] = session["owner"]
        return engine.commit(session)

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(visit_session, *zip(*visits)))

    assert set(outcomes) == {Outcome.SAVED}
    for number, token in enumerate(tokens):
        owner = f"plaintext-{number}"
        values = sealed_values(any_client, token, owner)
        assert values == {"owner": owner, **{f"visit-{visit}": owner for visit in range(4)}}
