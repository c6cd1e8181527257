"""The session lifecycle, shared by every adapter: load, commit, renew, destroy.

The engine holds configuration only; each request's state lives on its
:class:`~.session.Session`. It speaks to storage only through
:class:`~.store.RedisStore` and knows nothing of HTTP, so every adapter (the
Flask interface, and any other web adapter) gets the same behaviour.
"""

from __future__ import annotations

import enum
import itertools
import logging
import random
import time
from datetime import timedelta
from typing import Any

from . import codec
from .errors import SessionConflictError, SessionTooLargeError
from .record import Record, pack_record, unpack_record
from .session import Session, Status
from .store import RedisStore, WriteStatus
from .tokens import new_token, token_digest

logger = logging.getLogger("flask_scs_redis")


class Outcome(enum.Enum):
    """What a commit did, which tells the adapter what to do with the cookie."""

    #: The session was never used: nothing was sent to Redis; leave the cookie.
    UNTOUCHED = "untouched"
    #: A new session stayed empty, so nothing was stored; leave the cookie.
    EMPTY = "empty"
    #: The stored values did not change; nothing was written.
    UNCHANGED = "unchanged"
    #: The record was rewritten under the same token.
    SAVED = "saved"
    #: The values were stored under a new token (a new or renewed session).
    CREATED = "created"
    #: The session was destroyed or emptied: remove the cookie.
    ENDED = "ended"
    #: The record disappeared before the save (ended elsewhere or expired),
    #: so nothing was written back; leave the cookie.
    VANISHED = "vanished"


#: Outcomes after which the cookie carries a token that the store knows.
LIVE_OUTCOMES = frozenset({Outcome.UNCHANGED, Outcome.SAVED, Outcome.CREATED})
_WRITTEN = frozenset({Outcome.SAVED, Outcome.CREATED, Outcome.ENDED})


_SCALARS = (str, bytes, int, bool, type(None))
# Compare-and-set attempts before a save queues for the session's write lock.
_OPTIMISTIC_ATTEMPTS = 3
_LOCK_WAIT_SECONDS = 5.0
# How long the lock holder keeps trying; the lock itself lives 2 s.
_LOCK_HOLD_SECONDS = 1.5


def _same(value: Any, other: Any) -> bool:
    """Whether two session values would be stored alike."""
    if type(value) is not type(other):
        return False
    if type(value) in _SCALARS:
        return bool(value == other)
    return codec.encode({0: value}) == codec.encode({0: other})


def _now_ms() -> int:
    return int(time.time() * 1000)


def _milliseconds(duration: timedelta) -> int:
    return int(duration.total_seconds() * 1000)


class SessionEngine:
    """Load and save sessions in a :class:`~.store.RedisStore`.

    ``idle_timeout`` ends a session that goes unused that long (None: never);
    ``max_size`` caps the encoded record in bytes. A save that loses the
    compare-and-set a few times queues for the session's write lock and,
    once it holds it, keeps trying for up to 1.5 s; ``max_attempts`` is the
    least number of attempts it makes before giving up.

    ``user_key`` names the session value that holds the logged-in user (None
    turns the per-user index off). Sessions holding it are indexed under
    that user; with ``renew_on_login`` a change of its value renews the
    token; ``max_sessions_per_user`` destroys a user's oldest sessions past
    that many.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        store: RedisStore,
        *,
        idle_timeout: timedelta | None = None,
        max_size: int = 65536,
        max_attempts: int = 16,
        user_key: str | None = "_user_id",
        renew_on_login: bool = True,
        max_sessions_per_user: int | None = None,
    ) -> None:
        self.store = store
        self.idle_timeout = idle_timeout
        self.max_size = max_size
        self.max_attempts = max_attempts
        self.user_key = user_key
        self.renew_on_login = renew_on_login
        self.max_sessions_per_user = max_sessions_per_user
        self._idle_ms = None if idle_timeout is None else _milliseconds(idle_timeout)

    def open(
        self, cookie_token: str | None, *, lifetime: timedelta, permanent_default: bool = False
    ) -> Session:
        """Return the session for a request whose cookie held ``cookie_token``.

        Nothing is read yet. ``cookie_token`` must be well formed (see
        :func:`~.tokens.is_well_formed`) or None.
        """
        return Session(
            self,
            cookie_token,
            lifetime_ms=_milliseconds(lifetime),
            permanent_default=permanent_default,
        )

    def load(self, session: Session) -> None:
        """Read the session's record: one GET, or one GETEX that slides the idle timeout."""
        token = session._cookie_token
        if token is None:
            self._start_new(session, Status.LOADED)
            return
        key = self.store.key_for(token)
        now = _now_ms()
        idle_expiry = None if self._idle_ms is None else now + self._idle_ms
        blob = self.store.find(key, idle_expiry_ms=idle_expiry)
        found = None if blob is None else self._read(blob, token, key)
        if found is None or found[0].deadline_ms <= now:
            self._start_new(session, Status.LOADED)
            return
        record, values = found
        dict.update(session, values)
        session._token = token
        session._key = key
        self._adopt(session, record)
        session._indexed_user = self._user_of(values)
        session._expiry_ms = (
            record.deadline_ms if idle_expiry is None else min(record.deadline_ms, idle_expiry)
        )
        session._status = Status.LOADED

    def destroy(self, session: Session) -> None:
        """Delete the session's record now and start it over, empty and tokenless.

        The delete is unconditional: a logout wins over any write in flight.
        """
        if session._status is Status.UNLOADED:
            token = session._cookie_token
            key = None if token is None else self.store.key_for(token)
        else:
            key = session._key
        if key is not None:
            user = session._indexed_user
            if session._status is Status.UNLOADED and self.user_key is not None:
                # Not read yet: GETDEL tells whose index to clean in the same command.
                user = self._user_in(self.store.take(key))
            else:
                self.store.delete(key)
            if user is not None:
                self.store.index_remove(user, self.store.id_of(key))
        dict.clear(session)
        self._start_new(session, Status.DESTROYED)

    def commit(self, session: Session) -> Outcome:
        """Save what the request did to the session.

        A stored session is written with compare-and-set against the revision
        the request read. If another request wrote first, this request's own
        changes (the keys it set or deleted) are applied to what that request
        left, and the write is tried again, up to ``max_attempts`` times. A
        session that another request destroyed or renewed meanwhile is not
        written back.

        :raises UnsupportedValueError: a value cannot be encoded.
        :raises SessionTooLargeError: the record would exceed ``max_size``;
            the stored record is left as it was.
        :raises SessionConflictError: the record kept changing under us.
        :raises SessionStoreError: the store failed.
        """
        if session._status is Status.UNLOADED:
            return Outcome.UNTOUCHED
        indexed = (session._indexed_user, session._key)
        if self._logged_in(session):
            session._status = Status.RENEWED  # a new token for a new user: no fixation
        outcome = self._commit_values(session)
        if self.user_key is not None:
            self._reindex(session, outcome, *indexed)
        return outcome

    def _user_of(self, values: dict[Any, Any]) -> str | None:
        user = values.get(self.user_key) if self.user_key is not None else None
        return None if user is None else str(user)

    def _user_in(self, blob: bytes | None) -> str | None:
        """The user a record holds, or None if it holds none or cannot be read."""
        if blob is None:
            return None
        try:
            return self._user_of(codec.decode(unpack_record(blob).values))
        except ValueError:
            return None

    def _logged_in(self, session: Session) -> bool:
        """Whether the request put a different user into a stored session."""
        if not (self.renew_on_login and session._status is Status.LOADED and session._token):
            return False
        user = self._user_of(session)
        return user is not None and user != session._indexed_user

    def _reindex(
        self, session: Session, outcome: Outcome, user: str | None, key: str | None
    ) -> None:
        """Keep the per-user index in step with what the commit did."""
        if outcome not in _WRITTEN:
            return
        live = outcome is not Outcome.ENDED
        new_user = self._user_of(session) if live else None
        new_key = session._key if live else None
        if user is not None and key is not None and (user, key) != (new_user, new_key):
            self.store.index_remove(user, self.store.id_of(key))
        if new_user is not None and new_key is not None and (user, key) != (new_user, new_key):
            evicted = self.store.index_add(
                new_user,
                self.store.id_of(new_key),
                deadline_ms=session._deadline_ms,
                keep_at_most=self.max_sessions_per_user,
            )
            self.store.delete_many([self.store.prefix + session_id for session_id in evicted])
        session._indexed_user = new_user

    def _commit_values(self, session: Session) -> Outcome:
        changes = None
        locked: tuple[str, str] | None = None
        hold_until = 0.0
        try:
            for attempt in itertools.count(1):
                outcome, current = self._try_commit(session)
                if outcome is not None:
                    session.modified = outcome in _WRITTEN
                    return outcome
                assert current is not None and session._key is not None
                if changes is None:
                    changes = self._own_changes(session)
                if not self._rebase(session, current, changes):
                    session.modified = False
                    return Outcome.VANISHED
                if locked is None and attempt >= _OPTIMISTIC_ATTEMPTS:
                    # Busy session: queue for its lock, so saves land one at a time.
                    locked = (session._key, self._wait_for_lock(session._key))
                    hold_until = time.monotonic() + _LOCK_HOLD_SECONDS
                elif attempt >= self.max_attempts and time.monotonic() > hold_until:
                    break
        finally:
            if locked is not None:
                self.store.unlock(*locked)
        raise SessionConflictError(
            f"the session changed under {self.max_attempts} attempts to save it"
        )

    def _wait_for_lock(self, key: str) -> str:
        deadline = time.monotonic() + _LOCK_WAIT_SECONDS
        while True:
            holder = self.store.lock(key)
            if holder is not None:
                return holder
            if time.monotonic() > deadline:
                raise SessionConflictError("timed out waiting to save a busy session")
            time.sleep(random.uniform(0.001, 0.005))  # noqa: S311 - jitter, not secrecy

    def _try_commit(self, session: Session) -> tuple[Outcome | None, bytes | None]:
        """Attempt one write; return its outcome, or None and the record that won."""
        status = session._status
        if not dict.__len__(session):
            return self._commit_empty(session)
        values = codec.encode(dict.copy(session))
        if status is Status.LOADED and session._token is not None:
            if values == session._stored_values and (
                session._description == session._stored_description
            ):
                return Outcome.UNCHANGED, None
            return self._replace(session, values)
        if status is Status.RENEWED:
            return self._move(session, values)
        return self._create(session, values), None

    def _commit_empty(self, session: Session) -> tuple[Outcome | None, bytes | None]:
        if session._key is None:  # nothing stored: a new session, or one destroyed here
            ended = session._status is Status.DESTROYED
            self._start_new(session, Status.LOADED)
            return (Outcome.ENDED if ended else Outcome.EMPTY), None
        status, current = self.store.remove(session._key, expected=session._tag)
        if status is WriteStatus.CONFLICT:
            return None, current
        self._start_new(session, Status.LOADED)
        return (Outcome.ENDED if status is WriteStatus.DONE else Outcome.VANISHED), None

    def _replace(self, session: Session, values: bytes) -> tuple[Outcome | None, bytes | None]:
        assert session._key is not None
        now = _now_ms()
        record, tag = self._record(session, session._revision + 1, values, now)
        expiry = self._expiry(session, now)
        status, current = self.store.replace(session._key, record, expiry, expected=session._tag)
        if status is WriteStatus.CONFLICT:
            return None, current
        if status is WriteStatus.GONE:
            logger.info(
                "session %s… ended before this request saved it; not written back",
                token_digest(session._token or "")[:12],
            )
            return Outcome.VANISHED, None
        self._written(session, session._revision + 1, tag, values, now, expiry)
        return Outcome.SAVED, None

    def _move(self, session: Session, values: bytes) -> tuple[Outcome | None, bytes | None]:
        assert session._key is not None
        now = _now_ms()
        session._deadline_ms = now + session._lifetime_ms  # renewal starts a new lifetime
        record, tag = self._record(session, 1, values, now)
        expiry = self._expiry(session, now)
        if session._renewed_token is None:
            session._renewed_token = new_token()
        new_key = self.store.key_for(session._renewed_token)
        status, current = self.store.move(
            session._key,
            expected=session._tag,
            new_key=new_key,
            record=record,
            expiry_ms=expiry,
        )
        if status is WriteStatus.CONFLICT:
            return None, current
        if status is WriteStatus.GONE:
            # The old session was ended elsewhere: the copy must not outlive it.
            self.store.delete(new_key)
            return Outcome.VANISHED, None
        session._token = session._renewed_token
        session._renewed_token = None
        session._key = new_key
        self._written(session, 1, tag, values, now, expiry)
        return Outcome.CREATED, None

    def _create(self, session: Session, values: bytes) -> Outcome:
        now = _now_ms()
        record, tag = self._record(session, 1, values, now)
        expiry = self._expiry(session, now)
        while True:
            token = new_token()
            key = self.store.key_for(token)
            # NX guards against reusing a live token; with 256 random bits a
            # second try is never expected, but it costs nothing to be sure.
            if self.store.create(key, record, expiry):
                break
        session._token = token
        session._key = key
        self._written(session, 1, tag, values, now, expiry)
        return Outcome.CREATED

    def _own_changes(self, session: Session) -> tuple[dict[Any, Any], set[Any]]:
        """Return what this request set, and which keys it deleted, since the session was read."""
        loaded = codec.decode(session._stored_values or b"\x80")
        mine = dict.copy(session)
        written = {
            key: value
            for key, value in mine.items()
            if key not in loaded or not _same(value, loaded[key])
        }
        return written, loaded.keys() - mine.keys()

    def _rebase(
        self, session: Session, current: bytes, changes: tuple[dict[Any, Any], set[Any]]
    ) -> bool:
        """Apply this request's own changes to the record another request wrote.

        Return False when that record cannot be read (then nothing is saved).
        """
        assert session._token is not None and session._key is not None
        found = self._read(current, session._token, session._key)
        if found is None:
            return False
        record, merged = found
        written, deleted = changes
        for key in deleted:
            merged.pop(key, None)
        merged.update(written)
        dict.clear(session)
        dict.update(session, merged)
        self._adopt(session, record)
        return True

    def _read(self, blob: bytes, token: str, key: str) -> tuple[Record, dict[Any, Any]] | None:
        """Return the record in ``blob`` and its values; delete and log it if unreadable."""
        try:
            record = unpack_record(blob)
            values = codec.decode(record.values)
        except ValueError as exc:
            logger.warning(
                "deleted an unreadable session record (token %s…): %s",
                token_digest(token)[:12],
                exc,
            )
            self.store.delete(key)
            return None
        return record, values

    def _adopt(self, session: Session, record: Record) -> None:
        session._revision = record.revision
        session._tag = record.tag
        session._stored_values = record.values
        session._deadline_ms = record.deadline_ms
        session._created_ms = record.created_ms
        session._last_seen_ms = record.last_seen_ms
        if session._description == session._stored_description:
            session._description = record.description  # unless this request set its own
        session._stored_description = record.description

    def _written(
        self, session: Session, revision: int, tag: bytes, values: bytes, now: int, expiry: int
    ) -> None:
        session._revision = revision
        session._tag = tag
        session._stored_values = values
        session._stored_description = session._description
        session._last_seen_ms = now
        session._expiry_ms = expiry
        session._status = Status.LOADED

    def _record(
        self, session: Session, revision: int, values: bytes, now: int
    ) -> tuple[bytes, bytes]:
        record = Record(
            revision,
            session._deadline_ms,
            session._created_ms,
            values,
            last_seen_ms=now,
            description=session._description,
        )
        blob, tag = pack_record(record)
        if len(blob) > self.max_size:
            raise SessionTooLargeError(len(blob), self.max_size)
        return blob, tag

    def _expiry(self, session: Session, now: int) -> int:
        if self._idle_ms is None:
            return session._deadline_ms
        return min(session._deadline_ms, now + self._idle_ms)

    def _start_new(self, session: Session, status: Status) -> None:
        now = _now_ms()
        session._token = None
        session._key = None
        session._revision = 0
        session._tag = b""
        session._renewed_token = None
        session._stored_values = None
        session._stored_description = None
        session._description = None
        session._indexed_user = None
        session._created_ms = now
        session._last_seen_ms = now
        session._deadline_ms = now + session._lifetime_ms
        session._expiry_ms = self._expiry(session, now)
        session._status = status
