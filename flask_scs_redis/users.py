"""Which user a session belongs to, and the per-user index kept in step with it.

Every session whose values hold a user (the value at ``user_key``) is listed
in that user's index, a sorted set of store ids in the store. The engine keeps
it in step with each write, and the admin reads it; ending a session and
cleaning its user's index is one path, :meth:`UserIndex.end`, for both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .record import CorruptRecordError, read_record
from .store import RedisStore


class UserIndex:
    """The sessions of each user in ``store``, by the value at ``user_key``.

    With ``user_key`` None nothing is indexed. With ``keep_at_most``, indexing
    a user's session past that many destroys their oldest.
    """

    def __init__(
        self, store: RedisStore, user_key: str | None, keep_at_most: int | None = None
    ) -> None:
        self.store = store
        self.user_key = user_key
        self.keep_at_most = keep_at_most

    def user_of(self, values: Mapping[Any, Any]) -> str | None:
        """Return the user that session ``values`` hold, as a str, or None."""
        user = values.get(self.user_key) if self.user_key is not None else None
        return None if user is None else str(user)

    def end(self, key: str) -> bool:
        """Delete the record at ``key`` and take it out of its user's index.

        One GETDEL both deletes the record and tells whose index to clean, so
        the index is cleaned for exactly the record that was deleted; without
        a user key it is a plain DEL. Return whether there was a record.
        """
        if self.user_key is None:
            return self.store.delete(key) > 0
        blob = self.store.take(key)
        if blob is None:
            return False
        try:
            user = self.user_of(read_record(blob)[1])
        except CorruptRecordError:
            user = None
        if user is not None:
            self.store.index_remove(user, self.store.id_of(key))
        return True

    def end_all(self, user: str, *, keep_id: str | None = None) -> int:
        """End every session of ``user`` but ``keep_id``; return how many there were."""
        ids = [i for i in self.store.index_members(user) if i != keep_id]
        ended = self.store.delete(*[self.store.key_of(session_id) for session_id in ids])
        self.store.index_remove(user, *ids)
        return ended

    def follow(
        self,
        before: tuple[str | None, str | None],
        after: tuple[str | None, str | None],
        deadline_ms: int,
    ) -> None:
        """Move a session's entry as a write moved it, from ``before`` to ``after``.

        Each is ``(user, key)``; either may be None. A session pushed out by
        ``keep_at_most`` is deleted.
        """
        if before == after:
            return
        (old_user, old_key), (new_user, new_key) = before, after
        if old_user is not None and old_key is not None:
            self.store.index_remove(old_user, self.store.id_of(old_key))
        if new_user is not None and new_key is not None:
            evicted = self.store.index_add(
                new_user,
                self.store.id_of(new_key),
                deadline_ms=deadline_ms,
                keep_at_most=self.keep_at_most,
            )
            if evicted:
                self.store.delete(*[self.store.key_of(session_id) for session_id in evicted])
