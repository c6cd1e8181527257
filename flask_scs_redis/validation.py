"""How each option's value is checked: durations, counts, flags and text.

Each check takes the setting's name, as the caller spells it, and the value;
it returns the value as the options hold it, or raises
:class:`~.errors.ConfigurationError` naming the setting.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from .errors import ConfigurationError

#: A check: the setting's name and its value in, the checked value out.
Check = Callable[[str, Any], Any]

#: The longest duration any option takes: 100 years. A deadline past the
#: year 9999 is no datetime (no cookie ``Expires``, no ``session.expires``),
#: and a socket timeout past 2**63 ns (292 years) overflows; within the bound
#: both hold until the year 9899, and it refuses nothing a real app needs.
MAX_DURATION = timedelta(days=36525)


def duration(name: str, value: Any) -> timedelta:
    """Return ``value`` (a timedelta or a number of seconds) as a positive timedelta.

    :raises ConfigurationError: the value is not a positive duration of at
        most :data:`MAX_DURATION`.
    """
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            result = timedelta(seconds=value)
        except (OverflowError, ValueError):  # inf, nan, or past timedelta's range
            raise ConfigurationError(f"{name} must be a finite duration, not {value!r}") from None
    else:
        raise ConfigurationError(
            f"{name} must be a timedelta or a number of seconds, not {value!r}"
        )
    if result <= timedelta(0):
        raise ConfigurationError(f"{name} must be positive, not {value!r}")
    if result > MAX_DURATION:
        raise ConfigurationError(
            f"{name} must be at most 100 years (timedelta(days=36525)), not {value!r}"
        )
    return result


def grace(name: str, value: Any) -> timedelta:
    """Return ``value`` as a duration, where zero is allowed too."""
    if value == 0 or value == timedelta(0):
        return timedelta(0)
    return duration(name, value)


def check_rotation(every: timedelta | None, grace: timedelta, names: tuple[str, str]) -> None:
    """Refuse a rotation grace as long as the rotation period: tokens would pile up."""
    if every is not None and grace >= every:
        raise ConfigurationError(f"{names[1]} must be shorter than {names[0]}")


def positive_int(name: str, value: Any) -> int:
    """Return ``value`` if it is an int above zero."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigurationError(f"{name} must be a whole number above zero, not {value!r}")
    return value


def count(name: str, value: Any) -> int:
    """Return ``value`` if it is an int from zero up."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigurationError(f"{name} must be a whole number from zero up, not {value!r}")
    return value


def flag(name: str, value: Any) -> bool:
    """Return ``value`` if it is True or False."""
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False, not {value!r}")
    return value


def text(name: str, value: Any) -> str:
    """Return ``value`` if it is a str."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a str, not {value!r}")
    return value


def optional(check: Check) -> Check:
    """The same check, with None allowed and returned as is."""
    return lambda name, value: None if value is None else check(name, value)
