"""The stored record: the session's encoded values plus what the engine needs.

A record is a msgpack array ``[format, revision, deadline_ms, created_ms,
values]``: the format version; a revision that every write increments; the
absolute deadline and the creation time in Unix milliseconds; and the values
as encoded by :mod:`.codec`, kept as one opaque byte string so the engine can
tell a change by comparing bytes. Later format versions may append fields;
readers ignore what they don't know.

Because the format and the revision come first, the bytes that begin a record
identify its revision (:func:`revision_tag`). The store's compare-and-set
script compares just those bytes, so it needs no msgpack parser.
"""

from __future__ import annotations

from typing import NamedTuple

import msgpack

FORMAT_VERSION = 1
_FIELDS = 5


class CorruptRecordError(ValueError):
    """A stored record is not one this version can read."""


class Record(NamedTuple):
    """One session as stored."""

    revision: int
    deadline_ms: int
    created_ms: int
    values: bytes


def pack_record(record: Record) -> bytes:
    """Return the bytes stored for ``record``."""
    return msgpack.packb(
        (FORMAT_VERSION, record.revision, record.deadline_ms, record.created_ms, record.values),
        use_bin_type=True,
    )


def revision_tag(revision: int) -> bytes:
    """Return the bytes that begin every record of ``revision``.

    msgpack writes each integer in its shortest form, so equal tags mean
    equal revisions and different revisions never share a tag.
    """
    return (
        msgpack.Packer().pack_array_header(_FIELDS)
        + msgpack.packb(FORMAT_VERSION)
        + msgpack.packb(revision)
    )


def unpack_record(blob: bytes) -> Record:
    """Parse what :func:`pack_record` made.

    :raises CorruptRecordError: ``blob`` is not a record of a known format.
    """
    try:
        fields = msgpack.unpackb(blob, raw=False, use_list=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise CorruptRecordError(f"not msgpack: {exc!r}") from exc
    if type(fields) is not tuple or len(fields) < _FIELDS:
        raise CorruptRecordError("not a session record")
    version, revision, deadline_ms, created_ms, values = fields[:_FIELDS]
    if type(version) is not int or version != FORMAT_VERSION:
        raise CorruptRecordError(f"unknown record format {version!r}")
    if not all(type(field) is int for field in (revision, deadline_ms, created_ms)):
        raise CorruptRecordError("record fields have the wrong types")
    if type(values) is not bytes:
        raise CorruptRecordError("record values are not bytes")
    return Record(revision, deadline_ms, created_ms, values)
