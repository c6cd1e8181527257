"""Saving a session: write it, merged into any concurrent write, with its user's index in step.

:class:`Saver` repeats :class:`~.writes.Writer` attempts until one lands. A
write that loses the compare-and-set to another request's write applies this
request's own changes to what that request left and tries again; one that
meets a rotated token's forwarding record follows it and writes the new
record (see :mod:`.rotation`).
"""

from __future__ import annotations

import itertools
import time
from typing import Any, Optional

from .changes import Changes, changes_since
from .clock import now_ms
from .errors import SessionConflictError
from .rotation import MOST_HOPS
from .state import Outcome, SessionState
from .store import RedisStore
from .users import Purged, UserIndex
from .writes import Writer

#: Outcomes after which a record was written, or emptied.
WRITTEN = frozenset({Outcome.SAVED, Outcome.CREATED, Outcome.RENEWED, Outcome.ENDED})

# Compare-and-set attempts before a save queues for the session's write lock.
_OPTIMISTIC_ATTEMPTS = 3
# How long the lock holder keeps trying; the lock itself lives 2 s.
_LOCK_HOLD_SECONDS = 1.5

#: A save's outcome, the state it left, the values as saved, and the key the
#: session was at when the write landed (a renewal's or rotation's old key).
Saved = tuple[Outcome, SessionState, dict[Any, Any], Optional[str]]


class Saver:
    """Save sessions with ``writer``, keeping ``users`` (the per-user index) in step.

    A save that loses the compare-and-set a few times queues for the
    session's write lock and, once it holds it, keeps trying for up to 1.5 s;
    it makes at least ``min_attempts`` attempts before it gives up.
    """

    def __init__(
        self, store: RedisStore, writer: Writer, users: UserIndex, min_attempts: int
    ) -> None:
        self.store = store
        self.writer = writer
        self.users = users
        self.min_attempts = min_attempts

    def save(self, state: SessionState, values: dict[Any, Any], fresh_token: str) -> Saved:
        """Write ``values``; a new or renewed session goes to ``fresh_token``.

        :raises SessionConflictError: the record kept changing under us.
        """
        if self.users.user_key is None:
            return self._merged(state, values, fresh_token)
        return self._indexed(state, values, fresh_token, MOST_HOPS)

    def _indexed(
        self, state: SessionState, values: dict[Any, Any], fresh_token: str, hops: int
    ) -> Saved:
        """Save, keeping the user index in step: enter first, write, then settle.

        See :mod:`.users` for why this order means no session outlives a
        "log out everywhere" that overlaps its write.
        """
        before = (state.user, state.key)
        user = self.users.user_of(values)
        key = self.writer.destination(state, values, fresh_token)
        deadline_ms = state.saved_deadline_ms(now_ms())
        try:
            rescore = state.expiry_set or state.rewrite  # a rewrite re-enters the current name
            entry = self.users.enter(before, (user, key), deadline_ms, rescore=rescore)
        except Purged:
            forwarded = self._forwarded(state, values) if hops else None
            if forwarded is not None:  # not purged: another request rotated the token
                return self._indexed(*forwarded, fresh_token, hops - 1)
            assert state.key is not None
            # Finish what the purge started: whichever deletes the record announces it.
            self.users.end(state.key, state.token, reason="logout-everywhere")
            return Outcome.VANISHED, state, values, None
        try:
            outcome, saved_state, saved, was_at = self._merged(state, values, fresh_token)
        except BaseException:
            if entry is not None:
                self.users.withdraw(entry)
            raise
        if outcome not in WRITTEN:
            if entry is not None:
                self.users.withdraw(entry)
            return outcome, saved_state, saved, was_at
        if was_at is not None and was_at != before[1]:
            before = (before[0], was_at)  # written where another request's rotation led
        after = (self.users.user_of(saved), saved_state.key)
        if not self.users.written(entry, before, after, saved_state.deadline_ms):
            return Outcome.VANISHED, state, values, None  # its user's sessions were ended meanwhile
        if after[0] != saved_state.user:
            saved_state = saved_state._replace(user=after[0])
        return outcome, saved_state, saved, was_at

    def _forwarded(
        self, state: SessionState, values: dict[Any, Any]
    ) -> tuple[SessionState, dict[Any, Any]] | None:
        """Where another request's rotation moved the session, with this request's changes."""
        token, key = state.token, state.key
        assert token is not None and key is not None
        found = self.writer.resolve(self.store.find(key), token, key)
        if found is None or found[2] == token:
            return None
        record, theirs, new_token, new_key = found
        changes = changes_since(state.stored_values, values)
        return state.forwarded(record, new_token, new_key), changes.applied_to(theirs)

    def _merged(self, state: SessionState, values: dict[Any, Any], fresh_token: str) -> Saved:
        """Write ``values``, merged into any concurrent write."""
        changes: Changes | None = None
        locked: tuple[str, str] | None = None
        hold_until = 0.0
        try:
            for attempt in itertools.count(1):
                outcome, written, current = self.writer.attempt(state, values, fresh_token)
                if outcome is not None:
                    return outcome, written, values, state.key
                token, key = state.token, state.key
                assert current is not None and token is not None and key is not None
                if changes is None:
                    changes = changes_since(state.stored_values, values)
                found = self.writer.resolve(current, token, key)
                if found is None:
                    return Outcome.VANISHED, state, values, None
                record, theirs, found_token, found_key = found
                values = changes.applied_to(theirs)
                if found_token == token:
                    state = state.rebased(record)
                else:  # another request rotated the token: write where it went
                    state = state.forwarded(record, found_token, found_key)
                if locked is None and attempt >= _OPTIMISTIC_ATTEMPTS:
                    # Busy session: queue for its lock, so saves land one at a time.
                    locked = (key, self.writer.lock(key))
                    hold_until = time.monotonic() + _LOCK_HOLD_SECONDS
                elif attempt >= self.min_attempts and time.monotonic() > hold_until:
                    break
        finally:
            if locked is not None:
                self.store.unlock(*locked)
        raise SessionConflictError(
            f"the session changed under each of {attempt} attempts to save it"
        )
