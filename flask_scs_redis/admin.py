"""Session administration: a user's sessions, "log out everywhere", listing, counting.

:class:`SessionAdmin` works on a :class:`~.store.RedisStore` alone, so WSGI
apps and scripts can use it; the Flask extension offers the same calls on the
current app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .clock import moment, now_ms
from .connections import translated_errors
from .keys import is_id
from .options import Options, check
from .record import CorruptRecordError, unpack_record, values_of
from .sealing import Sealer
from .signals import Announcer, session_destroyed
from .store import RedisStore
from .users import UserIndex

# How many characters an id has (see keys.ID_PATTERN), and what may begin one.


@dataclass(frozen=True)
class SessionInfo:
    """What an administrator may see of a session: never its token."""

    #: The session's id, safe to show or log: a hash of the token, never the token.
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
    #: Whether its values are sealed (encryption at rest): only its token opens
    #: them, so its values show as :class:`SealedValues` and its user, outside
    #: :meth:`SessionAdmin.user_sessions`, as None.
    sealed: bool = False


class SealedValues(dict):  # type: ignore[type-arg]
    """The values of a sealed session as the admin sees them: none.

    .. versionadded:: 0.2
    """

    def __repr__(self) -> str:
        return "<sealed>"


class SessionAdmin:
    """Administer the sessions in ``store``; ``user_key`` is the value naming the user.

    With encryption at rest, pass the engine's ``sealer`` (the Flask
    extension's :meth:`~.extension.RedisSessions.admin` and the middleware's
    :meth:`~.middleware.SessionMiddleware.admin` do): it names the users'
    indexes.

    .. versionadded:: 0.1

    The sessions it ends are announced (see :mod:`.signals`) with ``sender``
    as their sender (None: the admin).

    .. versionchanged:: 0.2
        ``sealer`` and ``sender``.
    """

    def __init__(
        self,
        store: RedisStore,
        user_key: str | None = Options.user_key,
        *,
        sealer: Sealer | None = None,
        sender: Any = None,
    ) -> None:
        self.store = store
        self.user_key: str | None = check("user_key", user_key)
        announcer = Announcer(self if sender is None else sender, store.keys.public_id)
        self.users = UserIndex(store, self.user_key, sealer=sealer, announcer=announcer)

    def user_sessions(self, user: object, *, current_id: str | None = None) -> list[SessionInfo]:
        """Return ``user``'s live sessions, oldest first, from the per-user index.

        Index entries whose session is gone are pruned on the way.
        """
        indexes = self.users.indexes
        ids = indexes.members(str(user))
        found = self._infos([self.store.key_of(i) for i in ids], current_id, user=str(user))
        shown = {info.id for info, _ in found}
        gone = [i for i in ids if self._public(i) not in shown]
        indexes.remove(str(user), *gone, everywhere=True)
        return sorted((info for info, _ in found), key=lambda info: info.created_at)

    def destroy_user_sessions(self, user: object, *, keep_id: str | None = None) -> int:
        """Destroy every session of ``user`` but ``keep_id``; return how many there were.

        A renewal or login racing this call leaves no live session behind
        (see :mod:`.users`).
        """
        keep = None
        if keep_id is not None and self.store.hash_tokens:
            keep = keep_id
        elif keep_id is not None:  # index entries are tokens: find the one with this id
            members = self.users.indexes.members(str(user))
            keep = next((i for i in members if self._public(i) == keep_id), None)
        return self.users.end_all(str(user), keep_id=keep)

    def get(self, session_id: str) -> tuple[SessionInfo, dict[Any, Any]] | None:
        """Return the session with the id ``session_id`` and its values, or None.

        Anything but a session's id (a lock's key, say) is no session.
        """
        key = self._key_of(session_id)
        found = [] if key is None else self._infos([key], None)
        return found[0] if found else None

    def ids_starting_with(self, id_prefix: str, batch: int = 500) -> list[str]:
        """Return the ids of the live sessions whose id begins with ``id_prefix``, sorted.

        With hashed tokens a SCAN matches the prefix in Redis; without, every
        record key is scanned and its id computed, as the key holds the token.
        A prefix that no id can begin with (not base64url) matches nothing.

        .. versionadded:: 0.1
        """
        pattern = self.store.keys.records_starting_with(id_prefix)
        if pattern is None:
            return []
        keys: list[str] = []
        if self.store.hash_tokens:
            with translated_errors():
                for name in self.store.client.scan_iter(match=pattern, count=batch):
                    key = name.decode() if isinstance(name, bytes) else name
                    if self.store.keys.is_record(key):
                        keys.append(key)
        else:
            keys = list(self._keys_whose_id(lambda public: public.startswith(id_prefix), batch))
        found = []
        for start in range(0, len(keys), batch):
            found += [info.id for info, _ in self._infos(keys[start : start + batch], None)]
        return sorted(set(found))

    def destroy(self, session_id: str) -> bool:
        """Destroy the session with the id ``session_id``; return whether it existed."""
        key = self._key_of(session_id)
        return key is not None and self.users.end(key, reason="admin")

    def iter_sessions(self, batch: int = 500) -> Iterator[tuple[SessionInfo, dict[Any, Any]]]:
        """Yield every live session with its values: SCAN, then pipelined fetches of ``batch``.

        Unreadable records, emptied sessions and records past their deadline
        are left out.
        """
        for keys in self.store.scan_keys(batch):
            yield from self._infos(keys, None)

    def count(self, batch: int = 500) -> int:
        """Count the live sessions, as :meth:`iter_sessions` finds them.

        It reads every record (100,000 take about 5 s), as only that tells a
        live session from an unreadable or emptied record.
        """
        return sum(1 for _ in self.iter_sessions(batch))

    def destroy_all(self, batch: int = 500) -> Iterator[int]:
        """Destroy every session and every user index, yielding counts as it goes.

        Each number is how many sessions one batch destroyed, for a progress
        bar. Only keys that this library wrote are deleted: a key of the
        right name that holds something else is left alone.
        """
        for keys in self.store.scan_keys(batch):
            # The records come back only for a receiver of session_destroyed.
            ended = self.store.delete_written(keys, returning=bool(session_destroyed.receivers))
            for key, blob in ended:
                if blob is not None:
                    self.users.taken(key, blob, "admin")
            yield len(ended)
        for indexes in self.store.scan_keys(batch, of="indexes"):
            self.store.delete_written(indexes, indexes=True)

    def _public(self, store_id: str) -> str:
        return self.store.keys.public_id(self.store.key_of(store_id))

    def _key_of(self, session_id: str) -> str | None:
        """The key of the record whose public id is ``session_id``, or None.

        With hashed tokens the id names the key; without, the key holds the
        token, so it is found by hashing each record's (a SCAN).
        """
        if not is_id(session_id):
            return None
        if self.store.hash_tokens:
            return self.store.key_of(session_id)
        return next(self._keys_whose_id(lambda public: public == session_id), None)

    def _keys_whose_id(self, wanted: Callable[[str], bool], batch: int = 500) -> Iterator[str]:
        """The record keys whose public id ``wanted`` accepts, by SCAN.

        For unhashed tokens only, where the key holds the token and the id is
        its hash: no pattern can find the id in Redis.
        """
        for keys in self.store.scan_keys(batch):
            yield from (key for key in keys if wanted(self.store.keys.public_id(key)))

    def _infos(
        self, keys: list[str], current_id: str | None, user: str | None = None
    ) -> list[tuple[SessionInfo, dict[Any, Any]]]:
        """Fetch the sessions at ``keys`` in one round trip; only live, readable ones.

        ``user`` is whose index named them, which sealed sessions do not tell.
        """
        found = []
        now = now_ms()
        for key, (blob, ttl_ms) in zip(keys, self.store.fetch(keys)):
            if blob is None:
                continue
            try:
                record = unpack_record(blob)
                values = SealedValues() if record.sealed else values_of(record)
            except CorruptRecordError:
                continue
            if (not values and not record.sealed) or record.deadline_ms <= now:
                continue  # emptied, or past its deadline and waiting to expire
            expires_ms = record.deadline_ms
            if ttl_ms >= 0:
                expires_ms = min(expires_ms, now + ttl_ms)
            session_id = self.store.keys.public_id(key)
            info = SessionInfo(
                id=session_id,
                user=user if record.sealed else self.users.user_of(values),
                created_at=moment(record.created_ms),
                last_seen=moment(record.last_seen_ms),
                expires_at=moment(expires_ms),
                description=record.description,
                current=session_id == current_id,
                sealed=record.sealed,
            )
            found.append((info, values))
        return found
