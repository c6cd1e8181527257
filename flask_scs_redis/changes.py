"""What a request changed in its session, and how that lands on another request's save.

A save that loses the compare-and-set to a concurrent write does not
overwrite it: it applies only this request's own changes (the keys it set,
changed in place or deleted since it read the session) to what the other
request left, and tries again.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from . import codec

_SCALARS = (str, bytes, int, bool, type(None))


class Changes(NamedTuple):
    """The values a request wrote, and the keys it deleted."""

    written: dict[Any, Any]
    deleted: set[Any]

    def applied_to(self, values: dict[Any, Any]) -> dict[Any, Any]:
        """Return ``values`` with these changes made to them (in place)."""
        for key in self.deleted:
            values.pop(key, None)
        values.update(self.written)
        return values


def changes_since(stored_values: bytes | None, values: dict[Any, Any]) -> Changes:
    """Return what ``values`` changed since they were read as ``stored_values``."""
    loaded = codec.decode(stored_values or codec.EMPTY)
    written = {
        key: value
        for key, value in values.items()
        if key not in loaded or not _same(value, loaded[key])
    }
    return Changes(written, set(loaded.keys() - values.keys()))


def _same(value: Any, other: Any) -> bool:
    """Whether two session values would be stored alike."""
    if type(value) is not type(other):
        return False
    if type(value) in _SCALARS:
        return bool(value == other)
    return codec.encode({0: value}) == codec.encode({0: other})
