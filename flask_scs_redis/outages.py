"""The answer to a request the session store failed, the same from every adapter.

A store outage gets a fresh ``503 Service Unavailable``: none of the view's
headers (its caching, ``ETag``, encoding, attachment, cookies) survive into
it, so no cache keeps it and no browser misreads it. Its cause is logged as
a WARNING, at most once per cause and interval, so an outage cannot flood the
log.
"""

from __future__ import annotations

import logging
import threading
import time

from .errors import SessionStoreUnavailable

logger = logging.getLogger("flask_scs_redis")

STATUS = "503 Service Unavailable"
BODY = b"Sessions are unavailable for a moment. Please try again shortly.\n"
#: Seconds during which a cause already logged is only counted.
LOG_INTERVAL = 10.0


def outage_headers(retry_after: int) -> list[tuple[str, str]]:
    """The headers of the 503: ``Retry-After``, ``no-store``, and the body's type and length."""
    return [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(BODY))),
        ("Retry-After", str(retry_after)),
        ("Cache-Control", "no-store"),
    ]


class OutageLog:
    """Log each cause once per :data:`LOG_INTERVAL`, then how often it recurred."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}

    def reset(self) -> None:
        """Forget what was logged, so the next outage of each cause is logged at once."""
        with self._lock:
            self._last.clear()

    def log(self, error: SessionStoreUnavailable) -> None:
        """Log ``error`` as a WARNING, unless its cause was logged in the last interval."""
        cause = str(error)
        now = time.monotonic()
        with self._lock:
            logged_at, suppressed = self._last.get(cause, (-LOG_INTERVAL, 0))
            if now - logged_at < LOG_INTERVAL:
                self._last[cause] = (logged_at, suppressed + 1)
                return
            self._last[cause] = (now, 0)
            if len(self._last) > 100:  # causes carry ports and hosts: keep the table small
                self._last = {cause: (now, 0)}
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        logger.warning("session store unavailable, answering 503: %s%s", cause, more)


#: The log of this process's outages.
OUTAGE_LOG = OutageLog()
log_outage = OUTAGE_LOG.log
