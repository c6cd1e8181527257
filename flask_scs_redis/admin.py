"""Session administration: a user's sessions, "log out everywhere", listing, counting.

:class:`SessionAdmin` works on a :class:`~.store.RedisStore` alone, so WSGI
apps and scripts can use it; the Flask extension offers the same calls on the
current app.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .clock import moment, now_ms
from .options import Options, check
from .record import CorruptRecordError, read_record
from .store import RedisStore
from .users import UserIndex


@dataclass(frozen=True)
class SessionInfo:
    """What an administrator may see of a session: never its token."""

    #: The store id, safe to show or log: with hashed tokens, a hash of the token.
    id: str
    #: The user the session belongs to, or None.
    user: str | None
    created_at: datetime
    #: When the session was last written (reads do not move it).
    last_seen: datetime
    #: When the session ends if unused: the deadline, or sooner when idle.
    expires_at: datetime
    #: The client description the app set, if any.
    description: str | None = None
    #: Whether it is the session of the request that asked.
    current: bool = False


class SessionAdmin:
    """Administer the sessions in ``store``; ``user_key`` is the value naming the user.

    .. versionadded:: 0.1
    """

    def __init__(self, store: RedisStore, user_key: str | None = Options.user_key) -> None:
        self.store = store
        self.user_key: str | None = check("user_key", user_key)
        self.users = UserIndex(store, self.user_key)

    def user_sessions(self, user: object, *, current_id: str | None = None) -> list[SessionInfo]:
        """Return ``user``'s live sessions, oldest first, from the per-user index.

        Index entries whose session is gone are pruned on the way.
        """
        ids = self.store.index_members(str(user))
        found = self._infos(ids, current_id)
        gone = [session_id for session_id in ids if session_id not in found]
        self.store.index_remove(str(user), *gone)
        return sorted((info for info, _ in found.values()), key=lambda info: info.created_at)

    def destroy_user_sessions(self, user: object, *, keep_id: str | None = None) -> int:
        """Destroy every session of ``user`` but ``keep_id``; return how many there were."""
        return self.users.end_all(str(user), keep_id=keep_id)

    def get(self, session_id: str) -> tuple[SessionInfo, dict[Any, Any]] | None:
        """Return the session with the store id ``session_id`` and its values, or None."""
        return self._infos([session_id], None).get(session_id)

    def destroy(self, session_id: str) -> bool:
        """Destroy the session with the store id ``session_id``; return whether it existed."""
        return self.users.end(self.store.key_of(session_id))

    def iter_sessions(self, batch: int = 500) -> Iterator[tuple[SessionInfo, dict[Any, Any]]]:
        """Yield every session with its values: SCAN, then pipelined fetches of ``batch``."""
        for keys in self.store.scan_keys(batch):
            found = self._infos([self.store.id_of(key) for key in keys], None)
            yield from found.values()

    def count(self, batch: int = 1000) -> int:
        """Count the stored sessions with SCAN, without fetching them."""
        return sum(len(keys) for keys in self.store.scan_keys(batch))

    def destroy_all(self, batch: int = 500) -> Iterator[int]:
        """Destroy every session and every user index, yielding counts as it goes.

        Each number is how many sessions one batch destroyed, for a progress bar.
        """
        for keys in self.store.scan_keys(batch):
            yield self.store.delete(*keys)
        for indexes in self.store.scan_keys(batch, of="indexes"):
            self.store.delete(*indexes)

    def _infos(
        self, ids: list[str], current_id: str | None
    ) -> dict[str, tuple[SessionInfo, dict[Any, Any]]]:
        """Fetch the sessions of ``ids`` in one round trip; unreadable ones are skipped."""
        keys = [self.store.key_of(session_id) for session_id in ids]
        found = {}
        for session_id, (blob, ttl_ms) in zip(ids, self.store.fetch(keys)):
            if blob is None:
                continue
            try:
                record, values = read_record(blob)
            except CorruptRecordError:
                continue
            expires_ms = record.deadline_ms
            if ttl_ms >= 0:
                expires_ms = min(expires_ms, now_ms() + ttl_ms)
            info = SessionInfo(
                id=session_id,
                user=self.users.user_of(values),
                created_at=moment(record.created_ms),
                last_seen=moment(record.last_seen_ms),
                expires_at=moment(expires_ms),
                description=record.description,
                current=session_id == current_id,
            )
            found[session_id] = (info, values)
        return found
