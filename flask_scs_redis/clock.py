"""The one clock: Unix milliseconds, as records and Redis expiries count time."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone


def now_ms() -> int:
    """Return the current Unix time in whole milliseconds."""
    return int(time.time() * 1000)


def milliseconds(duration: timedelta) -> int:
    """Return ``duration`` in whole milliseconds."""
    return int(duration.total_seconds() * 1000)


def moment(unix_ms: int) -> datetime:
    """Return the Unix time ``unix_ms`` as an aware UTC datetime."""
    return datetime.fromtimestamp(unix_ms / 1000, tz=timezone.utc)
