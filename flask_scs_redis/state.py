"""The words of a session's life, and one request's state in it.

:class:`Status` says where a request's session is, :class:`Outcome` what a
commit did to it, and :class:`SessionState` what the store gave or took.

:class:`SessionState` lists its fields once. It is never changed in place:
the engine makes a new state with the constructors here and hands it to the
:class:`~.session.Session`, which holds it beside the values.
"""

from __future__ import annotations

import enum
import functools
from typing import NamedTuple

from .record import Record


class Status(enum.Enum):
    """Where a request's session is in its life; the save step reads only this."""

    #: The cookie's token is known, the store has not been asked yet.
    UNLOADED = "unloaded"
    #: The values are those the store holds, or those of a new session.
    LOADED = "loaded"
    #: As LOADED, and the save moves the values to a new token.
    RENEWED = "renewed"
    #: As LOADED, and the token is due for rotation: the save moves the values
    #: to a new token, keeping the deadline, and leaves the old token its
    #: grace window (see :mod:`.rotation`).
    ROTATING = "rotating"
    #: The record was deleted; a write starts a new session with a new token.
    DESTROYED = "destroyed"


def _window(own_idle_ms: int | None, idle_ms: int | None) -> int | None:
    """The idle timeout in force: a session's own (0 meaning none), else the app's."""
    return idle_ms if own_idle_ms is None else own_idle_ms or None


def expiry(deadline_ms: int, now_ms: int, idle_ms: int | None) -> int:
    """When a record used at ``now_ms`` expires: its deadline, or sooner when idle."""
    return deadline_ms if idle_ms is None else min(deadline_ms, now_ms + idle_ms)


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
    #: The values were stored under a new token: a new session.
    CREATED = "created"
    #: The values moved to a new token: a renewal, a login or a rotation.
    RENEWED = "renewed"
    #: The session was destroyed or emptied: remove the cookie.
    ENDED = "ended"
    #: The record disappeared before the save (ended elsewhere or expired),
    #: so nothing was written back; leave the cookie.
    VANISHED = "vanished"


#: Outcomes after which the cookie carries a token that the store knows.
LIVE_OUTCOMES = frozenset({Outcome.UNCHANGED, Outcome.SAVED, Outcome.CREATED, Outcome.RENEWED})


class SessionState(NamedTuple):
    """What the engine knows of one request's session, apart from its values."""

    status: Status
    #: The app's absolute lifetime for a new or renewed session (see :attr:`span_ms`).
    lifetime_ms: int
    #: The app's idle timeout: how long a record lives past its last use
    #: (None: none; see :attr:`window_ms`).
    idle_ms: int | None
    #: The token of the stored record; None while there is none.
    token: str | None
    #: The Redis key of the stored record; None while there is none.
    key: str | None
    revision: int
    #: The bytes that begin the stored record, up to its revision.
    tag: bytes
    #: The values as stored, encoded; what a save compares with to tell a change.
    stored_values: bytes | None
    deadline_ms: int
    created_ms: int
    last_seen_ms: int
    #: When the stored record expires: the deadline, or sooner when idle.
    expiry_ms: int
    #: The user the stored record is indexed under.
    user: str | None
    stored_description: str | None
    #: This request's description: the stored one, unless the request set its own.
    description: str | None
    #: Whether the values were taken up from the store the app moves off
    #: (see :mod:`.migration`), which forgets them once they are saved here.
    inherited: bool = False
    #: The session's own absolute lifetime (``Session.set_expiry``); None: the app's.
    own_lifetime_ms: int | None = None
    #: The session's own idle timeout; 0: none; None: the app's.
    own_idle_ms: int | None = None
    #: Whether this request set the session's expiry, so the save writes it.
    expiry_set: bool = False
    #: Whether the stored record must be rewritten at the next save, changed
    #: or not: it is stored otherwise than the sealer stores now (see :mod:`.sealing`).
    rewrite: bool = False
    #: When the token was issued; None: as old as the session (see :mod:`.rotation`).
    issued_ms: int | None = None

    @property
    def span_ms(self) -> int:
        """The absolute lifetime a renewal starts again: the session's own, else the app's."""
        return self.lifetime_ms if self.own_lifetime_ms is None else self.own_lifetime_ms

    def saved_deadline_ms(self, now_ms: int) -> int:
        """The deadline a save at ``now_ms`` leaves: a renewal starts a new lifetime.

        Anything else keeps the deadline, a rotation too: it is no new lifetime.
        """
        return now_ms + self.span_ms if self.status is Status.RENEWED else self.deadline_ms

    @property
    def window_ms(self) -> int | None:
        """The idle timeout in force: the session's own (0 meaning none), else the app's."""
        return _window(self.own_idle_ms, self.idle_ms)

    def __repr__(self) -> str:
        # Never the token, the key (a token, without hashing) or the values.
        return (
            f"SessionState(status={self.status.value}, revision={self.revision},"
            f" user={self.user!r}, deadline_ms={self.deadline_ms})"
        )

    @staticmethod
    def unloaded(lifetime_ms: int, idle_ms: int | None) -> SessionState:
        """The state of a session before its first use."""
        return _unloaded(lifetime_ms, idle_ms)

    def started(self, status: Status, now_ms: int) -> SessionState:
        """The state of a new session with nothing stored, starting at ``now_ms``."""
        deadline_ms = now_ms + self.lifetime_ms
        expiry_ms = expiry(deadline_ms, now_ms, self.idle_ms)
        return SessionState(
            status, self.lifetime_ms, self.idle_ms, None, None, 0, b"", None,
            deadline_ms, now_ms, now_ms, expiry_ms, None, None, None,
        )  # fmt: skip

    def stored(
        self,
        record: Record,
        tag: bytes,
        *,
        token: str,
        key: str,
        now_ms: int,
        user: str | None,
    ) -> SessionState:
        """The state of a session whose record, beginning with ``tag``, is at ``key``.

        Its expiry is the record's as used at ``now_ms``, by its own idle timeout or the app's.
        """
        return SessionState(
            Status.LOADED,
            self.lifetime_ms,
            self.idle_ms,
            token,
            key,
            record.revision,
            tag,
            record.values,
            record.deadline_ms,
            record.created_ms,
            record.last_seen_ms,
            expiry(record.deadline_ms, now_ms, _window(record.idle_ms, self.idle_ms)),
            user,
            record.description,
            record.description,
            False,
            record.lifetime_ms,
            record.idle_ms,
            False,
            record.rewrite,
            record.issued_ms,
        )

    def rebased(self, record: Record) -> SessionState:
        """This state on top of ``record``, which another request wrote meanwhile.

        A description or an expiry this request set stays; otherwise the record's is taken.
        """
        own = self.description != self.stored_description
        state = self._replace(
            revision=record.revision,
            tag=record.tag,
            stored_values=record.values,
            rewrite=record.rewrite,
            created_ms=record.created_ms,
            last_seen_ms=record.last_seen_ms,
            stored_description=record.description,
            description=self.description if own else record.description,
            issued_ms=record.issued_ms,
        )
        if self.expiry_set:
            return state
        return state._replace(
            deadline_ms=record.deadline_ms,
            own_lifetime_ms=record.lifetime_ms,
            own_idle_ms=record.idle_ms,
        )

    def forwarded(self, record: Record, token: str, key: str) -> SessionState:
        """This state moved to ``token``, whose record another request's rotation wrote.

        As :meth:`rebased`; a rotation this request was to make is made already.
        """
        status = Status.LOADED if self.status is Status.ROTATING else self.status
        return self._replace(status=status, token=token, key=key).rebased(record)

    def expiring(self, now_ms: int, lifetime_ms: int | None, idle_ms: int | None) -> SessionState:
        """This state with an expiry of its own from ``now_ms``; ``idle_ms`` 0: no idle timeout.

        ``lifetime_ms`` None goes back to the app's lifetime and idle timeout.
        """
        return self._replace(
            deadline_ms=now_ms + (self.lifetime_ms if lifetime_ms is None else lifetime_ms),
            own_lifetime_ms=lifetime_ms,
            own_idle_ms=None if lifetime_ms is None else idle_ms,
            expiry_set=True,
        )


@functools.lru_cache(maxsize=32)
def _unloaded(lifetime_ms: int, idle_ms: int | None) -> SessionState:
    # Shared, as states never change: most apps use one lifetime or a few.
    return SessionState(
        Status.UNLOADED, lifetime_ms, idle_ms, None, None, 0, b"", None, 0, 0, 0, 0, None, None,
        None,
    )  # fmt: skip
