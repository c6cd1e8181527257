"""The session lifecycle, shared by every adapter: load, commit, renew, destroy.

The engine holds configuration only. Each request's state is a
:class:`~.state.SessionState` that the engine makes anew at every step and the
request's :class:`~.session.Session` holds. The engine speaks to storage only
through :class:`~.store.RedisStore` and knows nothing of HTTP, so every
adapter (the Flask interface, the WSGI middleware) gets the same behaviour.
"""

from __future__ import annotations

import enum
import logging
from datetime import timedelta
from typing import Any

from .clock import milliseconds, now_ms
from .errors import (
    ConfigurationError,
    SessionStoreError,
    SessionTooLargeError,
    UnsupportedValueError,
)
from .options import Options, check
from .rotation import due
from .saving import WRITTEN, Saved, Saver
from .sealing import Sealer
from .session import Predecessor, Session
from .signals import Announcer
from .state import Outcome, SessionState, Status
from .store import RedisStore
from .tokens import new_token
from .users import UserIndex
from .validation import check_rotation
from .writes import Writer

logger = logging.getLogger("flask_scs_redis")


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
    With ``rotate_every``, a token that old is rotated, and the old token
    still opens the session for ``rotate_grace`` (see :mod:`.rotation`).
    The engine's signals (see :mod:`.signals`) go out with ``sender`` as
    their sender (None: the engine). Every argument is checked as
    :class:`~.options.Options` checks it.

    .. versionchanged:: 0.1
        ``max_attempts`` is now ``min_attempts``, as it is a least number.
    .. versionchanged:: 0.2
        ``sealer``, ``rotate_every``, ``rotate_grace`` and ``sender``.
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
        rotate_every: timedelta | float | None = Options.rotate_every,
        rotate_grace: timedelta | float = Options.rotate_grace,
        sender: Any = None,
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
        self.rotate_every: timedelta | None = check("rotate_every", rotate_every)
        self.rotate_grace: timedelta = check("rotate_grace", rotate_grace)
        check_rotation(self.rotate_every, self.rotate_grace, ("rotate_every", "rotate_grace"))
        every = self.rotate_every
        self._rotate_every_ms = None if every is None else milliseconds(every)
        if sealer is not None:
            sealer.check_use(store.hash_tokens, self.user_key)
        #: What seals the values at rest, or None.
        self.sealer = sealer
        #: What sends this engine's signals.
        self.announcer = Announcer(self if sender is None else sender, store.keys.public_id)
        #: The per-user index of this engine's sessions.
        self.users = UserIndex(
            store, self.user_key, self.max_sessions_per_user, sealer, self.announcer
        )
        grace_ms = milliseconds(self.rotate_grace)
        self._writer = Writer(
            store, self.max_size, sealer, grace_ms=grace_ms, announcer=self.announcer
        )
        self._saver = Saver(store, self._writer, self.users, self.min_attempts)

    @classmethod
    def from_options(cls, store: RedisStore, options: Options, sender: Any = None) -> SessionEngine:
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
            rotate_every=options.rotate_every,
            rotate_grace=options.rotate_grace,
            sender=sender,
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
        which a save then stores under a new token. A token within its grace
        after a rotation opens the session it was rotated to, with a second
        read; a token due for rotation is rotated at the save.
        """
        now = now_ms()
        found = None
        if cookie_token is not None:
            key = self.store.key_for(cookie_token)
            idle_expiry = None if state.idle_ms is None else now + state.idle_ms
            blob = self.store.find(key, idle_expiry_ms=idle_expiry, sliding=True)
            found = self._writer.resolve(blob, cookie_token, key, idle_expiry_ms=idle_expiry)
        if found is None or found[0].deadline_ms <= now:
            inherited = None if predecessor is None else self._inherit(predecessor, state, now)
            if inherited is not None:
                return state.started(Status.LOADED, now)._replace(inherited=True), inherited
            return state.started(Status.LOADED, now), {}
        record, values, token, key = found
        user = self.users.user_of(values)
        loaded = state.stored(record, record.tag, token=token, key=key, now_ms=now, user=user)
        if due(record, now, self._rotate_every_ms):
            loaded = loaded._replace(status=Status.ROTATING)
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
        ours = key is not None and self.users.end(key, token, reason="destroy")
        if predecessor is not None and (state.inherited or (unread and not ours)):
            predecessor.forget()  # the cookie may name a session of the old store
        return state.started(Status.DESTROYED, now_ms())

    def session_id(self, key: str) -> str:
        """Return the id the admin shows for the record at ``key``: never a token."""
        return self.store.keys.public_id(key)

    def commit(self, session: Session, *, rotate: bool = True) -> Outcome:
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

        .. versionchanged:: 0.2
            ``rotate``: False leaves a token due for rotation as it is, for a
            save whose response can no longer carry a new cookie.
        """
        state, values = session._snapshot()
        if state.status is Status.UNLOADED:
            return Outcome.UNTOUCHED
        if state.status is Status.ROTATING and not rotate:
            state = state._replace(status=Status.LOADED)
        if self._logged_in(state, values):
            state = state._replace(status=Status.RENEWED)  # a new token for a new user
        if self._writer.unchanged(state, values):  # a read: nothing to write, nor to index
            outcome, saved_state, saved, was_at = Outcome.UNCHANGED, state, values, state.key
        else:
            try:
                outcome, saved_state, saved, was_at = self._save(state, values)
            except SessionStoreError as error:
                if not self._writer.excuses(state, values, error):
                    raise
                outcome, saved_state, saved, was_at = Outcome.UNCHANGED, state, values, None
        session._adopt(saved_state, saved if saved is not values else None)
        if state.inherited:
            self._forget(session._predecessor)
        if outcome in WRITTEN or saved_state.token not in (None, session._cookie_token):
            # A change was found (a nested one too), or the cookie's token was
            # rotated by another request: the cookie goes out.
            session.modified = True
        self._announce(outcome, state, values, saved_state, was_at)
        return outcome

    def _save(self, state: SessionState, values: dict[Any, Any]) -> Saved:
        # Where a new or renewed session goes; a stored one keeps its token.
        kept = state.status is Status.LOADED and state.token is not None
        return self._saver.save(state, values, "" if kept else new_token())

    def _announce(
        self,
        outcome: Outcome,
        state: SessionState,
        values: dict[Any, Any],
        saved: SessionState,
        was_at: str | None,
    ) -> None:
        """Send the signal for what a save did, if it began or ended a session or a token."""
        if outcome is Outcome.CREATED and saved.key is not None:
            self.announcer.created(saved.key, saved.user, "migrated" if state.inherited else "new")
        elif outcome is Outcome.RENEWED and saved.key is not None and was_at is not None:
            reason = "rotation" if state.status is Status.ROTATING else "renew"
            if self._new_user(state, values):
                reason = "login"
            self.announcer.renewed(saved.key, was_at, saved.user, reason)
        elif outcome is Outcome.ENDED and was_at is not None:
            self.announcer.destroyed(was_at, state.user, "emptied")

    def _logged_in(self, state: SessionState, values: dict[Any, Any]) -> bool:
        """Whether the request put a different user into a stored session."""
        stored = state.status is Status.LOADED or state.status is Status.ROTATING
        return self.renew_on_login and stored and self._new_user(state, values)

    def _new_user(self, state: SessionState, values: dict[Any, Any]) -> bool:
        """Whether ``values`` hold a user, and another than the stored session's."""
        user = self.users.user_of(values)
        return state.token is not None and user is not None and user != state.user

    def _forget(self, predecessor: Predecessor | None) -> None:
        """Delete an inherited session from the old store; a failure is logged (it expires)."""
        if predecessor is None:
            return
        try:
            predecessor.forget()
        except SessionStoreError as error:
            logger.warning("a session taken up from the old store was not deleted there: %s", error)
