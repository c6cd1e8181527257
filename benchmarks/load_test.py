"""Load test: many clients, a few shared sessions, and not one lost update.

Runs a real multi-process server (gunicorn, 2 workers with threads) on a
throwaway Redis (or ``SCS_REDIS_URL``), with two scenarios:

- ``shared``: every request adds a key of its own to one of a few shared
  sessions, so requests of one session overlap all the time. Afterwards every
  key must be in its session.
- ``race``: in each round a few clients per user log in, then renew, log in
  again and add keys while "log out everywhere" ends that user's sessions.
  No session of the user may outlive the purge, and no key written to a
  session that was not purged may be lost.

- ``rotation``: on a server that rotates tokens every ``--rotate-every``
  seconds, a few clients share one session (each keeps the cookie it was last
  given) and each counts up a key of its own, across several rotations: no
  request may find the session gone, and no count may be lost. Then clients
  of one user's sessions keep counting while "log out everywhere" ends them,
  just after a rotation: afterwards no token any client was given, old tokens
  still in their grace included, may open a session of the user.

No response may be a 5xx; 503s (a declared store outage) are counted apart.
With ``--encrypt`` the sessions are encrypted at rest; the race then finds
live sessions by every token its clients were given, as only a token opens
a record.

    .venv/bin/python benchmarks/load_test.py [--scenario shared|race|both|rotation|all]
        [--adapter flask|wsgi|both] [--clients 32] [--requests 50] [--sessions 4]
        [--rounds 50] [--users 4] [--clients-per-user 3] [--encrypt]
        [--rotate-every 0.4] [--rotate-grace 0.25] [--seconds 3] [--sharing-clients 4]

Exit status 0 means no key was lost, no session survived and no request failed.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from flask import Flask, session
from werkzeug.wrappers import Request, Response

from flask_scs_redis import RedisSessions, RedisStore, Session, SessionAdmin, SessionMiddleware
from flask_scs_redis.clock import now_ms
from flask_scs_redis.record import read_record, unpack_record
from flask_scs_redis.sealing import Sealer
from flask_scs_redis.testing import RedisServer
from flask_scs_redis.testing.serving import gunicorn

#: The session value naming the logged-in user (Flask-Login's), which sessions are indexed by.
USER_KEY = "_user_id"
#: The server secret of ``--encrypt`` runs (set in the server's environment as SCS_LOADTEST_KEY).
ENCRYPTION_KEY = "load-test-secret-0123456789abcdef"
#: Every token a race client was given, for finding sealed sessions.
ISSUED_TOKENS: set[str] = set()


def race_step(action: str, session: Session) -> str:
    """Do a race request's ``action`` to ``session``; answer what it found there, as JSON.

    ``login/<user>/<tag>`` logs in as ``user`` and keeps ``tag`` to tell the
    login apart (logging in again as the same user changes nothing),
    ``renew`` renews the token, ``remember`` gives the session a lifetime of
    its own (as a remember-me login does, which moves its index entry),
    ``add/<key>`` adds a key and ``keys`` only reads. ``incr/<key>`` counts
    a key up by one and ``get/<key>`` reads it; both answer its count.
    """
    found: dict[str, Any] = {"keys": sorted(session.keys()), "user": session.get(USER_KEY)}
    verb, _, argument = action.partition("/")
    if verb == "login":
        user, tag = argument.split("/")
        if session.get(USER_KEY) != user:
            session[USER_KEY] = user
            session["login"] = tag
    elif verb == "renew":
        session.renew()
    elif verb == "remember":
        session.set_expiry(3600, idle_timeout=None)
    elif verb == "add":
        session[argument] = True
    elif verb == "incr":
        session[argument] = session.get(argument, 0) + 1
    if verb in ("incr", "get"):
        found["count"] = session.get(argument, 0)
    return json.dumps(found)


def _rotation_settings() -> dict[str, float]:
    """``rotate_every`` and ``rotate_grace`` in seconds, from the server's environment.

    Set by :func:`serve` as SCS_LOADTEST_ROTATE_EVERY and SCS_LOADTEST_ROTATE_GRACE;
    without them tokens are not rotated.
    """
    settings = {}
    for name in ("rotate_every", "rotate_grace"):
        value = os.environ.get(f"SCS_LOADTEST_{name.upper()}")
        if value:
            settings[name] = float(value)
    return settings


def create_app(adapter: str = "flask") -> Any:
    """The app under load, on ``SCS_REDIS_URL``.

    ``/add/<key>`` adds a key, ``/keys`` lists them, and ``/race/<action>``
    runs :func:`race_step`. Tokens are rotated as :func:`_rotation_settings` says.
    """
    redis_url = os.environ["SCS_REDIS_URL"]
    secret = os.environ.get("SCS_LOADTEST_KEY")
    keys = [secret] if secret else []
    rotation = _rotation_settings()
    if adapter == "flask":
        app = Flask(__name__)
        app.config["SCS_REDIS_URL"] = redis_url
        app.config.update(SCS_ENCRYPT=bool(keys), SCS_ENCRYPTION_KEYS=keys)
        app.config.update({f"SCS_{name.upper()}": value for name, value in rotation.items()})
        RedisSessions(app)

        @app.get("/add/<key>")
        def add(key: str) -> str:
            session[key] = True
            return "ok"

        @app.get("/keys")
        def keys() -> str:
            return json.dumps(sorted(session.keys()))

        @app.get("/race/<path:action>")
        def race_view(action: str) -> str:
            return race_step(action, session)  # type: ignore[arg-type]

        return app

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        values = environ["scs.session"]
        if request.path.startswith("/add/"):
            values[request.path.removeprefix("/add/")] = True
            response = Response("ok")
        elif request.path.startswith("/race/"):
            response = Response(race_step(request.path.removeprefix("/race/"), values))
        else:
            response = Response(json.dumps(sorted(values.keys())))
        return response(environ, start_response)

    store = RedisStore.from_url(redis_url)
    return SessionMiddleware(
        wsgi_app,
        store,
        cookie_persist=False,
        encrypt=bool(keys),
        encryption_keys=keys,
        **rotation,  # type: ignore[arg-type]
    )


@dataclass
class Report:
    """What one run did."""

    adapter: str
    requests_sent: int
    server_errors: int
    other_errors: int
    keys_expected: int
    keys_lost: int
    seconds: float

    @property
    def requests_per_second(self) -> float:
        return self.requests_sent / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> bool:
        return self.keys_lost == 0 and self.server_errors == 0 and self.other_errors == 0


@contextmanager
def serve(
    redis_url: str,
    adapter: str,
    *,
    server_log: Any = None,
    encrypt: bool = False,
    rotate_every: float | None = None,
    rotate_grace: float | None = None,
) -> Iterator[int]:
    """Serve :func:`create_app` with gunicorn, 2 workers of 8 threads; yield the port.

    With ``rotate_every`` (seconds) tokens are rotated that often, and an old
    token opens its session for ``rotate_grace`` seconds more.
    """
    env = {"SCS_REDIS_URL": redis_url}
    if encrypt:
        env["SCS_LOADTEST_KEY"] = ENCRYPTION_KEY
    if rotate_every is not None:
        env["SCS_LOADTEST_ROTATE_EVERY"] = str(rotate_every)
    if rotate_grace is not None:
        env["SCS_LOADTEST_ROTATE_GRACE"] = str(rotate_grace)
    with gunicorn(
        f"load_test:create_app('{adapter}')",
        pythonpath=str(Path(__file__).parent),
        env=env,
        threads=8,
        probe="/keys",
        server_log=server_log,
    ) as port:
        yield port


def _get(
    connection: http.client.HTTPConnection, path: str, token: str | None
) -> tuple[int, str, str | None]:
    """GET ``path`` with the session cookie; return the status, body and any new token."""
    connection.request("GET", path, headers={"Cookie": f"session={token}"} if token else {})
    response = connection.getresponse()
    body = response.read().decode()
    cookie = response.getheader("Set-Cookie")
    new_token = cookie.split(";", 1)[0].removeprefix("session=") if cookie else None
    return response.status, body, new_token


def load(port: int, *, clients: int, requests: int, sessions: int, adapter: str) -> Report:
    """Send ``clients`` x ``requests`` requests over ``sessions`` shared sessions."""
    setup = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    tokens = []
    for number in range(sessions):
        status, _, token = _get(setup, f"/add/start-{number}", None)
        assert status == 200, status
        tokens.append(token)
    setup.close()
    expected: list[set[str]] = [{f"start-{number}"} for number in range(sessions)]
    counts = {"sent": 0, "server_errors": 0, "other_errors": 0}
    lock = threading.Lock()

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for request in range(requests):
            which = (number + request) % sessions
            key = f"k{number}-{request}"
            with lock:
                expected[which].add(key)
                counts["sent"] += 1
            try:
                status, _, _ = _get(connection, f"/add/{key}", tokens[which])
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                with lock:
                    counts["other_errors"] += 1
                continue
            if status >= 500:
                with lock:
                    counts["server_errors"] += 1
        connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(number,)) for number in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started

    lost = 0
    check = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for token, keys in zip(tokens, expected):
        status, body, _ = _get(check, "/keys", token)
        stored = set(json.loads(body)) if status == 200 else set()
        lost += len(keys - stored)
    check.close()
    return Report(
        adapter=adapter,
        requests_sent=counts["sent"],
        server_errors=counts["server_errors"],
        other_errors=counts["other_errors"],
        keys_expected=sum(len(keys) for keys in expected),
        keys_lost=lost,
        seconds=round(seconds, 2),
    )


@dataclass
class RaceReport:
    """What one run of the race did, and what it found after each purge."""

    adapter: str
    rounds: int
    logins: int
    renewals: int
    #: Sessions given a lifetime of their own, which moves their index entry.
    remembers: int
    purges: int
    writes: int
    requests_sent: int
    #: Live sessions of a purged user, after the purge, that a login before it made.
    survivors: int
    #: How many of the survivors the user's index still listed.
    survivors_indexed: int
    #: How many rounds left at least one survivor.
    rounds_with_survivors: int
    #: Live sessions of a purged user that a login in flight at the purge made.
    late_logins: int
    keys_lost: int
    server_errors: int
    outages: int
    other_errors: int
    seconds: float

    @property
    def ok(self) -> bool:
        return not (self.survivors or self.keys_lost or self.server_errors or self.other_errors)


class _Round:
    """What one round's clients and purges share: who is purged, which logins are in flight.

    A client starts no request once its user's purge has begun, so the only
    traffic that overlaps a purge is what was in flight when it began.
    """

    def __init__(self, users: list[str], clients: int) -> None:
        #: Passed by every client once logged in, and by every purge.
        self.start = threading.Barrier(clients + len(users), timeout=60)
        self.lock = threading.Lock()
        self.purging: set[str] = set()
        self.purged = {user: threading.Event() for user in users}
        self.logins_in_flight: dict[str, set[str]] = {user: set() for user in users}
        #: By user: the logins to that user in flight when its purge began.
        self.excused: dict[str, set[str]] = {}

    def begin(self, user: str, login_tag: str | None) -> bool:
        """Whether a request of ``user``'s client may start; a login to ``user`` is noted."""
        with self.lock:
            if user in self.purging:
                return False
            if login_tag is not None:
                self.logins_in_flight[user].add(login_tag)
            return True

    def finish(self, user: str, login_tag: str | None) -> bool:
        """Note the end of a request; return whether ``user``'s purge began meanwhile."""
        with self.lock:
            if login_tag is not None:
                self.logins_in_flight[user].discard(login_tag)
            return user in self.purging

    def purge(self, admin: SessionAdmin, user: str, delay: float) -> None:
        """End every session of ``user`` ``delay`` seconds after the start."""
        self.start.wait()
        time.sleep(delay)
        with self.lock:
            self.purging.add(user)
            self.excused[user] = set(self.logins_in_flight[user])
        try:
            admin.destroy_user_sessions(user)
        finally:
            self.purged[user].set()


class _RaceClient:
    """A browser in the race: a new session each round, logged in as ``user`` or ``guest``."""

    def __init__(self, port: int, number: int, user: str, guest: str) -> None:
        self.port, self.number, self.user, self.guest = port, number, user, guest
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.counts: Counter[str] = Counter()
        self.tags = itertools.count()
        self.token: str | None = None

    def play(self, race_round: _Round, rng: random.Random) -> None:
        """Log in, race until the purge begins, then check that the session kept its keys."""
        self.token = None
        keys: set[str] = set()  # acknowledged writes, which the session must keep
        as_guest = False  # as the last answer left the session
        idle_at_purge = False
        try:
            healthy = self._request(f"login/{self.user}/{self._tag()}") is not None
            if healthy:
                self.counts["logins"] += 1
        finally:
            race_round.start.wait()
        while healthy:
            if as_guest:
                action = f"login/{self.user}/{self._tag()}"
            else:
                guest = f"login/{self.guest}/{self._tag()}"
                actions = ["renew", "remember", f"add/{self._tag()}", guest]
                action = rng.choices(actions, weights=[25, 15, 40, 20])[0]
            own_login = action.startswith(f"login/{self.user}/")
            login_tag = action.rsplit("/", 1)[1] if own_login else None
            if not race_round.begin(self.user, login_tag):
                idle_at_purge = True
                break
            try:
                found = self._request(action)
            finally:
                purge_began = race_round.finish(self.user, login_tag)
            if found is None:
                healthy = False
                break
            if found["user"] is None:  # gone: fine if purged, else every key is lost
                self.counts["keys_lost"] += 0 if purge_began else len(keys)
                keys.clear()
                break
            missing = keys - set(found["keys"])
            self.counts["keys_lost"] += len(missing)
            keys -= missing
            verb = action.split("/", 1)[0]
            if verb == "add":
                self.counts["writes"] += 1
                keys.add(action.removeprefix("add/"))
            elif verb == "renew":
                self.counts["renewals"] += 1
            elif verb == "remember":
                self.counts["remembers"] += 1
            else:
                self.counts["logins"] += 1
                as_guest = not own_login
            if purge_began:
                break
        race_round.purged[self.user].wait(60)
        if healthy and self.token is not None:
            found = self._request("keys")
            if found is not None and found["user"] is not None:
                self.counts["keys_lost"] += len(keys - set(found["keys"]))
            elif found is not None and as_guest and idle_at_purge:
                self.counts["keys_lost"] += len(keys)  # a guest's session is never purged

    def _tag(self) -> str:
        """A name no other key or login of the run has."""
        return f"c{self.number}n{next(self.tags)}"

    def _request(self, action: str) -> dict[str, Any] | None:
        """GET ``/race/<action>`` with the session; return what it found, or None on an error."""
        self.counts["sent"] += 1
        try:
            status, body, new_token = _get(self.connection, f"/race/{action}", self.token)
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.counts["other_errors"] += 1
            return None
        if new_token is not None:  # "" when the cookie is dropped
            self.token = new_token or None
            ISSUED_TOKENS.add(new_token)
        if status == 503:
            self.counts["outages"] += 1
        elif status >= 500:
            self.counts["server_errors"] += 1
        return json.loads(body) if status == 200 else None


def _opened_sessions(admin: SessionAdmin) -> Iterator[tuple[str, dict[Any, Any]]]:
    """Each live session's id and values: sealed ones opened by the tokens clients were given."""
    for info, values in admin.iter_sessions():
        if not info.sealed:
            yield info.id, values
    sealer = admin.users.sealer
    tokens = [token for token in ISSUED_TOKENS if token]
    keys = [admin.store.key_for(token) for token in tokens]
    for token, key, (blob, _) in zip(tokens, keys, admin.store.fetch(keys)):
        if blob is not None and sealer is not None:
            record, values = read_record(blob, sealer, token)
            if record.sealed and values and record.deadline_ms > now_ms():
                yield admin.store.keys.public_id(key), values


def _live_sessions(
    admin: SessionAdmin, users: list[str]
) -> tuple[dict[str, dict[str, dict[Any, Any]]], dict[str, set[str]]]:
    """Each user's live sessions by id, from a scan and the index; and the ids each index lists."""
    live: dict[str, dict[str, dict[Any, Any]]] = {user: {} for user in users}
    for session_id, values in _opened_sessions(admin):
        if values.get(USER_KEY) in live:
            live[values[USER_KEY]][session_id] = values
    listed = {user: {info.id for info in admin.user_sessions(user)} for user in users}
    for user in users:
        for session_id in listed[user] - live[user].keys():  # written since the scan passed
            found = admin.get(session_id)
            if found is not None and found[0].sealed:  # opened by the scan, if live
                continue
            if found is not None and found[1].get(USER_KEY) == user:
                live[user][session_id] = found[1]
    return live, listed


def race(
    port: int,
    redis_url: str,
    *,
    rounds: int,
    users: int,
    clients_per_user: int,
    adapter: str,
    purge_within: float = 0.02,
    encrypt: bool = False,
) -> RaceReport:
    """Race renewals, logins and writes against "log out everywhere", ``rounds`` times.

    In each round every client logs in as its user with a new session; then
    all of them renew, log in as a guest and back, and add keys, while each
    user's sessions are purged (by :class:`SessionAdmin`, on the same Redis)
    at a random moment within ``purge_within`` seconds. No request of a user
    starts once its purge has begun. When the requests in flight have ended,
    neither a scan of every record nor the user's index may show a live
    session of the user that a login finished before the purge made: that
    is a survivor. A login to the user that was in flight when the purge began
    may land after it, so its session is counted apart, as a late login.
    """
    sealer = Sealer([ENCRYPTION_KEY.encode()]) if encrypt else None
    admin = SessionAdmin(RedisStore.from_url(redis_url), sealer=sealer)
    names = [f"{adapter}-user{number}" for number in range(users)]
    guest = f"{adapter}-guest"
    clients = [
        _RaceClient(port, number, names[number // clients_per_user], guest)
        for number in range(users * clients_per_user)
    ]
    rng = random.Random()
    survivors = indexed = late = failed_rounds = 0
    started = time.monotonic()
    for _ in range(rounds):
        race_round = _Round(names, len(clients))
        threads = [
            threading.Thread(target=client.play, args=(race_round, random.Random(rng.random())))
            for client in clients
        ] + [
            threading.Thread(
                target=race_round.purge, args=(admin, user, rng.uniform(0, purge_within))
            )
            for user in names
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        live, listed = _live_sessions(admin, names)
        survivors_before = survivors
        for user in names:
            for session_id, values in live[user].items():
                if values.get("login") in race_round.excused[user]:
                    late += 1
                else:
                    survivors += 1
                    indexed += session_id in listed[user]
        failed_rounds += survivors > survivors_before
        for user in names:  # each survivor counts once, and each round starts clean
            for session_id in live[user]:
                admin.destroy(session_id)
        admin.destroy_user_sessions(guest)  # keeps the scans short
    seconds = time.monotonic() - started
    counts: Counter[str] = Counter()
    for client in clients:
        client.connection.close()
        counts += client.counts
    return RaceReport(
        adapter=adapter,
        rounds=rounds,
        logins=counts["logins"],
        renewals=counts["renewals"],
        remembers=counts["remembers"],
        purges=rounds * users,
        writes=counts["writes"],
        requests_sent=counts["sent"],
        survivors=survivors,
        survivors_indexed=indexed,
        rounds_with_survivors=failed_rounds,
        late_logins=late,
        keys_lost=counts["keys_lost"],
        server_errors=counts["server_errors"],
        outages=counts["outages"],
        other_errors=counts["other_errors"],
        seconds=round(seconds, 2),
    )


@dataclass
class RotationReport:
    """What one run of clients sharing a session across token rotations did."""

    adapter: str
    clients: int
    requests_sent: int
    #: Increments the server acknowledged.
    increments: int
    #: Distinct tokens the clients were given, the first one included.
    tokens_seen: int
    #: Tokens given after the first: each is a rotation.
    rotations: int
    #: How often a client was given another token than it sent: about each
    #: rotation times each client, as every client follows every rotation.
    tokens_taken_up: int
    #: Answers that found the session without its user: a client logged out.
    logouts: int
    #: Acknowledged increments that a later answer, or the final read, did not show.
    lost_updates: int
    server_errors: int
    other_errors: int
    seconds: float

    @property
    def ok(self) -> bool:
        return not (self.logouts or self.lost_updates or self.server_errors or self.other_errors)


class _Cookies:
    """What the clients of one run share: every token they were given, by when."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tokens: set[str] = set()
        #: Set once the run has seen ``wanted`` tokens.
        self.enough = threading.Event()
        self.wanted = 0

    def given(self, token: str) -> None:
        with self.lock:
            self.tokens.add(token)
            if self.wanted and len(self.tokens) >= self.wanted:
                self.enough.set()


class _Counter:
    """A client that counts up a key of its own in a session it may share with others.

    It sends each request with the cookie it was last given, as a browser
    tab of the session's browser does, and takes up any new one it is given.
    """

    def __init__(self, port: int, key: str, token: str, cookies: _Cookies) -> None:
        self.port, self.key, self.token, self.cookies = port, key, token, cookies
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.counts: Counter[str] = Counter()
        self.acknowledged = 0  # increments the server answered

    def count_up(self) -> dict[str, Any] | None:
        """Count the key up once; return what the server found, or None on an error.

        An answer without the user is a logout; one whose count is not one
        more than the last acknowledged shows lost updates.
        """
        found = self.request(f"incr/{self.key}")
        if found is None or found["user"] is None:
            return found
        self.counts["lost_updates"] += max(0, self.acknowledged + 1 - found["count"])
        self.acknowledged = found["count"]
        self.counts["increments"] += 1
        return found

    def request(self, action: str) -> dict[str, Any] | None:
        """GET ``/race/<action>`` with the cookie; return what it found, or None on an error."""
        self.counts["sent"] += 1
        try:
            status, body, new_token = _get(self.connection, f"/race/{action}", self.token)
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.counts["other_errors"] += 1
            return None
        if new_token:
            self.counts["tokens_taken_up"] += new_token != self.token
            self.token = new_token
            self.cookies.given(new_token)
        if status == 503:
            self.counts["outages"] += 1
        elif status >= 500:
            self.counts["server_errors"] += 1
        return json.loads(body) if status == 200 else None


def _logged_in(port: int, user: str, cookies: _Cookies) -> str:
    """A new session logged in as ``user``; return its token."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    status, _, token = _get(connection, f"/race/login/{user}/first", None)
    connection.close()
    assert status == 200 and token, (status, token)
    cookies.given(token)
    return token


def rotation(port: int, *, clients: int, seconds: float, adapter: str) -> RotationReport:
    """Let ``clients`` share one session for ``seconds``, each counting up a key of its own.

    The server must rotate tokens (see :func:`serve`): each client keeps the
    cookie it was last given, so while one request rotates the token, the
    others come with the old one, and then take up the new one. Afterwards
    each client reads its count back, which must be its acknowledged increments.
    """
    cookies = _Cookies()
    token = _logged_in(port, f"{adapter}-sharer", cookies)
    counters = [_Counter(port, f"c{number}", token, cookies) for number in range(clients)]
    until = time.monotonic() + seconds

    def run(counter: _Counter) -> None:
        while time.monotonic() < until:
            found = counter.count_up()
            if found is not None and found["user"] is None:
                counter.counts["logouts"] += 1
                return

    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(counter,)) for counter in counters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds_taken = time.monotonic() - started
    counts: Counter[str] = Counter()
    for counter in counters:
        if counter.counts["logouts"] == 0:  # read the count back, within the grace
            found = counter.request(f"get/{counter.key}")
            if found is not None and found["user"] is None:
                counter.counts["logouts"] += 1
            elif found is not None:
                counter.counts["lost_updates"] += abs(counter.counts["increments"] - found["count"])
        counter.connection.close()
        counts += counter.counts
    return RotationReport(
        adapter=adapter,
        clients=clients,
        requests_sent=counts["sent"],
        increments=counts["increments"],
        tokens_seen=len(cookies.tokens),
        rotations=len(cookies.tokens) - 1,
        tokens_taken_up=counts["tokens_taken_up"],
        logouts=counts["logouts"],
        lost_updates=counts["lost_updates"],
        server_errors=counts["server_errors"] + counts["outages"],
        other_errors=counts["other_errors"],
        seconds=round(seconds_taken, 2),
    )


@dataclass
class RotationRaceReport:
    """What "log out everywhere" racing the clients of a user's rotating sessions left."""

    adapter: str
    #: The user's sessions, each shared by some clients.
    devices: int
    clients: int
    requests_sent: int
    increments: int
    #: Tokens given after each session's first, up to the end.
    rotations: int
    #: How many sessions ``destroy_user_sessions`` answered it ended.
    purged: int
    #: Every token a client was given, each tried after the purge.
    tokens_tried: int
    #: How many of those still had their forwarding record (were within
    #: their grace) when they were tried.
    tokens_in_grace: int
    #: Sessions of the user the admin still listed after the purge.
    survivors_listed: int
    #: Live sessions of the user a scan of every record found after the purge.
    survivors_scanned: int
    #: Tokens that still opened a session of the user after the purge.
    survivors_by_token: int
    #: Answers before the purge that found a session without its user.
    logouts: int
    lost_updates: int
    server_errors: int
    other_errors: int
    seconds: float

    @property
    def survivors(self) -> int:
        return self.survivors_listed + self.survivors_scanned + self.survivors_by_token

    @property
    def ok(self) -> bool:
        return not (
            self.survivors
            or self.logouts
            or self.lost_updates
            or self.server_errors
            or self.other_errors
        )


def rotation_race(
    port: int,
    redis_url: str,
    *,
    devices: int,
    clients_per_device: int,
    rotations_before_purge: int,
    adapter: str,
    timeout: float = 10.0,
    encrypt: bool = False,
) -> RotationRaceReport:
    """End a user's sessions while their clients count up keys across token rotations.

    The user logs in on ``devices`` sessions, each shared by
    ``clients_per_device`` clients as in :func:`rotation`. Once the clients
    were given ``rotations_before_purge`` rotated tokens (or after
    ``timeout`` seconds), the user's sessions are purged, with the clients'
    requests in flight and the last rotated tokens within their grace. No
    client starts a request after that. Then every token any client was
    given must open no session of the user, and neither a scan nor the
    admin's listing may find one. With ``encrypt`` (the server's ``--encrypt``)
    the scan opens sealed sessions with those tokens.
    """
    store = RedisStore.from_url(redis_url)
    sealer = Sealer([ENCRYPTION_KEY.encode()]) if encrypt else None
    admin = SessionAdmin(store, sealer=sealer)
    user = f"{adapter}-rotating"
    cookies = _Cookies()
    tokens = [_logged_in(port, user, cookies) for _ in range(devices)]
    cookies.wanted = devices + rotations_before_purge
    counters = [
        _Counter(port, f"d{device}c{number}", tokens[device], cookies)
        for device in range(devices)
        for number in range(clients_per_device)
    ]
    purging = threading.Event()
    purged: list[int] = []

    def run(counter: _Counter) -> None:
        while not purging.is_set():
            found = counter.count_up()
            if found is not None and found["user"] is None:
                if not purging.is_set():
                    counter.counts["logouts"] += 1
                return

    def purge() -> None:
        cookies.enough.wait(timeout)
        purging.set()
        purged.append(admin.destroy_user_sessions(user))

    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(counter,)) for counter in counters]
    threads.append(threading.Thread(target=purge))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started

    with cookies.lock:
        given = sorted(cookies.tokens)
    now = now_ms()
    in_grace = 0
    for blob, _ in store.fetch([store.key_for(token) for token in given]):
        if blob is not None:
            record = unpack_record(blob)
            in_grace += record.forward is not None and record.deadline_ms > now
    checker = _Counter(port, "none", "", _Cookies())
    by_token = 0
    for token in given:
        checker.token = token
        found = checker.request("keys")
        by_token += found is not None and found["user"] == user
    checker.connection.close()
    listed = len(admin.user_sessions(user))
    ISSUED_TOKENS.update(given)  # sealed sessions open only to a token
    scanned = sum(values.get(USER_KEY) == user for _, values in _opened_sessions(admin))
    counts: Counter[str] = checker.counts
    for counter in counters:
        counter.connection.close()
        counts += counter.counts
    return RotationRaceReport(
        adapter=adapter,
        devices=devices,
        clients=len(counters),
        requests_sent=counts["sent"],
        increments=counts["increments"],
        rotations=len(given) - devices,
        purged=purged[0] if purged else 0,
        tokens_tried=len(given),
        tokens_in_grace=in_grace,
        survivors_listed=listed,
        survivors_scanned=scanned,
        survivors_by_token=by_token,
        logouts=counts["logouts"],
        lost_updates=counts["lost_updates"],
        server_errors=counts["server_errors"] + counts["outages"],
        other_errors=counts["other_errors"],
        seconds=round(seconds, 2),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--scenario",
        choices=["shared", "race", "both", "rotation", "all"],
        default="all",
        help="both: shared and race; all: every scenario",
    )
    parser.add_argument("--adapter", choices=["flask", "wsgi", "both"], default="both")
    shared = parser.add_argument_group("shared sessions")
    shared.add_argument("--clients", type=int, default=32)
    shared.add_argument("--requests", type=int, default=50, help="per client")
    shared.add_argument("--sessions", type=int, default=4)
    racing = parser.add_argument_group("renewals racing log out everywhere")
    racing.add_argument("--rounds", type=int, default=50)
    racing.add_argument("--users", type=int, default=4)
    racing.add_argument("--clients-per-user", type=int, default=3)
    rotating = parser.add_argument_group("token rotation")
    rotating.add_argument("--rotate-every", type=float, default=0.4, help="seconds")
    rotating.add_argument("--rotate-grace", type=float, default=0.25, help="seconds")
    rotating.add_argument("--seconds", type=float, default=3.0, help="how long clients share")
    rotating.add_argument("--sharing-clients", type=int, default=4)
    rotating.add_argument("--devices", type=int, default=2, help="sessions of the purged user")
    parser.add_argument("--encrypt", action="store_true", help="encrypt sessions at rest")
    parser.add_argument("--server-log", type=argparse.FileType("a"), help="gunicorn's error log")
    arguments = parser.parse_args()
    adapters = ["flask", "wsgi"] if arguments.adapter == "both" else [arguments.adapter]
    scenarios = {
        "both": ["shared", "race"],
        "all": ["shared", "race", "rotation"],
    }.get(arguments.scenario, [arguments.scenario])
    reports: list[Report | RaceReport | RotationReport | RotationRaceReport] = []
    with ExitStack() as stack:
        redis_url = os.environ.get("SCS_REDIS_URL") or stack.enter_context(RedisServer()).url
        for adapter in adapters:
            if "rotation" in scenarios:
                with serve(
                    redis_url,
                    adapter,
                    server_log=arguments.server_log,
                    encrypt=arguments.encrypt,
                    rotate_every=arguments.rotate_every,
                    rotate_grace=arguments.rotate_grace,
                ) as port:
                    reports.append(
                        rotation(
                            port,
                            clients=arguments.sharing_clients,
                            seconds=arguments.seconds,
                            adapter=adapter,
                        )
                    )
                    reports.append(
                        rotation_race(
                            port,
                            redis_url,
                            devices=arguments.devices,
                            clients_per_device=arguments.sharing_clients // 2 or 1,
                            rotations_before_purge=3,
                            adapter=adapter,
                            encrypt=arguments.encrypt,
                        )
                    )
            if not {"shared", "race"} & set(scenarios):
                continue
            with serve(
                redis_url, adapter, server_log=arguments.server_log, encrypt=arguments.encrypt
            ) as port:
                if "shared" in scenarios:
                    reports.append(
                        load(
                            port,
                            clients=arguments.clients,
                            requests=arguments.requests,
                            sessions=arguments.sessions,
                            adapter=adapter,
                        )
                    )
                if "race" in scenarios:
                    reports.append(
                        race(
                            port,
                            redis_url,
                            rounds=arguments.rounds,
                            users=arguments.users,
                            clients_per_user=arguments.clients_per_user,
                            adapter=adapter,
                            encrypt=arguments.encrypt,
                        )
                    )
    for report in reports:
        if isinstance(report, RotationReport):
            print(
                f"{report.adapter:>5} rotation: {report.clients} clients sharing a session,"
                f" {report.requests_sent} requests in {report.seconds} s,"
                f" {report.rotations} rotations ({report.tokens_seen} tokens,"
                f" taken up {report.tokens_taken_up} times);"
                f" logouts: {report.logouts}; lost updates: {report.lost_updates};"
                f" 5xx: {report.server_errors}; other errors: {report.other_errors}"
            )
        elif isinstance(report, RotationRaceReport):
            print(
                f"{report.adapter:>5} rotation race: {report.clients} clients on"
                f" {report.devices} sessions, {report.requests_sent} requests,"
                f" {report.rotations} rotations, {report.purged} purged;"
                f" {report.tokens_tried} tokens tried ({report.tokens_in_grace} in their grace);"
                f" survivors: {report.survivors}; logouts: {report.logouts};"
                f" lost updates: {report.lost_updates};"
                f" 5xx: {report.server_errors}; other errors: {report.other_errors}"
            )
        elif isinstance(report, Report):
            print(
                f"{report.adapter:>5}: {report.requests_sent} requests in {report.seconds} s"
                f" ({report.requests_per_second:.0f}/s) over {arguments.sessions} shared sessions;"
                f" keys lost: {report.keys_lost} of {report.keys_expected};"
                f" 5xx: {report.server_errors}; other errors: {report.other_errors}"
            )
        else:
            print(
                f"{report.adapter:>5} race: {report.rounds} rounds, {report.renewals} renewals,"
                f" {report.remembers} remembers, {report.logins} logins,"
                f" {report.purges} purges, {report.writes} writes"
                f" in {report.seconds} s; survivors: {report.survivors}"
                f" (in {report.rounds_with_survivors} rounds; late logins: {report.late_logins});"
                f" keys lost: {report.keys_lost};"
                f" 5xx: {report.server_errors}; 503: {report.outages};"
                f" other errors: {report.other_errors}"
            )
        print(json.dumps({**asdict(report), "ok": report.ok}))
    return 0 if all(report.ok for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
