"""The session lifecycle, shared by every adapter: load, commit, renew, destroy.

The engine holds configuration only. Each request's state is a
:class:`~.state.SessionState` that the engine makes anew at every step and the
request's :class:`~.session.Session` holds. The engine speaks to storage only
through :class:`~.store.RedisStore` and knows nothing of HTTP, so every
adapter (the Flask interface, the WSGI middleware) gets the same behaviour.
"""

from __future__ import annotations

import enum
import itertools
import logging
import time
from datetime import timedelta
from typing import Any

from .changes import Changes, changes_since
from .clock import milliseconds, now_ms
from .errors import (
    ConfigurationError,
    SessionConflictError,
    SessionStoreError,
    SessionTooLargeError,
    UnsupportedValueError,
)
from .options import Options, check
from .sealing import Sealer
from .session import Predecessor, Session
from .state import Outcome, SessionState, Status
from .store import RedisStore
from .tokens import new_token
from .users import Purged, UserIndex
from .writes import Writer

logger = logging.getLogger("flask_scs_redis")


_WRITTEN = frozenset({Outcome.SAVED, Outcome.CREATED, Outcome.ENDED})

# Compare-and-set attempts before a save queues for the session's write lock.
_OPTIMISTIC_ATTEMPTS = 3
# How long the lock holder keeps trying; the lock itself lives 2 s.
_LOCK_HOLD_SECONDS = 1.5


class _Default(enum.Enum):
    ENGINE = "the engine's"


#: Stands for the engine's own setting where an argument may also be None.
ENGINE_DEFAULT = _Default.ENGINE


class SessionEngine:
    """Load and save sessions in a :class:`~.store.RedisStore`.

    ``idle_timeout`` ends a session that goes unused that long (None: never);
    ``max_size`` caps the encoded record in bytes. A save that loses the
    compare-and-set a few times queues for the session's write lock and,
    once it holds it, keeps trying for up to 1.5 s; it makes at least
    ``min_attempts`` attempts before it gives up.

    ``user_key`` names the session value that holds the logged-in user (None
    turns the per-user index off). Sessions holding it are indexed under
    that user; with ``renew_on_login`` a change of its value renews the
    token; ``max_sessions_per_user`` destroys a user's oldest sessions past
    that many. A ``sealer`` encrypts the values at rest (see :mod:`.sealing`).
    Every argument is checked as :class:`~.options.Options` checks it.

    .. versionchanged:: 0.1
        ``max_attempts`` is now ``min_attempts``, as it is a least number.
    .. versionchanged:: 0.2
        ``sealer``.
    """

    def __init__(
        self,
        store: RedisStore,
        *,
        idle_timeout: timedelta | float | None = Options.idle_timeout,
        max_size: int = Options.max_size,
        min_attempts: int = Options.min_attempts,
        user_key: str | None = Options.user_key,
        renew_on_login: bool = Options.renew_on_login,
        max_sessions_per_user: int | None = Options.max_sessions_per_user,
        sealer: Sealer | None = None,
    ) -> None:
        if not isinstance(store, RedisStore):
            raise ConfigurationError(f"store must be a RedisStore, not {store!r}")
        self.store = store
        self.idle_timeout: timedelta | None = check("idle_timeout", idle_timeout)
        self.max_size: int = check("max_size", max_size)
        self.min_attempts: int = check("min_attempts", min_attempts)
        self.user_key: str | None = check("user_key", user_key)
        self.renew_on_login: bool = check("renew_on_login", renew_on_login)
        self.max_sessions_per_user: int | None = check(
            "max_sessions_per_user", max_sessions_per_user
        )
        if sealer is not None:
            sealer.check_use(store.hash_tokens, self.user_key)
        #: What seals the values at rest, or None.
        self.sealer = sealer
        #: The per-user index of this engine's sessions.
        self.users = UserIndex(store, self.user_key, self.max_sessions_per_user, sealer)
        self._writer = Writer(store, self.max_size, sealer)

    @classmethod
    def from_options(cls, store: RedisStore, options: Options) -> SessionEngine:
        """Return an engine on ``store`` with the lifecycle settings of ``options``."""
        return cls(
            store,
            idle_timeout=options.idle_timeout,
            max_size=options.max_size,
            min_attempts=options.min_attempts,
            user_key=options.user_key,
            renew_on_login=options.renew_on_login,
            max_sessions_per_user=options.max_sessions_per_user,
            sealer=Sealer.configured(options),
        )

    def open(
        self,
        cookie_token: str | None,
        *,
        lifetime: timedelta,
        idle_timeout: timedelta | _Default | None = ENGINE_DEFAULT,
        permanent_default: bool = False,
        session_class: type[Session] = Session,
        predecessor: Predecessor | None = None,
    ) -> Session:
        """Return the session for a request whose cookie held ``cookie_token``.

        Nothing is read yet. ``cookie_token`` must be well formed (see
        :func:`~.tokens.is_well_formed`) or None. ``lifetime`` is the absolute
        lifetime a new or renewed session gets, ``idle_timeout`` the sliding
        window (by default the engine's). The session is a ``session_class``,
        which adapters take from their own ``session_class``. Where the store
        does not know the cookie, the session takes up ``predecessor``'s
        values, if it has any (see :mod:`.migration`).

        .. versionchanged:: 0.2
            ``idle_timeout``, so an adapter can read it at request time;
            ``predecessor``.
        """
        idle = self.idle_timeout if isinstance(idle_timeout, _Default) else idle_timeout
        return session_class(
            self,
            cookie_token,
            lifetime_ms=milliseconds(lifetime),
            idle_ms=None if idle is None else milliseconds(idle),
            permanent_default=permanent_default,
            predecessor=predecessor,
        )

    def load(
        self,
        state: SessionState,
        cookie_token: str | None,
        predecessor: Predecessor | None = None,
    ) -> tuple[SessionState, dict[Any, Any]]:
        """Read a session's record: one script that also slides its idle timeout.

        Where there is none, the session takes up ``predecessor``'s values,
        which a save then stores under a new token.
        """
        now = now_ms()
        found, key = None, ""
        if cookie_token is not None:
            key = self.store.key_for(cookie_token)
            idle_expiry = None if state.idle_ms is None else now + state.idle_ms
            blob = self.store.find(key, idle_expiry_ms=idle_expiry, sliding=True)
            found = None if blob is None else self._writer.read(blob, cookie_token, key)
        if found is None or found[0].deadline_ms <= now:
            inherited = None if predecessor is None else self._inherit(predecessor, state, now)
            if inherited is not None:
                return state.started(Status.LOADED, now)._replace(inherited=True), inherited
            return state.started(Status.LOADED, now), {}
        assert cookie_token is not None
        record, values = found
        user = self.users.user_of(values)
        loaded = state.stored(
            record, record.tag, token=cookie_token, key=key, now_ms=now, user=user
        )
        return loaded, values

    def _inherit(
        self, predecessor: Predecessor, state: SessionState, now: int
    ) -> dict[Any, Any] | None:
        """``predecessor``'s values, if it has any and they can be stored here."""
        values = predecessor.values()
        if not values:
            return None
        try:
            self._writer.check(state.started(Status.LOADED, now), values)
        except (UnsupportedValueError, SessionTooLargeError) as error:
            logger.warning("a session of the old store was not taken up: %s", error)
            return None
        return values

    def destroy(
        self,
        state: SessionState,
        cookie_token: str | None,
        predecessor: Predecessor | None = None,
    ) -> SessionState:
        """Delete a session's record now; return the state of a new, empty session.

        The delete is unconditional: a logout wins over any write in flight.
        Where the cookie names no session of ours, a session of the old store
        that it names is deleted too.
        """
        unread = state.status is Status.UNLOADED
        if unread:  # the cookie names the record
            key = None if cookie_token is None else self.store.key_for(cookie_token)
        else:
            key = state.key
        token = cookie_token if unread else state.token
        ours = key is not None and self.users.end(key, token)
        if predecessor is not None and (state.inherited or (unread and not ours)):
            predecessor.forget()  # the cookie may name a session of the old store
        return state.started(Status.DESTROYED, now_ms())

    def session_id(self, key: str) -> str:
        """Return the id the admin shows for the record at ``key``: never a token."""
        return self.store.keys.public_id(key)

    def commit(self, session: Session) -> Outcome:
        """Save what the request did to the session.

        A stored session is written with compare-and-set against the revision
        the request read. If another request wrote first, this request's own
        changes (the keys it set or deleted) are applied to what that request
        left, and the write is tried again. A session that another request
        destroyed or renewed meanwhile is not written back.

        :raises UnsupportedValueError: a value cannot be encoded.
        :raises SessionTooLargeError: the record would exceed ``max_size``;
            the stored record is left as it was.
        :raises SessionConflictError: the record kept changing under us.
        :raises SessionStoreError: the store failed.
        """
        state, values = session._snapshot()
        if state.status is Status.UNLOADED:
            return Outcome.UNTOUCHED
        if self._logged_in(state, values):
            state = state._replace(status=Status.RENEWED)  # a new token for a new user
        fresh_token = new_token()  # where a new or renewed session goes
        save = self._save if self.user_key is None else self._save_indexed
        try:
            outcome, saved_state, saved = save(state, values, fresh_token)
        except SessionStoreError as error:
            if not self._writer.excuses(state, values, error):
                raise
            outcome, saved_state, saved = Outcome.UNCHANGED, state, values
        session._adopt(saved_state, saved if saved is not values else None)
        if state.inherited:
            self._forget(session._predecessor)
        if outcome in _WRITTEN:
            session.modified = True  # a nested change was found: the cookie goes out too
        return outcome

    def _save_indexed(
        self, state: SessionState, values: dict[Any, Any], fresh_token: str
    ) -> tuple[Outcome, SessionState, dict[Any, Any]]:
        """Save, keeping the user index in step: enter first, write, then settle.

        See :mod:`.users` for why this order means no session outlives a
        "log out everywhere" that overlaps its write.
        """
        before = (state.user, state.key)
        user = self.users.user_of(values)
        key = self._writer.destination(state, values, fresh_token)
        renewed = state.status is Status.RENEWED
        deadline_ms = now_ms() + state.span_ms if renewed else state.deadline_ms
        try:
            rescore = state.expiry_set or state.rewrite  # a rewrite re-enters the current name
            entry = self.users.enter(before, (user, key), deadline_ms, rescore=rescore)
        except Purged:
            assert state.key is not None
            self.users.end(state.key)  # finish what the purge started
            return Outcome.VANISHED, state, values
        try:
            outcome, saved_state, saved = self._save(state, values, fresh_token)
        except BaseException:
            if entry is not None:
                self.users.withdraw(entry)
            raise
        if outcome not in _WRITTEN:
            if entry is not None:
                self.users.withdraw(entry)
            return outcome, saved_state, saved
        after = (self.users.user_of(saved), saved_state.key)
        if not self.users.written(entry, before, after, saved_state.deadline_ms):
            return Outcome.VANISHED, state, values  # its user's sessions were ended meanwhile
        if after[0] != saved_state.user:
            saved_state = saved_state._replace(user=after[0])
        return outcome, saved_state, saved

    def _logged_in(self, state: SessionState, values: dict[Any, Any]) -> bool:
        """Whether the request put a different user into a stored session."""
        if not (self.renew_on_login and state.status is Status.LOADED and state.token):
            return False
        user = self.users.user_of(values)
        return user is not None and user != state.user

    def _save(
        self, state: SessionState, values: dict[Any, Any], fresh_token: str
    ) -> tuple[Outcome, SessionState, dict[Any, Any]]:
        """Write ``values``, merged into any concurrent write; return the outcome, state, values."""
        changes: Changes | None = None
        locked: tuple[str, str] | None = None
        hold_until = 0.0
        try:
            for attempt in itertools.count(1):
                outcome, state, current = self._writer.attempt(state, values, fresh_token)
                if outcome is not None:
                    return outcome, state, values
                token, key = state.token, state.key
                assert current is not None and token is not None and key is not None
                if changes is None:
                    changes = changes_since(state.stored_values, values)
                found = self._writer.read(current, token, key)
                if found is None:
                    return Outcome.VANISHED, state, values
                record, theirs = found
                values, state = changes.applied_to(theirs), state.rebased(record)
                if locked is None and attempt >= _OPTIMISTIC_ATTEMPTS:
                    # Busy session: queue for its lock, so saves land one at a time.
                    locked = (key, self._writer.lock(key))
                    hold_until = time.monotonic() + _LOCK_HOLD_SECONDS
                elif attempt >= self.min_attempts and time.monotonic() > hold_until:
                    break
        finally:
            if locked is not None:
                self.store.unlock(*locked)
        raise SessionConflictError(
            f"the session changed under each of {attempt} attempts to save it"
        )

    def _forget(self, predecessor: Predecessor | None) -> None:
        """Delete an inherited session from the old store; a failure is logged (it expires)."""
        if predecessor is None:
            return
        try:
            predecessor.forget()
        except SessionStoreError as error:
            logger.warning("a session taken up from the old store was not deleted there: %s", error)
