"""Cookie arithmetic and settings checks shared by the adapters."""

from __future__ import annotations

import math
import re
import time
from datetime import datetime

from .errors import ConfigurationError

# RFC 6265 cookie-name: an RFC 7230 token.
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SAMESITE = {"strict": "Strict", "lax": "Lax", "none": "None"}


def max_age_until(expires: datetime | None) -> int | None:
    """Return whole seconds from now until ``expires``, never negative; None for None.

    Rounded down, so a cookie never outlives the record it points at.
    """
    if expires is None:
        return None
    return max(0, math.floor(expires.timestamp() - time.time()))


def cookie_name(value: object) -> str:
    """Return ``value`` if it is a valid cookie name.

    :raises ConfigurationError: it is not.
    """
    if not isinstance(value, str) or not _COOKIE_NAME.fullmatch(value):
        raise ConfigurationError(
            f"cookie_name must be a cookie token such as 'session', not {value!r}"
        )
    return value


def samesite(value: object, *, secure: bool) -> str | None:
    """Return the SameSite value spelled as browsers expect it, or None.

    :raises ConfigurationError: it is not Strict, Lax, None or None, or it is
        "None" on a cookie that is not Secure (browsers drop such cookies).
    """
    if value is None:
        return None
    spelled = _SAMESITE.get(value.lower()) if isinstance(value, str) else None
    if spelled is None:
        raise ConfigurationError(
            f"cookie_samesite must be 'Strict', 'Lax', 'None' or None, not {value!r}"
        )
    if spelled == "None" and not secure:
        raise ConfigurationError(
            "cookie_samesite='None' needs cookie_secure=True; browsers reject it otherwise"
        )
    return spelled
