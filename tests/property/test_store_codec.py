"""Property tests of the store's column codec and symbol names."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasets.errors import DataError
from datasets.store.format import decode_column, decode_symbol, encode_column, encode_symbol

floats = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=200, deadline=None)
@given(st.lists(floats, min_size=1, max_size=50))
def test_any_float64_column_round_trips_bit_for_bit(values):
    arr = np.array(values, dtype=np.float64)
    back = decode_column(encode_column(arr))
    assert back.dtype == np.float64
    assert np.array_equal(back.view(np.int64), arr.view(np.int64))  # NaN payloads and -0.0 included


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 8)), min_size=1, max_size=50))
def test_exchange_style_decimals_are_stored_as_exact_decimals(pairs):
    # prices as exchanges send them: decimal strings with up to 8 decimals
    arr = np.array([float(f"{n / 10**d:.{d}f}") for n, d in pairs])
    encoded = encode_column(arr)
    assert pa.types.is_decimal(encoded.type) and encoded.type.scale <= 8
    assert np.array_equal(decode_column(encoded).view(np.int64), arr.view(np.int64))
    # slicing decode (used by the loader) agrees with decoding everything
    out = np.empty(len(arr) - 1)
    assert np.array_equal(decode_column(encoded, 1, len(arr), out=out), arr[1:])


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_symbol_names_round_trip_or_are_rejected(symbol):
    try:
        name = encode_symbol(symbol)
    except DataError:
        assert ".." in symbol or symbol[0] in "/." or any(ord(c) < 32 or c == "\\" for c in symbol)
        return
    assert decode_symbol(name) == symbol
    assert all(c.isascii() and (c.isalnum() or c in "_-%") for c in name)


@pytest.mark.parametrize("n", [0, 1])
def test_tiny_columns(n):
    arr = np.arange(n, dtype=np.float64)
    assert np.array_equal(decode_column(encode_column(arr)), arr)
