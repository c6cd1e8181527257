"""Turn session values into msgpack bytes and back, without pickle.

Besides msgpack's own types (dict, list, str, bytes, int, float, bool, None)
the codec keeps tuple, set, frozenset, Markup, UUID, datetime (naive and
aware, microseconds kept), date, time, timedelta, Decimal, integers of any
size and strings holding lone surrogates, each as a msgpack extension type, so
every value comes back as the type it went in as, also when nested and also as
a dict key. Whatever it cannot store raises :class:`UnsupportedValueError`.

Types are matched exactly: a subclass of a supported type (an ``IntEnum``, an
``OrderedDict``) is refused rather than silently turned into its base type.
The one exception is msgpack's own: ``bytearray`` and ``memoryview`` are
stored as its bin type and come back as ``bytes``. An aware datetime or time
keeps its UTC offset; a named zone comes back as a fixed-offset timezone.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import msgpack
from markupsafe import Markup

from .errors import UnsupportedValueError

# Extension type codes. They are part of the stored format: never reuse one.
_TUPLE = 1
_MARKUP = 2
_UUID = 3
_DATETIME = 4
_DATE = 5
_TIME = 6
_TIMEDELTA = 7
_DECIMAL = 8
_SET = 9
_FROZENSET = 10
_DECIMAL_INT = 11  # an int as decimal digits: read, no longer written
_BIGINT = 12  # an int as signed big-endian bytes, as few as hold it
_SURROGATE_STR = 13  # a str with lone surrogates, as UTF-8 with 'surrogatepass'

# Packs one nested value; the string is the key-path step to report on error.
_PackNested = Callable[[Any, str], bytes]

_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1
# msgpack's limit on the length of a str, bin, array or map.
_MAX_LENGTH = 2**32 - 1
# Earlier versions wrote big ints with str(), which Python's default limit
# stops at 4300 digits; a longer one is not theirs, and int() of it is slow.
_MAX_DECIMAL_DIGITS = 4300
# Python refuses int/str conversions of more digits than a process-wide
# limit, which cannot be set below 640, so decimal digits are read in chunks.
_DIGITS_PER_CHUNK = 600
# Lists and dicts deeper than this are refused on the slow path, which runs
# only for a value the fast packer refused; Python's own limit comes soon after.
_MAX_DEPTH = 200
# Tuples, sets and timedeltas nest through Python callbacks and a fresh C
# unpacker each, so their depth is capped much lower, alike on both sides:
# what can be stored can always be read back, and a hostile record cannot
# exhaust the C stack.
MAX_EXTENSION_DEPTH = 16


class _Nesting(threading.local):
    depth = 0


_nesting = _Nesting()


def _pack_members(members: Any, pack: _PackNested) -> bytes:
    # Members are sorted by their encoding, so equal sets encode equally and
    # change detection is not fooled by iteration order.
    encoded = sorted(pack(member, "{...}") for member in members)
    header = msgpack.Packer().pack_array_header(len(encoded))
    return header + b"".join(encoded)


_ENCODERS: dict[type, tuple[int, Callable[[Any, _PackNested], bytes]]] = {
    tuple: (_TUPLE, lambda value, pack: pack(list(value), "")),
    Markup: (_MARKUP, lambda value, pack: str(value).encode("utf-8", "surrogatepass")),
    uuid.UUID: (_UUID, lambda value, pack: value.bytes),
    datetime: (_DATETIME, lambda value, pack: value.isoformat().encode("ascii")),
    date: (_DATE, lambda value, pack: value.isoformat().encode("ascii")),
    time: (_TIME, lambda value, pack: value.isoformat().encode("ascii")),
    timedelta: (
        _TIMEDELTA,
        lambda value, pack: pack([value.days, value.seconds, value.microseconds], ""),
    ),
    Decimal: (_DECIMAL, lambda value, pack: str(value).encode("ascii")),
    set: (_SET, _pack_members),
    frozenset: (_FROZENSET, _pack_members),
}


def _int_to_bytes(value: int) -> bytes:
    # Linear in the size, unlike str(), and free of Python's limit on it.
    size = (value if value >= 0 else ~value).bit_length() // 8 + 1
    return value.to_bytes(size, "big", signed=True)


def _int_from_decimal(data: bytes) -> int:
    digits = data.removeprefix(b"-")
    if not (0 < len(digits) <= _MAX_DECIMAL_DIGITS and digits.isdigit()):  # ASCII digits only
        raise ValueError("not an integer")
    value = 0
    for start in range(0, len(digits), _DIGITS_PER_CHUNK):
        chunk = digits[start : start + _DIGITS_PER_CHUNK]
        value = value * 10 ** len(chunk) + int(chunk)
    return -value if data.startswith(b"-") else value


def _from_isoformat(kind: type[datetime] | type[time]) -> Callable[[bytes], Any]:
    def from_isoformat(data: bytes) -> Any:
        text = data.decode("ascii")
        value = kind.fromisoformat(text)
        # fromisoformat reads an offset under a second ("+00:00:00.000001") as UTC.
        if text[-16:-7] in ("+00:00:00", "-00:00:00"):
            offset = timedelta(microseconds=int(text[-6:]))
            value = value.replace(tzinfo=timezone(-offset if text[-16] == "-" else offset))
        return value

    return from_isoformat


_DECODERS: dict[int, Callable[[bytes], Any]] = {
    _TUPLE: lambda data: tuple(_unpack(data)),
    # Only Markup that the app stored comes back as Markup; whoever can write
    # to Redis can forge any session anyway.
    _MARKUP: lambda data: Markup(data.decode("utf-8", "surrogatepass")),  # noqa: S704
    _UUID: lambda data: uuid.UUID(bytes=data),
    _DATETIME: _from_isoformat(datetime),
    _DATE: lambda data: date.fromisoformat(data.decode("ascii")),
    _TIME: _from_isoformat(time),
    _TIMEDELTA: lambda data: timedelta(*_unpack(data)),
    _DECIMAL: lambda data: Decimal(data.decode("ascii")),
    _SET: lambda data: set(_unpack(data)),
    _FROZENSET: lambda data: frozenset(_unpack(data)),
    _DECIMAL_INT: _int_from_decimal,
    _BIGINT: lambda data: int.from_bytes(data, "big", signed=True),
    _SURROGATE_STR: lambda data: data.decode("utf-8", "surrogatepass"),
}


def _ext_default(value: Any) -> msgpack.ExtType:
    entry = _ENCODERS.get(type(value))
    if entry is None or _nesting.depth >= MAX_EXTENSION_DEPTH:
        # The slow path below finds the value again and names its key path.
        raise TypeError(type(value).__qualname__)
    code, encode = entry
    _nesting.depth += 1
    try:
        return msgpack.ExtType(code, encode(value, _pack_fast))
    finally:
        _nesting.depth -= 1


def _pack_fast(value: Any, _step: str = "") -> bytes:
    return msgpack.packb(value, default=_ext_default, strict_types=True, use_bin_type=True)


def _refusal(kind: type, path: str, reason: str) -> UnsupportedValueError:
    name = f"{kind.__module__}.{kind.__qualname__}"
    return UnsupportedValueError(f"cannot store a value of type {name} at {path}; {reason}")


def _check_length(kind: type, size: int, path: str) -> None:
    if size > _MAX_LENGTH:
        raise _refusal(kind, path, f"msgpack holds at most {_MAX_LENGTH} bytes or items")


def _str_to_wire(value: str, path: str) -> Any:
    wire: str | msgpack.ExtType = value
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates, which UTF-8 cannot carry
        data = value.encode("utf-8", "surrogatepass")
        wire, size = msgpack.ExtType(_SURROGATE_STR, data), len(data)
    _check_length(str, size, path)
    return wire


def _key_step(key: Any) -> str:
    try:
        return f"[{key!r}]"
    except ValueError:  # an int past Python's process-wide limit on int-to-str
        return f"[<{type(key).__qualname__} key too long to show>]"


def _to_wire(value: Any, path: str, depth: int, extension_depth: int = 0) -> Any:
    """Rebuild ``value`` from msgpack-native types and extension types.

    This is the slow path: it runs only when the fast packer refused a value,
    to pack big integers and lone surrogates, or to name what cannot be stored.
    """
    if depth > _MAX_DEPTH:
        raise UnsupportedValueError(f"session value nested more than {_MAX_DEPTH} deep at {path}")
    kind = type(value)
    if kind is int:
        if _INT64_MIN <= value <= _UINT64_MAX:
            return value
        data = _int_to_bytes(value)
        _check_length(kind, len(data), path)
        return msgpack.ExtType(_BIGINT, data)
    if kind is str:
        if value.isascii() and len(value) <= _MAX_LENGTH:
            return value
        return _str_to_wire(value, path)
    if kind in (float, bool) or value is None:
        return value
    if kind in (bytes, bytearray, memoryview):
        try:
            size = memoryview(value).nbytes
        except ValueError:
            raise _refusal(kind, path, "it has been released") from None
        _check_length(kind, size, path)
        return bytes(value)  # as the fast packer does: msgpack has one bin type
    if kind is list:
        _check_length(kind, len(value), path)
        return [
            _to_wire(item, f"{path}[{index}]", depth + 1, extension_depth)
            for index, item in enumerate(value)
        ]
    if kind is dict:
        _check_length(kind, len(value), path)
        return {
            _to_wire(key, f"{path} (a key)", depth + 1, extension_depth): _to_wire(
                item, path + _key_step(key), depth + 1, extension_depth
            )
            for key, item in value.items()
        }
    entry = _ENCODERS.get(kind)
    if entry is None:
        raise _refusal(
            kind,
            path,
            "supported are dict, list, tuple, set, frozenset, str, bytes, int, float, bool,"
            " None, Markup, UUID, datetime, date, time, timedelta and Decimal",
        )
    if extension_depth >= MAX_EXTENSION_DEPTH:
        raise UnsupportedValueError(
            f"tuples, sets and timedeltas nested more than {MAX_EXTENSION_DEPTH} deep at {path}"
        )
    code, encode = entry

    def pack_nested(item: Any, step: str) -> bytes:
        wire = _to_wire(item, path + step, depth + 1, extension_depth + 1)
        return msgpack.packb(wire, use_bin_type=True)

    try:
        data = encode(value, pack_nested)
    except (UnsupportedValueError, RecursionError, MemoryError):
        raise
    except Exception as exc:  # a tzinfo whose utcoffset() fails, say
        raise _refusal(kind, path, f"encoding it raised {type(exc).__name__}") from exc
    _check_length(kind, len(data), path)
    return msgpack.ExtType(code, data)


class _PackerPerThread(threading.local):
    # A Packer keeps a buffer between calls, so each thread needs its own.
    def __init__(self) -> None:
        self.packer = msgpack.Packer(default=_ext_default, strict_types=True, use_bin_type=True)


_packers = _PackerPerThread()


#: What :func:`encode` makes of an empty session: a msgpack empty map.
EMPTY = b"\x80"


def encode(values: dict[Any, Any]) -> bytes:
    """Encode a session's values.

    Equal values, with dict keys in the same order, give equal bytes, which
    is what change detection compares; sets are encoded in a canonical order.

    :raises UnsupportedValueError: a value (or key) has a type the codec does
        not support, or cannot be stored (a released memoryview, a datetime
        whose tzinfo fails, over msgpack's 2**32 - 1 bytes or items); the
        message names its type and its key path.
    """
    try:
        return _packers.packer.pack(values)
    except Exception:  # the slow path below finds what failed, and why
        # A Packer must be reset after a failed pack; a fresh one is simpler.
        _packers.packer = msgpack.Packer(default=_ext_default, strict_types=True, use_bin_type=True)
    try:
        wire = _to_wire(values, "session", 0)
    except RecursionError:
        raise UnsupportedValueError("session values are nested too deeply to store") from None
    return msgpack.packb(wire, use_bin_type=True)


class _UndecodableError(ValueError):
    """A decoding failure whose message is the codec's own, free of the data."""


def _ext_hook(code: int, data: bytes) -> Any:
    decode_ext = _DECODERS.get(code)
    if decode_ext is None:
        raise _UndecodableError(f"unknown msgpack extension type {code}")
    if _nesting.depth >= MAX_EXTENSION_DEPTH:
        raise _UndecodableError(f"extension types nested more than {MAX_EXTENSION_DEPTH} deep")
    _nesting.depth += 1
    try:
        return decode_ext(data)
    finally:
        _nesting.depth -= 1


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)


def decode(data: bytes) -> dict[Any, Any]:
    """Decode what :func:`encode` made.

    :raises ValueError: ``data`` is not an encoded session.
    """
    try:
        values = _unpack(data)
    except _UndecodableError:
        raise
    except Exception as exc:  # msgpack and the decoders raise many kinds
        # Their messages may quote the data (msgpack's ExtraData holds it all):
        # the type is enough, and the data must reach no log.
        raise ValueError(f"undecodable session values ({type(exc).__name__})") from None
    if type(values) is not dict:
        raise ValueError("encoded session values are not a map")
    return values
