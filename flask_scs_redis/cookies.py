"""Cookie arithmetic and settings checks shared by the adapters."""

from __future__ import annotations

import math
import re
import time
from datetime import datetime

from werkzeug.datastructures import Headers, ResponseCacheControl
from werkzeug.http import parse_cache_control_header, parse_set_header

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


_NO_CACHE_SET_COOKIE = 'no-cache="Set-Cookie"'


def vary_on_cookie(headers: Headers) -> None:
    """Add ``Cookie`` to the Vary header, keeping what the app put there."""
    current = headers.get("Vary")
    if not current:
        headers["Vary"] = "Cookie"
        return
    values = parse_set_header(current)
    if "cookie" not in values and "*" not in values:
        values.add("Cookie")
        headers["Vary"] = values.to_header()


def no_cache_set_cookie(cache_control: str | None) -> str:
    """Add ``no-cache="Set-Cookie"`` to a Cache-Control header value.

    A shared cache then never stores a response that sets the session cookie
    and hands it to someone else (OWASP's advice). A stricter ``no-cache`` or
    ``no-store`` already there is kept as it is.
    """
    if not cache_control:
        return _NO_CACHE_SET_COOKIE
    parsed = parse_cache_control_header(cache_control, cls=ResponseCacheControl)
    fields = parsed.no_cache
    if parsed.no_store or fields is True or fields == "*":
        return cache_control or ""
    names = [name.strip() for name in (fields or "").split(",") if name.strip()]
    if any(name.lower() == "set-cookie" for name in names):
        return cache_control or ""
    parsed.no_cache = None
    # The quoted form, which RFC 9111 asks senders to use for field names.
    directive = 'no-cache="{}"'.format(", ".join([*names, "Set-Cookie"]))
    rest = parsed.to_header()
    return f"{rest}, {directive}" if rest else directive
