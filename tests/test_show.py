"""format_value: four decimals in the usual range, scientific notation outside it."""

import math

import pytest

from nnspec.show import format_value


@pytest.mark.parametrize("value, text", [
    (0.0, "0.0000"),
    (0.5, "0.5000"),
    (1e-3, "0.0010"),
    (9.99e-4, "9.990e-04"),
    (-2e-5, "-2.000e-05"),
    (12345.678, "12345.6780"),
    (1e5, "1.000e+05"),
    (math.nan, "nan"),
    (math.inf, "inf"),
    (-math.inf, "-inf"),
])
def test_format_value(value, text):
    assert format_value(value) == text
