"""Which user a session belongs to, and the per-user index kept in step with it.

Every session whose values hold a user (the value at ``user_key``) is listed
in that user's index (see :mod:`.indexes`). A session enters an index before
its record is written, and the write counts only if the entry is still there
afterwards; ending every session of a user takes the whole index at once,
then deletes the records. So a session being written while its user's
sessions are ended either is among those taken, and is deleted by one side
or the other, or enters the index after the taking, and was written after it.

A session indexed under an older name of its user's index (a rotated
secret, see :mod:`.indexes`) that a write moves or re-scores enters the
current name, and after the write its old entry must still be there to be
taken out; ending a user's sessions takes the older names first, so one of
the two sides always sees the other.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any, NamedTuple, Optional

from .clock import now_ms
from .errors import SessionStoreError
from .indexes import Indexes
from .record import CorruptRecordError, Record, read_record
from .rotation import MOST_HOPS, follow
from .sealing import Sealer
from .signals import Announcer
from .store import RedisStore

logger = logging.getLogger("flask_scs_redis")

#: Where a session is as the index sees it: (user, key), either may be None.
Place = tuple[Optional[str], Optional[str]]

#: Each time a user's index reaches a multiple of this many entries, it is
#: checked for sessions that ended idle: their entries outlive them until
#: the deadline, which may be far off. One check per this many joins keeps
#: the cost of a join flat for a user with many live sessions.
PRUNE_EVERY = 32


class Entry(NamedTuple):
    """A session entered in its user's index ahead of its write."""

    user: str
    session_id: str
    #: The id it replaces in the same index, dropped once the write is confirmed.
    drop: str | None
    #: With the index over the per-user limit, or at a multiple of
    #: :data:`PRUNE_EVERY` entries: the user's other ids, oldest first.
    others: list[str]
    #: Whether it was indexed already, and only its deadline moved (``set_expiry``).
    rescored: bool = False
    #: The older index key, and the id in it, that the entry replaces (see :mod:`.indexes`).
    held: tuple[str, str] | None = None


class Purged(Exception):  # noqa: N818 - a signal between the index and the engine
    """The session being renewed was taken out of its index: its user's sessions were ended."""


class UserIndex:
    """The sessions of each user in ``store``, by the value at ``user_key``.

    With ``user_key`` None nothing is indexed. With ``keep_at_most``, indexing
    a user's session past that many live ones destroys their oldest. With a
    ``sealer``, records are read with it and users named by its secret. The
    sessions it ends are announced by ``announcer`` (see :mod:`.signals`).
    """

    def __init__(
        self,
        store: RedisStore,
        user_key: str | None,
        keep_at_most: int | None = None,
        sealer: Sealer | None = None,
        announcer: Announcer | None = None,
    ) -> None:
        self.store = store
        self.user_key = user_key
        self.keep_at_most = keep_at_most
        self.sealer = sealer
        self.indexes = Indexes(store, sealer)
        self.announcer = announcer or Announcer(self, store.keys.public_id)

    def user_of(self, values: Mapping[Any, Any]) -> str | None:
        """Return the user that session ``values`` hold, as a str, or None."""
        user = values.get(self.user_key) if self.user_key is not None else None
        return None if user is None else str(user)

    def end(self, key: str, token: str | None = None, *, reason: str | None = None) -> bool:
        """Delete the record at ``key`` and take it out of its user's index.

        One script both deletes the record and tells whose index to clean, so
        the index is cleaned for exactly the record that was deleted. Sealed
        values tell their user only to their ``token``; without it the entry
        stays, and is pruned as a dead one later. A rotated token's
        forwarding record is followed with ``token``, and the session it
        leads to ended too (see :mod:`.rotation`). With a ``reason``, the
        end is announced. Return whether there was a session.
        """
        for _ in range(MOST_HOPS):
            blob = self.store.take(key)
            if blob is None:
                return False
            record, values = self._opened(blob, token)
            next_token = (
                None if record is None or token is None else follow(record, token, now_ms())
            )
            if next_token is None:
                break
            key, token = self.store.key_for(next_token), next_token
        if record is not None and not values:
            return False  # emptied, or a forwarding record past its grace or without the token
        user = self.user_of(values)
        if user is not None:
            self.indexes.remove(user, self.store.id_of(key), everywhere=True)
        if reason is not None:
            self.announcer.destroyed(key, user, reason)
        return True

    def taken(self, key: str, blob: bytes, reason: str) -> None:
        """Announce the end of the record ``blob``, deleted at ``key``, if it was a session."""
        record, values = self._opened(blob, None)
        if record is None or values:  # not emptied, nor a forwarding record
            self.announcer.destroyed(key, self.user_of(values), reason)

    def _opened(self, blob: bytes, token: str | None) -> tuple[Record | None, dict[Any, Any]]:
        """The record in ``blob`` and its values; None and no values where it cannot be read."""
        try:
            return read_record(blob, self.sealer, token)
        except CorruptRecordError:  # sealed, and no token to open it; or corrupt
            return None, {}

    def end_all(self, user: str, *, keep_id: str | None = None) -> int:
        """End every session of ``user`` but the store id ``keep_id``; return how many.

        The index is taken first, in one step, then the records are deleted:
        a session renewed meanwhile finds its entry gone and deletes its
        own new record (see :meth:`settle`).
        """
        keys = [
            self.store.key_of(session_id) for session_id in self.indexes.take(user, keep=keep_id)
        ]
        ended = [key for key, found in zip(keys, self.store.deleted(keys)) if found]
        for key in ended:
            self.announcer.destroyed(key, user, "logout-everywhere")
        return len(ended)

    def enter(
        self, before: Place, after: Place, deadline_ms: int, *, rescore: bool = False
    ) -> Entry | None:
        """Index a session at ``after`` before the write that puts it there.

        ``before`` is where the request found it. None when there is nothing
        to enter: no user, or no move and no new deadline (``rescore``).

        :raises Purged: the session at ``before`` belonged to the same user
            and is no longer indexed: that user's sessions were ended.
        """
        (old_user, old_key), (user, key) = before, after
        if user is None or key is None or (before == after and not rescore):
            return None
        session_id = self.store.id_of(key)
        if before == after:  # the same entry, with the new deadline as its score
            others, held = self._join(user, session_id, deadline_ms, requires=session_id)
            others = [i for i in others if i != session_id]
            return Entry(user, session_id, None, others, True, held)
        drop = self.store.id_of(old_key) if old_key is not None and old_user == user else None
        others, held = self._join(user, session_id, deadline_ms, requires=drop)
        return Entry(user, session_id, drop, [i for i in others if i != drop], False, held)

    def _join(
        self, user: str, session_id: str, deadline_ms: int, *, requires: str | None
    ) -> tuple[list[str], tuple[str, str] | None]:
        """Join ``user``'s index; the other ids it answers (see :class:`Entry`).

        When ``requires`` is not in the current index but under an older
        name, the entry joins unconditionally, and the older index key is
        answered too: the entry there is checked after the write.

        :raises Purged: ``requires`` was indexed under no name.
        """
        others = self.indexes.join(
            user,
            session_id,
            deadline_ms=deadline_ms,
            requires=requires,
            limit=self.keep_at_most,
            check_every=PRUNE_EVERY,
        )
        if others is not None:
            return others, None
        assert requires is not None  # a join that requires nothing always lands
        held_in = self.indexes.holding(user, requires)
        # Re-scoring a session found under no name indexes it: the record keeps
        # its key, so a purge that took the entry deletes it anyway, or its
        # compare-and-set finds it gone.
        if held_in is None and requires != session_id:
            raise Purged(user)
        others, _ = self._join(user, session_id, deadline_ms, requires=None)
        return others, None if held_in is None else (held_in, requires)

    def settle(self, entry: Entry) -> bool:
        """Confirm an entry once its record is written; False if its user's sessions were ended.

        On False the caller deletes the record it wrote. On True the entry it
        replaces is dropped. When the index answered the user's other ids
        (see :data:`PRUNE_EVERY`), those of sessions that expired meanwhile
        are pruned; past the per-user limit, the oldest of the user's live
        sessions are ended too.
        """
        drop_here = entry.drop if entry.held is None else None
        if not self.indexes.confirm(entry.user, entry.session_id, drop=drop_here):
            return False
        if entry.held is not None and not self.indexes.release(*entry.held):
            return False  # taken while this session moved from the older index
        if entry.others:
            alive = self.indexes.alive(entry.others)
            live = [i for i, found in zip(entry.others, alive) if found]
            dead = [i for i, found in zip(entry.others, alive) if not found]
            excess = 0 if self.keep_at_most is None else len(live) + 1 - self.keep_at_most
            ended = [self.store.key_of(session_id) for session_id in live[: max(0, excess)]]
            for key, found in zip(ended, self.store.deleted(ended)):
                if found:
                    self.announcer.destroyed(key, entry.user, "evicted")
            self.indexes.remove(entry.user, *dead, *map(self.store.id_of, ended))
        return True

    def withdraw(self, entry: Entry) -> None:
        """Take back an entry whose write did not happen, if the store lets us.

        A stale entry does no harm: listing prunes it, and it never counts
        against the per-user limit. A rescored entry stays: it was there before.
        """
        if entry.rescored and entry.held is None:
            return
        with contextlib.suppress(SessionStoreError):
            self.indexes.remove(entry.user, entry.session_id)

    def written(self, entry: Entry | None, before: Place, after: Place, deadline_ms: int) -> bool:
        """Bring the index in step with a write that landed; False if it must not count.

        ``entry`` is what :meth:`enter` returned for it. False means the
        user's sessions were ended while it was written: its record is
        deleted again. The record is written, and its new token is the
        client's only way to it, so when the store fails from here on (an
        outage, or a permission taken away meanwhile) the failure is logged
        and the write counts: a renewal or login must not lose the session
        over its index. The entry entered ahead stays, so a later "log out
        everywhere" still finds the session.
        """
        try:
            if entry is not None and after == (entry.user, self.store.key_of(entry.session_id)):
                if not self.settle(entry):
                    with contextlib.suppress(SessionStoreError):
                        self.end(after[1] or "")
                    return False
                if entry.drop is None and not entry.rescored:  # a new user: leave the old index
                    self.follow(before, (None, None), deadline_ms)
            else:  # not entered, or another request's values moved it elsewhere
                if entry is not None:
                    self.withdraw(entry)
                self.follow(before, after, deadline_ms)
        except SessionStoreError as error:
            logger.warning(
                "a session was saved, but its user index could not be brought in step: %s", error
            )
        return True

    def follow(self, before: Place, after: Place, deadline_ms: int) -> None:
        """Move a session's entry as a write moved it, from ``before`` to ``after``.

        For the writes not entered ahead (a user taken out, or one that came
        in with another request's values while merging).
        """
        if before == after:
            return
        (old_user, old_key), (new_user, new_key) = before, after
        if old_user is not None and old_key is not None:
            self.indexes.remove(old_user, self.store.id_of(old_key), everywhere=True)
        if new_user is not None and new_key is not None:
            self.indexes.join(new_user, self.store.id_of(new_key), deadline_ms=deadline_ms)
