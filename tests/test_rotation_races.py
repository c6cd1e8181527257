"""Token rotation racing other requests, played out step by step on a real server.

Several requests open one session with the same cookie, each loads it, and
then they save in a chosen order, as parallel requests of one browser do
when its token is due for rotation. Whatever the order, nobody is logged
out, no write is lost, and a session that was ended, renewed or logged in
leaves no old token that still opens it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest

from flask_scs_redis import Outcome, RedisStore, SessionAdmin, SessionEngine, codec
from flask_scs_redis.clock import now_ms
from flask_scs_redis.record import unpack_record
from flask_scs_redis.session import Session
from flask_scs_redis.signals import session_renewed
from flask_scs_redis.testing.topologies import RedisClusterServers

from harness import edit_record, opened, stored

DAY = timedelta(days=1)
#: Tokens this old are rotated; the old one then opens the session this long.
EVERY = timedelta(minutes=1)
GRACE = timedelta(seconds=30)


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServers]:
    with RedisClusterServers(primaries=3, replicas_per_primary=0) as servers:
        yield servers


class SteppingStore(RedisStore):
    """A store that calls ``before_move`` or ``after_move`` around its next move of a record.

    A rotation's move comes after its user's index was joined, and before
    the join is confirmed, so the test can act between those steps.
    """

    before_move: Callable[[], None] | None = None
    after_move: Callable[[], None] | None = None

    def move(self, *args: Any, **kwargs: Any) -> Any:
        before, self.before_move = self.before_move, None
        if before is not None:
            before()
        answer = super().move(*args, **kwargs)
        after, self.after_move = self.after_move, None
        if after is not None:
            after()
        return answer


def rotating_engine(client: Any) -> SessionEngine:
    return SessionEngine(SteppingStore(client), rotate_every=EVERY, rotate_grace=GRACE)


def loaded(engine: SessionEngine, token: str) -> Session:
    """A request's session, read now (as a request that uses it does)."""
    session = opened(engine, token)
    assert len(session) > 0, "the token opened no session"
    return session


def make_due(engine: SessionEngine, token: str) -> None:
    """Date the issue of ``token`` back past ``EVERY``: the next load rotates it."""
    key = engine.store.key_for(token)
    past = now_ms() - int(EVERY.total_seconds() * 1000) - 1_000
    edit_record(engine.store.client, key, issued_ms=past)


def due_session(engine: SessionEngine, **values: Any) -> str:
    """A stored session of ``values`` whose token is due for rotation; return the token."""
    token = stored(engine, **values)
    make_due(engine, token)
    return token


def values_at(engine: SessionEngine, token: str) -> dict[Any, Any]:
    """What a request with ``token`` finds in its session ({} for none)."""
    return dict(opened(engine, token))


def record_kinds(engine: SessionEngine) -> list[str]:
    """What each record in the store is, sorted: "live", "forwarding" or "emptied"."""
    store = engine.store
    keys = [key for chunk in store.scan_keys() for key in chunk]
    kinds = []
    for blob, _ in store.fetch(keys):
        if blob is None:
            continue
        record = unpack_record(blob)
        if record.forward is not None:
            kinds.append("forwarding")
        else:
            kinds.append("emptied" if record.values == codec.EMPTY else "live")
    return sorted(kinds)


def live_sessions(engine: SessionEngine) -> list[dict[Any, Any]]:
    """The values of every live session, as the admin lists them."""
    return [values for _, values in SessionAdmin(engine.store).iter_sessions()]


def indexed_ids(engine: SessionEngine, user: str) -> list[str]:
    """The store ids in ``user``'s index."""
    return sorted(engine.users.indexes.members(user))


def store_id(engine: SessionEngine, token: str) -> str:
    return engine.store.id_of(engine.store.key_for(token))


@contextmanager
def renewals() -> Iterator[list[str]]:
    """Collect the reason of every ``session_renewed`` sent meanwhile."""
    reasons: list[str] = []

    def receiver(sender: Any, **details: Any) -> None:
        reasons.append(details["reason"])

    with session_renewed.connected_to(receiver):
        yield reasons


# 1. A request that read the session before another request rotated it.


@pytest.mark.parametrize("user", [None, "alice"], ids=["anonymous", "logged-in"])
@pytest.mark.parametrize("read", ["before-it-was-due", "while-it-was-due"])
def test_a_write_that_read_before_a_rotation_lands_in_the_rotated_session(
    any_client: Any, read: str, user: str | None
) -> None:
    engine = rotating_engine(any_client)
    start = {"n": 1} if user is None else {"n": 1, "_user_id": user}
    old = stored(engine, **start)
    if read == "before-it-was-due":
        slow = loaded(engine, old)
        make_due(engine, old)
    else:
        make_due(engine, old)
        slow = loaded(engine, old)
    rotating = loaded(engine, old)
    rotating["b"] = "from the rotating request"
    assert engine.commit(rotating) is Outcome.RENEWED
    new = rotating.token
    assert new is not None and new != old

    slow["a"] = "from the slow request"
    assert engine.commit(slow) is Outcome.SAVED

    both = {**start, "a": "from the slow request", "b": "from the rotating request"}
    assert values_at(engine, new) == both
    assert slow.token == new  # its response carries the new cookie
    assert values_at(engine, old) == both  # within the grace, the old token follows
    assert record_kinds(engine) == ["forwarding", "live"]
    if user is not None:
        assert indexed_ids(engine, user) == [store_id(engine, new)]


# 2. Two requests both due for rotation.


@pytest.mark.parametrize("second", ["writes", "only-reads"])
def test_two_requests_due_for_rotation_make_one_rotation(any_client: Any, second: str) -> None:
    engine = rotating_engine(any_client)
    old = due_session(engine, n=1)
    first, other = loaded(engine, old), loaded(engine, old)
    first["a"] = 1
    if second == "writes":
        other["b"] = 2

    with renewals() as reasons:
        assert engine.commit(first) is Outcome.RENEWED
        outcome = engine.commit(other)

    assert reasons == ["rotation"]
    assert outcome is (Outcome.SAVED if second == "writes" else Outcome.UNCHANGED)
    new = first.token
    assert new is not None and new != old
    assert other.token == new
    assert other.modified  # the cookie it sends is the new token
    expected = {"n": 1, "a": 1, "b": 2} if second == "writes" else {"n": 1, "a": 1}
    assert values_at(engine, new) == expected
    assert record_kinds(engine) == ["forwarding", "live"]  # no third token


def test_two_rotations_of_a_logged_in_session_leave_one_indexed_session(
    any_client: Any,
) -> None:
    engine = rotating_engine(any_client)
    old = due_session(engine, _user_id="alice", n=1)
    first, other = loaded(engine, old), loaded(engine, old)
    first["a"] = 1
    other["b"] = 2

    with renewals() as reasons:
        assert engine.commit(first) is Outcome.RENEWED
        assert engine.commit(other) is Outcome.SAVED

    assert reasons == ["rotation"]
    new = first.token
    assert new is not None and other.token == new
    assert values_at(engine, new) == {"_user_id": "alice", "n": 1, "a": 1, "b": 2}
    assert record_kinds(engine) == ["forwarding", "live"]
    assert indexed_ids(engine, "alice") == [store_id(engine, new)]
    assert [info.id for info in SessionAdmin(engine.store).user_sessions("alice")] == [
        engine.session_id(engine.store.key_for(new))
    ]


# 3. A rotation racing destroy().


@pytest.mark.parametrize("user", [None, "alice"], ids=["anonymous", "logged-in"])
def test_a_destroy_before_a_rotation_lands_ends_the_session(
    any_client: Any, user: str | None
) -> None:
    engine = rotating_engine(any_client)
    old = due_session(engine, n=1, **({} if user is None else {"_user_id": user}))
    rotating = loaded(engine, old)
    rotating["a"] = 1
    opened(engine, old).destroy()

    assert engine.commit(rotating) is Outcome.VANISHED

    assert values_at(engine, old) == {}
    assert rotating.token in (None, old)  # no new token was given out
    assert live_sessions(engine) == []
    assert SessionAdmin(engine.store).user_sessions("alice") == []


@pytest.mark.parametrize("read", ["unread", "read-before-the-rotation", "read-after-it"])
def test_a_destroy_with_the_old_token_after_a_rotation_ends_the_session(
    any_client: Any, read: str
) -> None:
    engine = rotating_engine(any_client)
    old = due_session(engine, _user_id="alice", n=1)
    rotating = loaded(engine, old)
    rotating["a"] = 1
    logout = opened(engine, old)
    if read == "read-before-the-rotation":
        assert logout["n"] == 1
    assert engine.commit(rotating) is Outcome.RENEWED
    new = rotating.token
    assert new is not None
    if read == "read-after-it":
        assert logout["a"] == 1

    logout.destroy()

    assert values_at(engine, new) == {}
    assert values_at(engine, old) == {}
    assert live_sessions(engine) == []
    assert SessionAdmin(engine.store).user_sessions("alice") == []


# 4. A rotation racing "log out everywhere".

PURGE_POINTS = ["before-the-save", "between-index-and-write", "between-write-and-confirm", "after"]


@pytest.mark.parametrize("purge_at", PURGE_POINTS)
def test_log_out_everywhere_racing_a_rotation_leaves_no_session(
    any_client: Any, purge_at: str
) -> None:
    engine = rotating_engine(any_client)
    store = engine.store
    assert isinstance(store, SteppingStore)
    admin = SessionAdmin(store)
    other_device = stored(engine, _user_id="alice", device="phone")
    old = due_session(engine, _user_id="alice", n=1)
    rotating = loaded(engine, old)
    rotating["a"] = 1

    def purge() -> None:
        admin.destroy_user_sessions("alice")

    if purge_at == "before-the-save":
        purge()
    elif purge_at == "between-index-and-write":
        store.before_move = purge
    elif purge_at == "between-write-and-confirm":
        store.after_move = purge
    outcome = engine.commit(rotating)
    if purge_at == "after":
        assert outcome is Outcome.RENEWED
        purge()
    else:
        assert outcome is Outcome.VANISHED

    tokens = {token for token in (old, other_device, rotating.token) if token is not None}
    assert {token: values_at(engine, token) for token in tokens} == {token: {} for token in tokens}
    assert live_sessions(engine) == []
    assert admin.user_sessions("alice") == []


def test_log_out_everywhere_ends_a_session_that_the_old_token_follows(any_client: Any) -> None:
    """A purge after the rotation ends it under both tokens, while the grace still runs."""
    engine = rotating_engine(any_client)
    old = due_session(engine, _user_id="alice", n=1)
    rotating = loaded(engine, old)
    assert engine.commit(rotating) is Outcome.RENEWED
    in_flight = loaded(engine, old)  # follows the old token to the rotated session

    assert engine.users.end_all("alice") == 1

    in_flight["a"] = 1
    assert engine.commit(in_flight) is Outcome.VANISHED  # writes nothing back
    assert values_at(engine, old) == {}
    assert rotating.token is not None and values_at(engine, rotating.token) == {}
    assert live_sessions(engine) == []


# 5. A renewal or a login with the old token during the grace.


@pytest.mark.parametrize("read", ["read-before-the-rotation", "read-after-it"])
def test_a_renewal_with_the_old_token_during_the_grace_ends_both_tokens(
    any_client: Any, read: str
) -> None:
    engine = rotating_engine(any_client)
    old = due_session(engine, _user_id="alice", n=1)
    rotating = loaded(engine, old)
    renewing = opened(engine, old)
    if read == "read-before-the-rotation":
        assert renewing["n"] == 1
    rotating["a"] = 1
    assert engine.commit(rotating) is Outcome.RENEWED
    rotated = rotating.token
    assert rotated is not None

    renewing.renew()
    renewing["b"] = 2
    with renewals() as reasons:
        assert engine.commit(renewing) is Outcome.RENEWED

    assert reasons == ["renew"]
    renewed = renewing.token
    assert renewed is not None and renewed not in (old, rotated)
    assert values_at(engine, renewed) == {"_user_id": "alice", "n": 1, "a": 1, "b": 2}
    assert values_at(engine, rotated) == {}
    assert values_at(engine, old) == {}
    assert record_kinds(engine) in (["live"], ["forwarding", "live"])
    assert indexed_ids(engine, "alice") == [store_id(engine, renewed)]


@pytest.mark.parametrize("read", ["read-before-the-rotation", "read-after-it"])
@pytest.mark.parametrize("before", ["anonymous", "another-user"])
def test_a_login_with_the_old_token_during_the_grace_ends_both_tokens(
    any_client: Any, read: str, before: str
) -> None:
    engine = rotating_engine(any_client)
    start = {"cart": ["apple"]} if before == "anonymous" else {"_user_id": "bob", "n": 1}
    old = due_session(engine, **start)
    rotating = loaded(engine, old)
    login = opened(engine, old)
    if read == "read-before-the-rotation":
        assert len(login) > 0
    assert engine.commit(rotating) is Outcome.RENEWED
    rotated = rotating.token
    assert rotated is not None

    login["_user_id"] = "alice"
    with renewals() as reasons:
        assert engine.commit(login) is Outcome.RENEWED

    assert reasons == ["login"]
    logged_in = login.token
    assert logged_in is not None and logged_in not in (old, rotated)
    assert values_at(engine, logged_in) == {**start, "_user_id": "alice"}
    assert values_at(engine, rotated) == {}
    assert values_at(engine, old) == {}
    assert [values["_user_id"] for values in live_sessions(engine)] == ["alice"]
    assert indexed_ids(engine, "alice") == [store_id(engine, logged_in)]
    assert SessionAdmin(engine.store).user_sessions("bob") == []


@pytest.mark.parametrize("change", ["logged-out", "switched-user-without-renewal"])
def test_a_user_taken_out_by_a_request_that_read_before_a_rotation_leaves_their_index(
    any_client: Any, change: str
) -> None:
    """Bob's "log out everywhere" must not end the session once it is no longer his.

    The request read the session under the old token, and its write was
    forwarded to the rotated one: the index entry to leave is the rotated one's.
    """
    renew_on_login = change == "logged-out"
    engine = SessionEngine(
        RedisStore(any_client),
        rotate_every=EVERY,
        rotate_grace=GRACE,
        renew_on_login=renew_on_login,
    )
    old = due_session(engine, _user_id="bob", cart=["apple"])
    slow, rotating = loaded(engine, old), loaded(engine, old)
    assert engine.commit(rotating) is Outcome.RENEWED
    rotated = rotating.token
    assert rotated is not None

    if change == "logged-out":
        del slow["_user_id"]  # as Flask-Login's logout_user() does
    else:
        slow["_user_id"] = "alice"
    assert engine.commit(slow) is Outcome.SAVED
    after = (
        {"cart": ["apple"]} if change == "logged-out" else {"cart": ["apple"], "_user_id": "alice"}
    )
    assert values_at(engine, rotated) == after

    admin = SessionAdmin(engine.store)
    assert admin.user_sessions("bob") == []
    assert admin.destroy_user_sessions("bob") == 0
    assert values_at(engine, rotated) == after
