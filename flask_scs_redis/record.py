"""The stored record: the session's encoded values plus what the engine needs.

A record is a msgpack array ``[format, revision, deadline_ms, created_ms,
values, last_seen_ms, description, lifetime_ms, idle_ms, issued_ms,
forward]``: the format
version; a revision that every write increments; the absolute deadline, the
creation time and the time of the last write in Unix milliseconds; the values
as encoded by :mod:`.codec`, kept as one opaque byte string so the engine can
tell a change by comparing bytes; an optional short description of the
client that the app may set; and the session's own lifetime and idle timeout
in milliseconds, set by ``Session.set_expiry`` (nil: the app's; an idle
timeout of 0: none); when the token was issued, which token rotation reads
(see :mod:`.rotation`); and, in the record a rotated token leaves behind for
its grace window, the new token masked for the old (:func:`.tokens.forward`).
The last four are written only when set, and the read script finds the idle
timeout by walking the fields before it. Readers need the first five fields
and ignore what they don't know, so later versions may append more.

With encryption at rest (see :mod:`.sealing`) the values field holds them
sealed under the session's token, with every other field authenticated
alongside; :func:`read_record` opens them given the token, and the engine
only ever sees the values open.

Because the format and the revision come first, the bytes that begin a record
identify its revision (:attr:`Record.tag`). The store's compare-and-set
script compares just those bytes, so it needs no msgpack parser.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgpack

from . import codec
from .sealing import Sealer, SealError, is_sealed

FORMAT_VERSION = 1
_REQUIRED_FIELDS = 5
_ABSENT = (None,) * 11


class CorruptRecordError(ValueError):
    """A stored record, or the values in it, cannot be read by this version."""


class Record(NamedTuple):
    """One session as stored."""

    revision: int
    deadline_ms: int
    created_ms: int
    values: bytes
    last_seen_ms: int = 0
    description: str | None = None
    #: The session's own absolute lifetime, which a renewal starts again; None: the app's.
    lifetime_ms: int | None = None
    #: The session's own idle timeout; 0: none; None: the app's.
    idle_ms: int | None = None
    #: When its token was issued (None: as old as the session).
    issued_ms: int | None = None
    #: In a rotated token's record, the new token, masked for the old one.
    forward: bytes | None = None
    #: The bytes that begin the stored record, up to its revision (not stored apart).
    tag: bytes = b""
    #: Whether the values were stored sealed (not stored apart).
    sealed: bool = False
    #: Whether a save must rewrite it though nothing changed: once opened, it
    #: was found stored otherwise than the sealer stores now (not stored apart).
    rewrite: bool = False

    def __repr__(self) -> str:
        # The values are the session's; a repr that reaches a log shows their size only.
        return (
            f"Record(revision={self.revision}, deadline_ms={self.deadline_ms},"
            f" values=<{len(self.values)} bytes>)"
        )


def pack_record(
    record: Record, sealer: Sealer | None = None, token: str = ""
) -> tuple[bytes, bytes]:
    """Return the bytes stored for ``record``, and their tag.

    With a ``sealer`` the values are sealed for ``token``, unless there are
    none: an emptied record is stored as the empty map, which reveals nothing
    and which the admin can then tell from a live session.
    """
    values = record.values
    if sealer is not None and sealer.sealing and values != codec.EMPTY:
        values = sealer.seal(token, values, _metadata(record))
    fields: tuple[Any, ...] = (
        FORMAT_VERSION,
        record.revision,
        record.deadline_ms,
        record.created_ms,
        values,
        record.last_seen_ms,
        record.description,
    )
    if record.forward is not None:
        fields += (record.lifetime_ms, record.idle_ms, record.issued_ms, record.forward)
    elif record.issued_ms is not None:
        fields += (record.lifetime_ms, record.idle_ms, record.issued_ms)
    elif record.lifetime_ms is not None or record.idle_ms is not None:
        fields += (record.lifetime_ms, record.idle_ms)
    blob = msgpack.packb(fields, use_bin_type=True)
    return blob, _tag(blob)


# The bytes msgpack gives an int, by its first byte: fixints take one; the
# others say how many follow (uint8..uint64, int8..int64).
_INT_SIZES = {0xCC: 2, 0xCD: 3, 0xCE: 5, 0xCF: 9, 0xD0: 2, 0xD1: 3, 0xD2: 5, 0xD3: 9}


def _tag(blob: bytes) -> bytes:
    """A packed record's first bytes, up to its revision, as msgpack wrote them.

    A fixarray header and a fixint format take a byte each; msgpack writes
    the revision in its shortest form, so equal tags mean equal revisions.
    """
    return blob[: 2 + _INT_SIZES.get(blob[2], 1)]


def unpack_record(blob: bytes) -> Record:
    """Parse what :func:`pack_record` made.

    :raises CorruptRecordError: ``blob`` is not a record of a known format.
    """
    try:
        fields = msgpack.unpackb(blob, raw=False, use_list=False)
    except Exception as exc:  # msgpack raises several unrelated types, some holding the data
        raise CorruptRecordError(f"not msgpack ({type(exc).__name__})") from None
    count = len(fields) if type(fields) is tuple else 0
    if count < _REQUIRED_FIELDS or count > 15:
        raise CorruptRecordError("not a session record")
    # Unpacked in one go: the optional fields padded with None (wrong types are left out).
    padded = fields + _ABSENT
    version, revision, deadline_ms, created_ms, values, seen, description = padded[:7]
    lifetime_ms, idle_ms, issued_ms, forward = padded[7:11]
    if type(version) is not int or version != FORMAT_VERSION:
        raise CorruptRecordError(f"unknown record format {version!r}")
    if type(revision) is not int or type(deadline_ms) is not int or type(created_ms) is not int:
        raise CorruptRecordError("record fields have the wrong types")
    if type(values) is not bytes:
        raise CorruptRecordError("record values are not bytes")
    last_seen_ms = seen if type(seen) is int else created_ms
    if type(description) is not str:
        description = None
    if type(lifetime_ms) is not int or lifetime_ms < 1:
        lifetime_ms = None
    if type(idle_ms) is not int or idle_ms < 0:
        idle_ms = None
    if type(issued_ms) is not int:
        issued_ms = None
    if type(forward) is not bytes:
        forward = None
    return Record(
        revision,
        deadline_ms,
        created_ms,
        values,
        last_seen_ms,
        description,
        lifetime_ms,
        idle_ms,
        issued_ms,
        forward,
        _tag(blob),
        is_sealed(values),
    )


def _metadata(record: Record) -> bytes:
    """The fields sealed values are authenticated with: all but the values, as read."""
    fields: tuple[Any, ...] = (
        FORMAT_VERSION,
        record.revision,
        record.deadline_ms,
        record.created_ms,
        record.last_seen_ms,
        record.description,
        record.lifetime_ms,
        record.idle_ms,
    )
    if record.issued_ms is not None:  # sealed before 0.2's rotation: without it
        fields += (record.issued_ms,)
    return msgpack.packb(fields, use_bin_type=True)


def open_record(record: Record, sealer: Sealer | None, token: str | None) -> Record:
    """``record`` with its values open: sealed ones opened for ``token``, others as they are.

    Values stored open are taken as they are also with a ``sealer``, so
    encryption can be switched on over a live store. The record answered
    says whether a save must rewrite it (:attr:`Record.rewrite`).

    :raises CorruptRecordError: the values are sealed and cannot be opened
        here: no sealer or no token, another token's, or tampered with; or
        they are stored in the clear and the sealer requires sealing.
    """
    rewrite = sealer is not None and not sealer.stores_as_now(record.values)
    if not record.sealed:
        if sealer is not None and sealer.requiring and record.values != codec.EMPTY:
            raise CorruptRecordError("session values stored in the clear, and sealing is required")
        return record._replace(rewrite=rewrite)
    if sealer is None:
        raise CorruptRecordError("sealed session values, and encryption is off")
    if token is None:
        raise CorruptRecordError("sealed session values, and no token to open them")
    try:
        values = sealer.open(token, record.values, _metadata(record))
        return record._replace(values=values, rewrite=rewrite)
    except SealError as exc:
        raise CorruptRecordError(str(exc)) from None


def read_record(
    blob: bytes, sealer: Sealer | None = None, token: str | None = None
) -> tuple[Record, dict[Any, Any]]:
    """Parse a stored record, open its values for ``token`` if sealed, and decode them.

    :raises CorruptRecordError: the record or its values cannot be read.
    """
    record = open_record(unpack_record(blob), sealer, token)
    return record, values_of(record)


def values_of(record: Record) -> dict[Any, Any]:
    """Decode the open values of ``record``.

    :raises CorruptRecordError: they cannot be decoded.
    """
    try:
        return codec.decode(record.values)
    except ValueError as exc:
        raise CorruptRecordError(str(exc)) from exc
