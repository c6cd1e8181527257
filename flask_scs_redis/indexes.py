"""The per-user indexes in Redis: one sorted set of store ids a user, by deadline.

Every operation is one command or one script on the index key alone, so it
runs unchanged on a Cluster. :class:`~.users.UserIndex` decides when to call
them; this module only speaks to Redis.
"""

from __future__ import annotations

from typing import Any

from .clock import now_ms
from .connections import translated_errors
from .scripts import INDEX_CONFIRM, INDEX_JOIN, INDEX_TAKE
from .store import RedisStore


def _ids(answer: Any) -> list[str]:
    return [entry.decode() if isinstance(entry, bytes) else entry for entry in answer]


class Indexes:
    """The user indexes of ``store``, under its prefix (see :mod:`.keys`)."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        client = store.client
        self._join = client.register_script(INDEX_JOIN)
        self._confirm = client.register_script(INDEX_CONFIRM)
        self._take = client.register_script(INDEX_TAKE)

    def key(self, user: str) -> str:
        """The key of ``user``'s index."""
        return self.store.keys.index(user)

    def join(
        self,
        user: str,
        session_id: str,
        *,
        deadline_ms: int,
        requires: str | None = None,
        limit: int | None = None,
        check_every: int | None = None,
    ) -> list[str] | None:
        """Index ``session_id`` under ``user``; None if ``requires`` was no longer indexed.

        Entries past their deadline are pruned first. Past ``limit``
        entries, or at each multiple of ``check_every`` entries, the answer
        lists every other id, oldest deadline first.
        """
        with translated_errors():
            answer = self._join(
                keys=[self.key(user)],
                args=[
                    session_id,
                    deadline_ms,
                    now_ms(),
                    requires or "",
                    limit or 0,
                    check_every or 0,
                ],
            )
        return None if answer == -1 else _ids(answer)

    def confirm(self, user: str, session_id: str, *, drop: str | None = None) -> bool:
        """Tell whether ``session_id`` is still indexed, and drop ``drop`` if it is."""
        with translated_errors():
            return bool(self._confirm(keys=[self.key(user)], args=[session_id, drop or ""]))

    def remove(self, user: str, *session_ids: str) -> None:
        """Take ``session_ids`` out of ``user``'s index."""
        if session_ids:
            with translated_errors():
                self.store.client.zrem(self.key(user), *session_ids)

    def members(self, user: str) -> list[str]:
        """The ids indexed under ``user`` whose deadline has not passed."""
        with translated_errors():
            pipe = self.store.client.pipeline(transaction=False)
            pipe.zremrangebyscore(self.key(user), "-inf", now_ms())
            pipe.zrange(self.key(user), 0, -1)
            _, members = pipe.execute()
        return _ids(members)

    def take(self, user: str, *, keep: str | None = None) -> list[str]:
        """Take every id but ``keep`` out of ``user``'s index at once, and return them."""
        with translated_errors():
            return _ids(self._take(keys=[self.key(user)], args=[keep or "", now_ms()]))

    def alive(self, session_ids: list[str]) -> list[bool]:
        """Whether each session still has a record, in one pipelined round trip."""
        if not session_ids:
            return []
        with translated_errors():
            pipe = self.store.client.pipeline(transaction=False)
            for session_id in session_ids:
                pipe.exists(self.store.key_of(session_id))
            return [bool(found) for found in pipe.execute()]
