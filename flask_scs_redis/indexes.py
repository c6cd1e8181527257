"""The per-user indexes in Redis: one sorted set of store ids a user, by deadline.

Every operation is one command or one script on the index key alone, so it
runs unchanged on a Cluster. :class:`~.users.UserIndex` decides when to call
them; this module only speaks to Redis.

With encryption at rest a user's index is named by a keyed hash of the user
(see :mod:`.sealing`), so a rotated secret, or switching encryption on,
renames it. Entries are added under the newest name only; the older names
are read, taken and cleaned too, until the sessions indexed there have ended.
"""

from __future__ import annotations

from typing import Any

from .clock import now_ms
from .connections import translated_errors
from .scripts import INDEX_CONFIRM, INDEX_JOIN, INDEX_TAKE
from .sealing import Sealer
from .store import RedisStore


def _ids(answer: Any) -> list[str]:
    return [entry.decode() if isinstance(entry, bytes) else entry for entry in answer]


class Indexes:
    """The user indexes of ``store``, under its prefix (see :mod:`.keys`).

    With a ``sealer`` that holds a server secret, users are named by it.
    """

    def __init__(self, store: RedisStore, sealer: Sealer | None = None) -> None:
        self.store = store
        self._sealer = sealer if sealer is not None and sealer.has_secret else None
        client = store.client
        self._join = client.register_script(INDEX_JOIN)
        self._confirm = client.register_script(INDEX_CONFIRM)
        self._take = client.register_script(INDEX_TAKE)

    def key(self, user: str) -> str:
        """The key of ``user``'s index."""
        return self.keys(user)[0]

    def keys(self, user: str) -> list[str]:
        """The keys ``user``'s index has had: the current one first, then older names."""
        if self._sealer is None:
            return [self.store.keys.index(user)]
        return [self.store.keys.index_named(name) for name in self._sealer.user_names(user)]

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

    def release(self, index_key: str, session_id: str) -> bool:
        """Take ``session_id`` out of the index at ``index_key``; whether it was there."""
        with translated_errors():
            return bool(self._confirm(keys=[index_key], args=[session_id, session_id]))

    def holding(self, user: str, session_id: str) -> str | None:
        """The key of the older index of ``user`` that holds ``session_id``, if one does."""
        for index_key in self.keys(user)[1:]:
            with translated_errors():
                if self.store.client.zscore(index_key, session_id) is not None:
                    return index_key
        return None

    def remove(self, user: str, *session_ids: str, everywhere: bool = False) -> None:
        """Take ``session_ids`` out of ``user``'s index; ``everywhere``: under every name."""
        if not session_ids:
            return
        index_keys = self.keys(user) if everywhere else [self.key(user)]
        with translated_errors():
            pipe = self.store.client.pipeline(transaction=False)
            for index_key in index_keys:
                pipe.zrem(index_key, *session_ids)
            pipe.execute()

    def members(self, user: str) -> list[str]:
        """The ids indexed under ``user``, under any name, whose deadline has not passed."""
        with translated_errors():
            pipe = self.store.client.pipeline(transaction=False)
            for index_key in self.keys(user):
                pipe.zremrangebyscore(index_key, "-inf", now_ms())
                pipe.zrange(index_key, 0, -1)
            answers = pipe.execute()
        return list(dict.fromkeys(i for members in answers[1::2] for i in _ids(members)))

    def take(self, user: str, *, keep: str | None = None) -> list[str]:
        """Take every id but ``keep`` out of ``user``'s index at once, and return them.

        Older names are taken first, the current one last: a renewal that
        moves an entry from an older name to the current one (see
        :meth:`.users.UserIndex.settle`) is then always caught.
        """
        taken: list[str] = []
        with translated_errors():
            for index_key in reversed(self.keys(user)):  # the oldest name first
                taken += _ids(self._take(keys=[index_key], args=[keep or "", now_ms()]))
        return list(dict.fromkeys(taken))

    def alive(self, session_ids: list[str]) -> list[bool]:
        """Whether each session still has a record, in one pipelined round trip."""
        if not session_ids:
            return []
        with translated_errors():
            pipe = self.store.client.pipeline(transaction=False)
            for session_id in session_ids:
                pipe.exists(self.store.key_of(session_id))
            return [bool(found) for found in pipe.execute()]
