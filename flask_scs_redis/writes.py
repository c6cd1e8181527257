"""One attempt at saving a session: a single conditional write of its record.

A new session is created with SET NX, a changed one replaced with a
compare-and-set, a renewed one moved to its new token, and an emptied one
removed with a compare-and-delete. When another request wrote first, the
attempt returns the record that won, and the engine decides what to do next.
"""

from __future__ import annotations

import logging
import random
import time
from typing import TYPE_CHECKING, Any, Optional

from . import codec
from .clock import now_ms
from .codec import encode
from .errors import SessionConflictError, SessionTooLargeError
from .record import CorruptRecordError, Record, pack_record, read_record
from .scripts import WriteStatus
from .sealing import Sealer
from .state import Outcome, SessionState, Status
from .store import RedisStore
from .tokens import new_token, token_digest

logger = logging.getLogger("flask_scs_redis")

#: How long the record of an emptied session stays, empty, for requests in flight.
EMPTIED_GRACE_MS = 60_000
# How long a save queues for a busy session's write lock.
_LOCK_WAIT_SECONDS = 5.0


if TYPE_CHECKING:
    #: One try at a write: its outcome, the state it left, and the record another
    #: request wrote first, which is there when and only when the outcome is None.
    #: A plain tuple, as it is made twice in every request.
    Attempt = tuple[Optional[Outcome], SessionState, Optional[bytes]]


class Writer:
    """Write session records in ``store``, at most ``max_size`` bytes each.

    Each key's expiry is set by the session's deadline and idle timeout,
    which its state holds. With a ``sealer`` the values are sealed under
    each session's token, and a record stored otherwise is rewritten at its next save.
    """

    def __init__(self, store: RedisStore, max_size: int, sealer: Sealer | None = None) -> None:
        self.store = store
        self.max_size = max_size
        self.sealer = sealer

    def attempt(self, state: SessionState, values: dict[Any, Any], fresh_token: str) -> Attempt:
        """Make the one write that saves ``values``.

        A new session is created, and a renewed one moved, at ``fresh_token``.
        """
        if not values:
            return self._remove(state)
        encoded = encode(values)
        if state.status is Status.LOADED and state.token is not None:
            if self._as_stored(state, encoded) and not state.rewrite:
                return Outcome.UNCHANGED, state, None
            return self._replace(state, encoded)
        if state.status is Status.RENEWED:
            return self._move(state, encoded, fresh_token)
        return self._create(state, encoded, fresh_token)

    def excuses(self, state: SessionState, values: dict[Any, Any], error: Exception) -> bool:
        """Tell whether a save of ``values`` that failed with ``error`` may pass, and log it.

        It may when it would only have rewritten the record as the store
        keeps records now (see :mod:`.sealing`): nothing of the session
        changed, so a read must not fail where the store refuses writes
        (out of memory, a read-only replica). The next request tries again.
        """
        if not (state.rewrite and self._as_stored(state, encode(values))):
            return False
        logger.warning("a session was read but not rewritten as it is stored now: %s", error)
        return True

    @staticmethod
    def _as_stored(state: SessionState, encoded: bytes) -> bool:
        """Whether saving ``encoded`` would change nothing of the session stored for ``state``."""
        return (
            state.status is Status.LOADED
            and state.token is not None
            and encoded == state.stored_values
            and not state.expiry_set
            and state.description == state.stored_description
        )

    def check(self, state: SessionState, values: dict[Any, Any]) -> None:
        """Check that ``values`` could be written as a new record of ``state``.

        :raises UnsupportedValueError: a value cannot be encoded.
        :raises SessionTooLargeError: the record would exceed ``max_size``.
        """
        self._draft(state, 1, encode(values), state.deadline_ms, "", "")

    def read(self, blob: bytes, token: str, key: str) -> tuple[Record, dict[Any, Any]] | None:
        """Return the record in ``blob``, read at ``key``, and its values.

        An unreadable record is deleted and logged (never its token), and None returned.
        """
        try:
            return read_record(blob, self.sealer, token)
        except CorruptRecordError as exc:
            logger.warning(
                "deleted an unreadable session record (token %s…): %s",
                token_digest(token)[:12],
                exc,
            )
            self.store.delete(key)
            return None

    def lock(self, key: str) -> str:
        """Queue for the write lock of the session at ``key``; return the holder's id.

        :raises SessionConflictError: it was not free within 5 s.
        """
        deadline = time.monotonic() + _LOCK_WAIT_SECONDS
        while True:
            holder = self.store.lock(key)
            if holder is not None:
                return holder
            if time.monotonic() > deadline:
                raise SessionConflictError("timed out waiting to save a busy session")
            time.sleep(random.uniform(0.001, 0.005))  # noqa: S311 - jitter, not secrecy

    def destination(
        self, state: SessionState, values: dict[Any, Any], fresh_token: str
    ) -> str | None:
        """The key at which :meth:`attempt` leaves ``values`` a live session.

        None for empty values: the session ends (an emptied record is no
        session). Known before the write, so the user index can be kept
        ahead of it.
        """
        if not values:
            return None
        if state.status is Status.LOADED and state.token is not None:
            return state.key
        return self.store.key_for(fresh_token)

    def _remove(self, state: SessionState) -> Attempt:
        """End a session that the request emptied.

        Its record is not deleted but rewritten empty, to expire within
        :data:`EMPTIED_GRACE_MS`: a request still in flight with its cookie
        then meets a changed record, merges its own change into it and lands,
        where a deleted record would have made it vanish.
        """
        if state.key is None:  # nothing stored: a new session, or one destroyed here
            outcome = Outcome.ENDED if state.status is Status.DESTROYED else Outcome.EMPTY
        elif state.stored_values == codec.EMPTY:
            outcome = Outcome.EMPTY  # already emptied by another request
        else:
            token = state.token
            assert token is not None
            blob, written = self._draft(
                state, state.revision + 1, codec.EMPTY, state.deadline_ms, token, state.key
            )
            expiry_ms = min(written.expiry_ms, now_ms() + EMPTIED_GRACE_MS)
            write = self.store.replace(state.key, blob, expiry_ms, expected=state.tag)
            if write.status is WriteStatus.CONFLICT:
                return None, state, write.current
            outcome = Outcome.ENDED if write.status is WriteStatus.DONE else Outcome.VANISHED
        return outcome, state.started(Status.LOADED, now_ms()), None

    def _replace(self, state: SessionState, encoded: bytes) -> Attempt:
        token, key = state.token, state.key
        assert token is not None and key is not None
        blob, written = self._draft(
            state, state.revision + 1, encoded, state.deadline_ms, token, key
        )
        write = self.store.replace(key, blob, written.expiry_ms, expected=state.tag)
        if write.status is WriteStatus.CONFLICT:
            return None, state, write.current
        if write.status is WriteStatus.GONE:
            logger.info(
                "session %s… ended before this request saved it; not written back",
                token_digest(token)[:12],
            )
            return Outcome.VANISHED, state, None
        return Outcome.SAVED, written, None

    def _move(self, state: SessionState, encoded: bytes, token: str) -> Attempt:
        assert state.key is not None
        new_key = self.store.key_for(token)
        # Renewal starts a new lifetime.
        deadline_ms = now_ms() + state.span_ms
        blob, written = self._draft(state, 1, encoded, deadline_ms, token, new_key)
        write = self.store.move(
            state.key, expected=state.tag, new_key=new_key, record=blob, expiry_ms=written.expiry_ms
        )
        if write.status is WriteStatus.CONFLICT:
            return None, state, write.current
        if write.status is WriteStatus.GONE:  # ended elsewhere; the move wrote nothing
            return Outcome.VANISHED, state, None
        return Outcome.CREATED, written, None

    def _create(self, state: SessionState, encoded: bytes, token: str) -> Attempt:
        while True:
            key = self.store.key_for(token)
            blob, written = self._draft(state, 1, encoded, state.deadline_ms, token, key)
            # NX guards against reusing a live token; with 256 random bits a
            # second try is never expected, but it costs nothing to be sure.
            if self.store.create(key, blob, written.expiry_ms):
                return Outcome.CREATED, written, None
            token = new_token()

    def _draft(
        self,
        state: SessionState,
        revision: int,
        encoded: bytes,
        deadline_ms: int,
        token: str,
        key: str,
    ) -> tuple[bytes, SessionState]:
        """Return the record to write now at ``key``, and the state once it is written.

        :raises SessionTooLargeError: the record is over ``max_size``.
        """
        now = now_ms()
        record = Record(
            revision,
            deadline_ms,
            state.created_ms,
            encoded,
            last_seen_ms=now,
            description=state.description,
            lifetime_ms=state.own_lifetime_ms,
            idle_ms=state.own_idle_ms,
        )
        blob, tag = pack_record(record, self.sealer, token)
        if len(blob) > self.max_size:
            raise SessionTooLargeError(len(blob), self.max_size)
        written = state.stored(record, tag, token=token, key=key, now_ms=now, user=state.user)
        return blob, written
