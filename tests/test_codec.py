"""The codec: every type Flask's serialiser keeps, and more, with types intact."""

from __future__ import annotations

import collections
import enum
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup

from flask_scs_redis import UnsupportedValueError
from flask_scs_redis.codec import decode, encode

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


class Color(enum.IntEnum):
    RED = 1


class Opaque:
    pass


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


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(),
    st.binary(),
    st.uuids(),
    st.datetimes(timezones=st.none() | st.just(timezone.utc) | st.timezones()),
    st.dates(),
    st.times(),
    st.timedeltas(),
    st.decimals(allow_nan=False),
    st.text().map(Markup),
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
@given(st.dictionaries(st.text(), values_strategy, max_size=5))
def test_generated_sessions_round_trip_with_types_intact(values: dict[str, Any]) -> None:
    encoded = encode(values)
    decoded = decode(encoded)
    assert same_types(decoded, values)
    assert encode(decoded) == encoded
