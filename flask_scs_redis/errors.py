"""The exceptions this package raises, under one base class.

Catch :class:`SessionError` to handle every failure of the session layer, or
a subclass to handle one kind.
"""

from __future__ import annotations


class SessionError(Exception):
    """Base class of every error raised by flask-scs-redis."""


class ConfigurationError(SessionError, ValueError):
    """A configuration value is missing, of the wrong type or out of range.

    Raised at set-up. A value only the server can judge (a database index it
    lacks), or a Flask lifetime changed after ``init_app``, is refused when
    first used, and then on each use until it is fixed; it is never a 503.
    """


class UnsupportedValueError(SessionError, TypeError):
    """A session value has a type the codec cannot store.

    The message names the type and the key path, such as
    ``session['cart'][2]``. Nothing is written.
    """


class SessionTooLargeError(SessionError, ValueError):
    """The encoded session is larger than the configured maximum.

    Raised before anything is written, so the stored record stays as it was.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"the encoded session is {size} bytes, over the limit of {limit} bytes"
            " (SCS_MAX_SIZE); keep large data elsewhere and store a reference"
        )
        self.size = size
        self.limit = limit


class SessionStoreError(SessionError):
    """The store failed to carry out a command."""


class SessionConflictError(SessionStoreError):
    """Other requests kept changing the session while this one tried to save it.

    Each save retries a bounded number of times, merging its own changes into
    what the others wrote; this is raised only when every attempt lost.
    """


class SessionStoreUnavailable(SessionStoreError):  # noqa: N818 - the name is public API
    """The store could not be reached, or did not answer in time."""
