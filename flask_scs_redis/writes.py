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
from .rotation import MOST_HOPS, follow, forwarding_record
from .scripts import WriteStatus
from .sealing import Sealer
from .signals import Announcer
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
    #: A record read, its values, and the token and key it was found at.
    Found = tuple[Record, dict[Any, Any], str, str]


class Writer:
    """Write session records in ``store``, at most ``max_size`` bytes each.

    Each key's expiry is set by the session's deadline and idle timeout,
    which its state holds. With a ``sealer`` the values are sealed under
    each session's token, and a record stored otherwise is rewritten at its next save.
    A rotated token is left a forwarding record for ``grace_ms`` (see :mod:`.rotation`).
    """

    def __init__(
        self,
        store: RedisStore,
        max_size: int,
        sealer: Sealer | None = None,
        *,
        grace_ms: int = 0,
        announcer: Announcer | None = None,
    ) -> None:
        self.store = store
        self.max_size = max_size
        self.sealer = sealer
        self.grace_ms = grace_ms
        self.announcer = announcer or Announcer(self, store.keys.public_id)

    def attempt(self, state: SessionState, values: dict[Any, Any], fresh_token: str) -> Attempt:
        """Make the one write that saves ``values``.

        A new session is created, and a renewed one moved, at ``fresh_token``.
        """
        if not values:
            return self._remove(state)
        encoded = encode(values)
        if state.status is Status.LOADED and state.token is not None:
            if self._unchanged(state, encoded):
                return Outcome.UNCHANGED, state, None
            return self._replace(state, encoded)
        if state.status is Status.RENEWED or state.status is Status.ROTATING:
            return self._move(state, encoded, fresh_token)
        return self._create(state, encoded, fresh_token)

    def excuses(self, state: SessionState, values: dict[Any, Any], error: Exception) -> bool:
        """Tell whether a save of ``values`` that failed with ``error`` may pass, and log it.

        It may when it would only have rewritten the record as the store
        keeps records now (see :mod:`.sealing`), or rotated its token (see
        :mod:`.rotation`): nothing of the session changed, so a read must not
        fail where the store refuses writes (out of memory, a read-only
        replica). The token stays as it was; the next request tries again.
        """
        rotating = state.status is Status.ROTATING
        if not ((state.rewrite or rotating) and self._as_stored(state, encode(values))):
            return False
        logger.warning(
            "a session was read but not %s: %s",
            "given a new token" if rotating else "rewritten as it is stored now",
            error,
        )
        return True

    def unchanged(self, state: SessionState, values: dict[Any, Any]) -> bool:
        """Whether saving ``values`` would write nothing: a stored session only read."""
        return (
            state.status is Status.LOADED
            and bool(values)
            and self._unchanged(state, encode(values))
        )

    def _unchanged(self, state: SessionState, encoded: bytes) -> bool:
        """Whether writing ``encoded`` for a loaded session would write nothing."""
        return (
            state.status is Status.LOADED and not state.rewrite and self._as_stored(state, encoded)
        )

    @staticmethod
    def _as_stored(state: SessionState, encoded: bytes) -> bool:
        """Whether saving ``encoded`` would change nothing of the session stored for ``state``.

        A token due for rotation changes nothing of the session either.
        """
        return (
            (state.status is Status.LOADED or state.status is Status.ROTATING)
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
            if self.store.delete(key):
                self.announcer.destroyed(key, None, "corrupt")
            return None

    def resolve(
        self, blob: bytes | None, token: str, key: str, *, idle_expiry_ms: int | None = None
    ) -> Found | None:
        """Read ``blob``, found at ``key``, following a rotated token's forwarding record.

        Return the record, its values, and the token and key they are at; None
        for no session. A record a forwarding record leads to is read with the
        read script, which slides it by ``idle_expiry_ms`` (see :mod:`.rotation`).
        """
        for _ in range(MOST_HOPS):
            found = None if blob is None else self.read(blob, token, key)
            if found is None:
                return None
            if found[0].forward is None:
                return found[0], found[1], token, key
            next_token = follow(found[0], token, now_ms())
            if next_token is None:
                return None
            token, key = next_token, self.store.key_for(next_token)
            blob = self.store.find(key, idle_expiry_ms=idle_expiry_ms, sliding=True)
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
        assert state.key is not None and state.token is not None
        new_key = self.store.key_for(token)
        now = now_ms()
        blob, written = self._draft(state, 1, encoded, state.saved_deadline_ms(now), token, new_key)
        leave = None
        if state.status is Status.ROTATING and self.grace_ms:
            stub = forwarding_record(
                revision=state.revision + 1,
                created_ms=state.created_ms,
                deadline_ms=state.deadline_ms,
                old_token=state.token,
                new_token=token,
                now_ms=now,
                grace_ms=self.grace_ms,
            )
            leave = (pack_record(stub)[0], stub.deadline_ms)
        write = self.store.move(
            state.key,
            expected=state.tag,
            new_key=new_key,
            record=blob,
            expiry_ms=written.expiry_ms,
            leave=leave,
        )
        if write.status is WriteStatus.CONFLICT:
            return None, state, write.current
        if write.status is WriteStatus.GONE:  # ended elsewhere; the move wrote nothing
            return Outcome.VANISHED, state, None
        return Outcome.RENEWED, written, None

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
            issued_ms=state.issued_ms if token == state.token else now,
        )
        blob, tag = pack_record(record, self.sealer, token)
        if len(blob) > self.max_size:
            raise SessionTooLargeError(len(blob), self.max_size)
        written = state.stored(record, tag, token=token, key=key, now_ms=now, user=state.user)
        return blob, written
