"""The stored record: the session's encoded values plus what the engine needs.

A record is a msgpack array ``[format, deadline_ms, created_ms, values]``:
the format version, the absolute deadline and the creation time in Unix
milliseconds, and the values as encoded by :mod:`.codec`. Keeping the values
as one opaque byte string lets the engine tell a change by comparing bytes.
Later format versions may append fields; readers ignore what they don't know.
"""

from __future__ import annotations

from typing import NamedTuple

import msgpack

FORMAT_VERSION = 1


class CorruptRecordError(ValueError):
    """A stored record is not one this version can read."""


class Record(NamedTuple):
    """One session as stored."""

    deadline_ms: int
    created_ms: int
    values: bytes


def pack_record(record: Record) -> bytes:
    """Return the bytes stored for ``record``."""
    return msgpack.packb(
        (FORMAT_VERSION, record.deadline_ms, record.created_ms, record.values),
        use_bin_type=True,
    )


def unpack_record(blob: bytes) -> Record:
    """Parse what :func:`pack_record` made.

    :raises CorruptRecordError: ``blob`` is not a record of a known format.
    """
    try:
        fields = msgpack.unpackb(blob, raw=False, use_list=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise CorruptRecordError(f"not msgpack: {exc!r}") from exc
    if type(fields) is not tuple or len(fields) < 4:
        raise CorruptRecordError("not a session record")
    version, deadline_ms, created_ms, values = fields[:4]
    if version != FORMAT_VERSION or type(version) is not int:
        raise CorruptRecordError(f"unknown record format {version!r}")
    if type(deadline_ms) is not int or type(created_ms) is not int or type(values) is not bytes:
        raise CorruptRecordError("record fields have the wrong types")
    return Record(deadline_ms, created_ms, values)
