"""The session lifecycle, shared by every adapter: load, commit, renew, destroy.

The engine holds configuration only; each request's state lives on its
:class:`~.session.Session`. It speaks to storage only through
:class:`~.store.RedisStore` and knows nothing of HTTP, so every adapter (the
Flask interface, and any other web adapter) gets the same behaviour.
"""

from __future__ import annotations

import enum
import logging
import time
from datetime import timedelta

from . import codec
from .errors import SessionTooLargeError
from .record import CorruptRecordError, Record, pack_record, unpack_record
from .session import Session, Status
from .store import RedisStore
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


def _now_ms() -> int:
    return int(time.time() * 1000)


def _milliseconds(duration: timedelta) -> int:
    return int(duration.total_seconds() * 1000)


class SessionEngine:
    """Load and save sessions in a :class:`~.store.RedisStore`.

    ``idle_timeout`` ends a session that goes unused that long (None: never);
    ``max_size`` caps the encoded record in bytes.

    .. versionadded:: 0.1
    """

    def __init__(
        self, store: RedisStore, *, idle_timeout: timedelta | None = None, max_size: int = 65536
    ) -> None:
        self.store = store
        self.idle_timeout = idle_timeout
        self.max_size = max_size
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
        if blob is None:
            self._start_new(session, Status.LOADED)
            return
        try:
            record = unpack_record(blob)
            values = codec.decode(record.values)
        except (CorruptRecordError, ValueError) as exc:
            logger.warning(
                "ignoring an unreadable session record (token %s…): %s",
                token_digest(token)[:12],
                exc,
            )
            self._start_new(session, Status.LOADED)
            return
        if record.deadline_ms <= now:
            self._start_new(session, Status.LOADED)
            return
        dict.update(session, values)
        session._token = token
        session._key = key
        session._stored_values = record.values
        session._deadline_ms = record.deadline_ms
        session._created_ms = record.created_ms
        session._expiry_ms = (
            record.deadline_ms if idle_expiry is None else min(record.deadline_ms, idle_expiry)
        )
        session._status = Status.LOADED

    def destroy(self, session: Session) -> None:
        """Delete the session's record now and start it over, empty and tokenless."""
        if session._status is Status.UNLOADED:
            token = session._cookie_token
            key = None if token is None else self.store.key_for(token)
        else:
            key = session._key
        if key is not None:
            self.store.delete(key)
        dict.clear(session)
        self._start_new(session, Status.DESTROYED)

    def commit(self, session: Session) -> Outcome:
        """Save what the request did to the session, in at most one round trip.

        :raises UnsupportedValueError: a value cannot be encoded.
        :raises SessionTooLargeError: the record would exceed ``max_size``;
            the stored record is left as it was.
        :raises SessionStoreError: the store failed.
        """
        status = session._status
        if status is Status.UNLOADED:
            return Outcome.UNTOUCHED
        if not dict.__len__(session):
            return self._commit_empty(session)
        values = codec.encode(dict.copy(session))
        if (
            status is Status.LOADED
            and session._token is not None
            and values == session._stored_values
        ):
            session.modified = False
            return Outcome.UNCHANGED

        now = _now_ms()
        replaces = None
        if session._token is None or status is Status.RENEWED:
            replaces = session._key
            if status is Status.RENEWED:
                session._deadline_ms = now + session._lifetime_ms
            outcome = self._write_new(session, values, now, replaces)
        else:
            outcome = self._write(session, values, now)
        session._stored_values = values
        session._status = Status.LOADED
        session.modified = outcome is not Outcome.VANISHED
        return outcome

    def _commit_empty(self, session: Session) -> Outcome:
        if session._key is not None:
            self.store.delete(session._key)
        ended = session._key is not None or session._status is Status.DESTROYED
        self._start_new(session, Status.LOADED)
        session.modified = ended
        return Outcome.ENDED if ended else Outcome.EMPTY

    def _record(self, session: Session, values: bytes) -> bytes:
        record = pack_record(Record(session._deadline_ms, session._created_ms, values))
        if len(record) > self.max_size:
            raise SessionTooLargeError(len(record), self.max_size)
        return record

    def _expiry(self, session: Session, now: int) -> int:
        if self._idle_ms is None:
            return session._deadline_ms
        return min(session._deadline_ms, now + self._idle_ms)

    def _write(self, session: Session, values: bytes, now: int) -> Outcome:
        assert session._key is not None
        record = self._record(session, values)
        expiry = self._expiry(session, now)
        if not self.store.commit(session._key, record, expiry):
            logger.info(
                "session %s… ended before this request saved it; not written back",
                token_digest(session._token or "")[:12],
            )
            return Outcome.VANISHED
        session._expiry_ms = expiry
        return Outcome.SAVED

    def _write_new(
        self, session: Session, values: bytes, now: int, replaces: str | None
    ) -> Outcome:
        record = self._record(session, values)
        expiry = self._expiry(session, now)
        while True:
            token = new_token()
            key = self.store.key_for(token)
            # NX guards against reusing a live token; with 256 random bits a
            # second try is never expected, but it costs nothing to be sure.
            if self.store.commit(key, record, expiry, new=True, replaces=replaces):
                break
            replaces = None
        session._token = token
        session._key = key
        session._expiry_ms = expiry
        return Outcome.CREATED

    def _start_new(self, session: Session, status: Status) -> None:
        now = _now_ms()
        session._token = None
        session._key = None
        session._stored_values = None
        session._created_ms = now
        session._deadline_ms = now + session._lifetime_ms
        session._expiry_ms = self._expiry(session, now)
        session._status = status
