"""Token rotation: a long-lived session gets a new token now and then, and the old one a grace.

With ``rotate_every`` set (``SCS_ROTATE_EVERY``), the first request that
loads a session whose token is older than that moves the session to a new
token, as ``renew()`` does, with its values and its entry in the user's
index; but its absolute deadline stays, as a rotation is no new lifetime.

The old record is not deleted: the same write replaces it with a
*forwarding record*, which lives ``rotate_grace`` (``SCS_ROTATE_GRACE``, 10 s)
and holds the new token masked so that only the old token unmasks it
(:func:`.tokens.forward`). A request with the old token that reads it, or
whose compare-and-set meets it, follows it: it reads and writes the new
record, and its response carries the new cookie. So parallel requests that
straddle a rotation are neither logged out nor lose a write. After the grace
the old token opens nothing.

A forwarding record leads only to the current record, so ending that record
(``destroy()``, a renewal, a login, "log out everywhere") ends both tokens;
a ``destroy()`` that comes with the old token follows it and ends the
session. Renewal, login and destroy never leave one: they end the old token
at once, which is what stops session fixation.

To every other reader (the admin, a purge, a version before 0.2) a
forwarding record is an emptied session: its values are the empty map, and
its own idle timeout of none keeps the read script from sliding its expiry.
"""

from __future__ import annotations

from . import codec
from .record import Record
from .tokens import followed, forward, is_well_formed

#: How many forwarding records a request follows at most, one after another.
MOST_HOPS = 3


def due(record: Record, now_ms: int, every_ms: int | None) -> bool:
    """Whether the token of ``record`` is older than ``every_ms`` (None: never)."""
    if every_ms is None or record.forward is not None:
        return False
    issued_ms = record.created_ms if record.issued_ms is None else record.issued_ms
    return now_ms - issued_ms >= every_ms


def forwarding_record(
    *,
    revision: int,
    created_ms: int,
    deadline_ms: int,
    old_token: str,
    new_token: str,
    now_ms: int,
    grace_ms: int,
) -> Record:
    """The record ``old_token`` leaves behind for its grace, leading to ``new_token``.

    Its ``revision`` must follow the one it replaces, so a write in flight
    that read the old record meets it instead of overwriting it.
    """
    return Record(
        revision,
        min(deadline_ms, now_ms + grace_ms),
        created_ms,
        codec.EMPTY,
        last_seen_ms=now_ms,
        idle_ms=0,
        forward=forward(old_token, new_token),
    )


def follow(record: Record, token: str, now_ms: int) -> str | None:
    """The token a forwarding ``record``, read with ``token``, leads to.

    None when it is no forwarding record, its grace is over, or it does not
    unmask to a token.
    """
    if record.forward is None or record.deadline_ms <= now_ms:
        return None
    new_token = followed(token, record.forward)
    return new_token if is_well_formed(new_token) else None
