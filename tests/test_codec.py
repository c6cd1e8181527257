"""The codec: every type Flask's serialiser keeps, and more, with types intact."""

from __future__ import annotations

import collections
import enum
import mmap
import sys
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup

from flask_scs_redis import UnsupportedValueError
from flask_scs_redis.codec import decode, encode
from flask_scs_redis.record import Record, pack_record, unpack_record

SAMPLES: dict[str, Any] = {
    "dict": {"a": {"b": 1}},
    "list": [1, "two", [3.0]],
    "str": "zw\u00f6lf \U0001f600",
    "int": -(2**63),
    "big int": 10**40,
    "negative big int": -(10**40),
    "float": 0.1,
    "bool": True,
    "None": None,
    "tuple": (1, ("nested", (2,))),
    "bytes": b"\x00\xff",
    "Markup": Markup("<b>bold</b>"),
    "UUID": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "aware datetime": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=5))),
    "UTC datetime": datetime(2026, 1, 2, 3, 4, 5, 1, tzinfo=timezone.utc),
    "naive datetime": datetime(2026, 1, 2, 3, 4, 5, 678901),
    "date": date(2026, 11, 25),
    "time": time(23, 59, 59, 999999),
    "aware time": time(1, 2, tzinfo=timezone(timedelta(hours=-3))),
    "timedelta": timedelta(days=-2, seconds=5, microseconds=7),
    "Decimal": Decimal("-12.3400"),
    "Decimal NaN": Decimal("Infinity"),
    "set": {1, "a", (2, 3)},
    "frozenset": frozenset({b"x", frozenset({1})}),
    "int keys": {1: "one", 2: {3: "three"}},
    "tuple keys": {(1, "a"): "pair"},
    "mixed keys": {None: 0, True: 1, 2.5: 2, b"k": 3},
    "int of 5000 digits": 10**5000,
    "negative int of 5000 digits": -(10**5000),
    "int of 5000 digits as a key": {10**5000: "huge", (1, -(10**5000)): "pair"},
    "int of 5000 digits in a set": {10**5000, -(10**5000)},
    "lone surrogate": "\ud800",
    "surrogates among text": "a\udfffb\u00f6\U0001f600\udc80",
    "surrogate pair as two code points": "\ud83d\ude00",
    "lone surrogate as a key": {"\ud800": 1, ("\udfff",): 2},
    "lone surrogate in a set": {"\ud800", frozenset({"\udbff"})},
    "Markup with a lone surrogate": Markup("<b>\ud800</b>"),
    "offset under a second": datetime(2026, 1, 2, tzinfo=timezone(timedelta(microseconds=1))),
    "negative offset under a second": time(1, 2, tzinfo=timezone(timedelta(microseconds=-7))),
}


def same_types(left: Any, right: Any) -> bool:
    """Equal, and of the same type all the way down."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return len(left) == len(right) and all(
            same_types(k1, k2) and same_types(v1, v2)
            for (k1, v1), (k2, v2) in zip(left.items(), right.items())
        )
    if isinstance(left, (list, tuple)):
        return len(left) == len(right) and all(same_types(a, b) for a, b in zip(left, right))
    if isinstance(left, (datetime, time)):
        # Wall time and offset; a named zone comes back as a fixed offset, and
        # Python calls datetimes in a zone's repeated hour unequal to any other.
        return bool(left.isoformat() == right.isoformat())
    return bool(left == right)


@pytest.mark.parametrize("name", SAMPLES)
def test_a_value_comes_back_equal_and_of_the_same_type(name: str) -> None:
    values = {"value": SAMPLES[name], "nested": [{"deep": (SAMPLES[name],)}]}
    assert same_types(decode(encode(values)), values)


def test_datetimes_keep_microseconds_and_offsets() -> None:
    aware = SAMPLES["aware datetime"]
    back = decode(encode({"t": aware}))["t"]
    assert back.microsecond == 678901
    assert back.utcoffset() == timedelta(hours=5)
    assert decode(encode({"t": SAMPLES["naive datetime"]}))["t"].tzinfo is None


def test_equal_sets_encode_to_equal_bytes_whatever_their_order() -> None:
    forward = set(range(100))
    backward: set[int] = set()
    for number in reversed(range(100)):
        backward.add(number)
    assert encode({"s": forward}) == encode({"s": backward})
    assert encode({"s": {"a", "b", "c"}}) == encode({"s": {"c", "b", "a"}})


def test_encoding_is_deterministic_for_change_detection() -> None:
    values = {"all": list(SAMPLES.values())}
    assert encode(values) == encode(decode(encode(values)))


@pytest.fixture
def int_digit_limit() -> Iterator[None]:
    """Restore Python's process-wide limit on int/str conversions after the test."""
    before = sys.get_int_max_str_digits()
    yield
    sys.set_int_max_str_digits(before)


@pytest.mark.usefixtures("int_digit_limit")
@pytest.mark.parametrize("limit", [640, 4300, 0])
def test_ints_of_any_size_do_not_depend_on_the_process_wide_digit_limit(limit: int) -> None:
    sys.set_int_max_str_digits(limit)
    values = {"i": 2**100_000 + 1, "j": -(10**1000), 10**1000: "key"}
    assert same_types(decode(encode(values)), values)


def test_ints_beyond_64_bits_are_stored_as_signed_big_endian_bytes() -> None:
    assert encode({"i": 2**64}) == msgpack.packb({"i": msgpack.ExtType(12, b"\x01" + bytes(8))})
    assert encode({"i": -(2**63) - 1}) == msgpack.packb(
        {"i": msgpack.ExtType(12, b"\xff\x7f" + b"\xff" * 7)}
    )
    assert encode({"i": -(2**71)}) == msgpack.packb({"i": msgpack.ExtType(12, b"\x80" + bytes(8))})


@pytest.mark.usefixtures("int_digit_limit")
def test_ints_stored_as_decimal_digits_by_earlier_versions_still_decode() -> None:
    sys.set_int_max_str_digits(640)  # the least Python allows; earlier versions wrote up to 4300
    digits = b"9" * 4300
    stored = msgpack.packb(
        {"a": msgpack.ExtType(11, digits), "b": msgpack.ExtType(11, b"-1" + digits[1:])}
    )
    assert decode(stored) == {"a": 10**4300 - 1, "b": -(2 * 10**4299 - 1)}


@pytest.mark.usefixtures("int_digit_limit")
@pytest.mark.parametrize(
    "digits",
    [b"1" * 4301, b"-" + b"1" * 4301, b"+1", b" 1", b"1_000", b"", b"-", b"\xd9\xa1"],
)
def test_decimal_ints_that_earlier_versions_could_not_write_are_refused(digits: bytes) -> None:
    sys.set_int_max_str_digits(0)  # no help from Python's limit: the codec bounds the work itself
    with pytest.raises(ValueError, match="undecodable"):
        decode(msgpack.packb({"a": msgpack.ExtType(11, digits)}))


def test_plain_strings_stay_msgpack_strings_and_only_lone_surrogates_take_an_extension() -> None:
    assert encode({"s": "zw\u00f6lf"}) == msgpack.packb({"s": "zw\u00f6lf"})
    assert encode({"s": "a\ud800"}) == msgpack.packb({"s": msgpack.ExtType(13, b"a\xed\xa0\x80")})
    assert encode({"\ud800": 1}) == msgpack.packb({msgpack.ExtType(13, b"\xed\xa0\x80"): 1})


def test_a_memoryview_that_is_not_contiguous_is_stored_as_its_bytes() -> None:
    assert same_types(decode(encode({"m": memoryview(b"abcdef")[::2]})), {"m": b"ace"})


def test_a_buffer_longer_than_msgpack_allows_is_refused_without_copying_it() -> None:
    with mmap.mmap(-1, 2**32) as mapped:  # address space only: no page is touched
        view = memoryview(mapped)
        try:
            with pytest.raises(UnsupportedValueError) as raised:
                encode({"b": [view]})
        finally:
            view.release()
    assert "memoryview at session['b'][0]; msgpack holds at most" in str(raised.value)


class Color(enum.IntEnum):
    RED = 1


class Opaque:
    pass


class BrokenZone(tzinfo):
    """A tzinfo whose offset cannot be read."""

    def __init__(self, offset: Any) -> None:
        self.offset = offset

    def utcoffset(self, dt: Any) -> Any:
        if isinstance(self.offset, Exception):
            raise self.offset
        return self.offset


def released_memoryview() -> memoryview:
    view = memoryview(b"gone")
    view.release()
    return view


@pytest.mark.parametrize(
    ("values", "type_name", "path"),
    [
        ({"obj": Opaque()}, "Opaque", "session['obj']"),
        ({"cart": [1, 2, Opaque()]}, "Opaque", "session['cart'][2]"),
        ({"a": {"b": (1, {"c": Opaque()})}}, "Opaque", "session['a']['b'][1]['c']"),
        ({"big": [10**30, Opaque()]}, "Opaque", "session['big'][1]"),
        ({"color": Color.RED}, "Color", "session['color']"),
        ({"ordered": collections.OrderedDict(a=1)}, "OrderedDict", "session['ordered']"),
        ({"s": {Opaque()}}, "Opaque", "session['s']{...}"),
        ({10**5000: Opaque()}, "Opaque", "session[<int key too long to show>]"),
        ({"m": released_memoryview()}, "memoryview", "session['m']"),
        (
            {"t": [datetime(2026, 1, 1, tzinfo=BrokenZone(timedelta(hours=25)))]},
            "datetime",
            "session['t'][0]",
        ),
        ({"t": datetime(2026, 1, 1, tzinfo=BrokenZone("+01:00"))}, "datetime", "session['t']"),
        ({"t": (time(1, tzinfo=BrokenZone(RuntimeError("down"))),)}, "time", "session['t'][0]"),
    ],
)
def test_an_unsupported_type_is_refused_naming_the_type_and_the_key_path(
    values: dict[str, Any], type_name: str, path: str
) -> None:
    with pytest.raises(UnsupportedValueError) as raised:
        encode(values)
    assert isinstance(raised.value, TypeError)
    assert type_name in str(raised.value)
    assert f"at {path}" in str(raised.value)


def test_byte_buffers_are_stored_as_bytes() -> None:
    # msgpack writes every byte buffer as its bin type; there is no telling them apart.
    buffers = {"b": bytearray(b"x"), "m": memoryview(b"y")}
    assert same_types(decode(encode(buffers)), {"b": b"x", "m": b"y"})
    # The same on the slow path that a huge integer takes.
    assert same_types(decode(encode({**buffers, "i": 10**30})), {"b": b"x", "m": b"y", "i": 10**30})


def test_pickle_is_never_involved() -> None:
    class Picklable:
        def __reduce__(self) -> Any:
            raise AssertionError("pickle was used")

    with pytest.raises(UnsupportedValueError):
        encode({"x": Picklable()})


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # never used in msgpack
        b"\x91\x01",  # an array, not a map
        b"\x81\xa1a\xd4\x63\x00",  # extension type 99
        b"\x81\xa1a\xc7\x05\x0b12x45",  # a "big int" that is not a number
        b"\x81\xa1a",  # truncated
    ],
)
def test_undecodable_values_raise_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError means "no session"
        decode(data)


# Text with lone surrogates mixed in, which st.text() leaves out.
texts = st.text(st.characters() | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF))
# Up to 24,000 bits: past msgpack's 64 and Python's 4300-digit str() limit.
huge_ints = st.builds(
    lambda magnitude, sign: sign * int.from_bytes(magnitude, "big"),
    st.binary(min_size=8, max_size=3000),
    st.sampled_from([1, -1]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    huge_ints,
    st.floats(allow_nan=False),
    texts,
    st.binary(),
    st.uuids(),
    st.datetimes(timezones=st.none() | st.just(timezone.utc) | st.timezones()),
    st.dates(),
    st.times(),
    st.timedeltas(),
    st.decimals(allow_nan=False),
    texts.map(Markup),
)
hashables = st.recursive(
    scalars.filter(lambda value: not isinstance(value, datetime) or value.tzinfo is None),
    lambda children: st.tuples(children, children) | st.frozensets(children, max_size=3),
    max_leaves=8,
)
values_strategy = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=4).map(tuple)
        | st.sets(hashables, max_size=4)
        | st.frozensets(hashables, max_size=4)
        | st.dictionaries(hashables, children, max_size=4)
    ),
    max_leaves=20,
)


@pytest.mark.filterwarnings("ignore:Generating overly large repr")  # of st.timezones()
@settings(max_examples=300, deadline=None)
@given(st.dictionaries(texts, values_strategy, max_size=5))
def test_generated_sessions_round_trip_with_types_intact(values: dict[str, Any]) -> None:
    encoded = encode(values)
    decoded = decode(encoded)
    assert same_types(decoded, values)
    assert encode(decoded) == encoded


class IntSubclass(int):
    pass


class FloatSubclass(float):
    pass


class StrSubclass(str):
    __slots__ = ()


class BytesSubclass(bytes):
    pass


class MarkupSubclass(Markup):
    pass


class Shade(str, enum.Enum):
    DARK = "dark"


# Each unsupported value with its type's name, as the refusal must name it.
Refused = tuple[Any, str]
hashable_refused: st.SearchStrategy[Refused] = st.sampled_from(
    [
        (Opaque(), "Opaque"),
        (Color.RED, "Color"),
        (Shade.DARK, "Shade"),
        (IntSubclass(2**70), "IntSubclass"),
        (FloatSubclass(0.5), "FloatSubclass"),
        (StrSubclass("\ud800"), "StrSubclass"),
        (BytesSubclass(b"x"), "BytesSubclass"),
        (MarkupSubclass("<b>"), "MarkupSubclass"),
        (1j, "complex"),
        (int, "type"),
    ]
)
# Built afresh in each example: Hypothesis cannot show or hash some of them.
refused = hashable_refused | st.sampled_from(
    [
        lambda: (collections.OrderedDict(a=1), "OrderedDict"),
        lambda: (collections.defaultdict(list), "defaultdict"),
        lambda: (released_memoryview(), "memoryview"),
        lambda: (datetime(2026, 1, 1, tzinfo=BrokenZone(timedelta(days=2))), "datetime"),
        lambda: (time(1, tzinfo=BrokenZone(ZeroDivisionError())), "time"),
    ]
).map(lambda build: build())
# (value, type name, the key path below the value at which the refused value sits)
Poisoned = tuple[Any, str, str]
simple_keys = st.text(max_size=3) | st.integers(-3, 3)
fillers = st.lists(scalars, max_size=2)


def poison(children: st.SearchStrategy[Poisoned]) -> st.SearchStrategy[Poisoned]:
    """Put one refused value (or a container holding one) into a container."""
    in_list = st.builds(
        lambda before, child, after: (
            [*before, child[0], *after],
            child[1],
            f"[{len(before)}]{child[2]}",
        ),
        fillers,
        children,
        fillers,
    )
    in_dict = st.builds(
        lambda items, key, child: ({**items, key: child[0]}, child[1], f"[{key!r}]{child[2]}"),
        st.dictionaries(simple_keys, scalars, max_size=2),
        simple_keys,
        children,
    )
    as_key = st.builds(
        lambda items, child: ({child[0]: 0, **items}, child[1], f" (a key){child[2]}"),
        st.dictionaries(simple_keys, scalars, max_size=2),
        hashable_poisoned,
    )
    in_set = st.builds(
        lambda members, child: ({child[0], *members}, child[1], f"{{...}}{child[2]}"),
        st.sets(simple_keys, max_size=2),
        hashable_poisoned,
    )
    in_tuple = in_list.map(lambda poisoned: (tuple(poisoned[0]), *poisoned[1:]))
    return in_list | in_tuple | in_dict | as_key | in_set


# Tuples holding a refused value, for dict keys and set members.
hashable_poisoned: st.SearchStrategy[Poisoned] = st.recursive(
    hashable_refused.map(lambda refusal: (*refusal, "")),
    lambda children: st.builds(
        lambda before, child: ((*before, child[0]), child[1], f"[{len(before)}]{child[2]}"),
        st.lists(simple_keys, max_size=2),
        children,
    ),
    max_leaves=3,
)
poisoned = st.recursive(refused.map(lambda refusal: (*refusal, "")), poison, max_leaves=6)


@settings(max_examples=300, deadline=None)
@given(poisoned)
def test_an_unsupported_value_anywhere_is_refused_naming_its_type_and_path(
    value: Poisoned,
) -> None:
    values, type_name, path = value
    with pytest.raises(UnsupportedValueError) as raised:
        encode({"v": values})
    assert f"{type_name} at session['v']{path};" in str(raised.value)


@given(st.integers(min_value=-(2**63), max_value=2**64 - 1))
def test_a_records_tag_is_its_header_version_and_revision_as_msgpack_wrote_them(
    revision: int,
) -> None:
    record = Record(revision, deadline_ms=1, created_ms=1, values=b"")
    blob, tag = pack_record(record)
    assert tag == blob[: 2 + len(msgpack.packb(revision))]
    assert unpack_record(blob).tag == tag
