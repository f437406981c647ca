"""The shared numeric checks: what passes, and the one-line error that names
the option, the wanted range and the value got."""

import math

import numpy
import pytest

from speechbrain_ee.checks import check_integer, check_number, is_real


@pytest.mark.parametrize("value, options", [
    (0.5, dict(minimum=0)),
    (0, dict(minimum=0)),
    (1, dict(minimum=0, maximum=1)),
    (numpy.float32(0.25), dict(minimum=0)),
    (numpy.int64(3), dict(minimum=1, integer=True)),
    (None, dict(minimum=0, allow_none=True)),
    (1e-9, dict(above=0)),
    (math.inf, dict(minimum=0, allow_infinite=True)),
])
def test_good_values_pass_unchanged(value, options):
    assert check_number("x", value, **options) is value


@pytest.mark.parametrize("value, options, message", [
    (float("nan"), dict(minimum=0), "x must be a finite number >= 0, got nan"),
    (float("nan"), dict(allow_infinite=True), "x must be a number, got nan"),
    (math.inf, dict(minimum=0), "x must be a finite number >= 0, got inf"),
    (-0.1, dict(minimum=0), "x must be a finite number >= 0, got -0.1"),
    (1.5, dict(minimum=0, maximum=1), "x must be a finite number >= 0 and <= 1, got 1.5"),
    (0, dict(above=0), "x must be a finite number > 0, got 0"),
    (2.0, dict(minimum=1, integer=True), "x must be an integer >= 1, got 2.0"),
    (True, dict(minimum=0), "x must be a finite number >= 0, got True"),
    ("0.5", dict(minimum=0), "x must be a finite number >= 0, got '0.5'"),
    (None, dict(minimum=0), "x must be a finite number >= 0, got None"),
    (2.0, dict(above=0, maximum=1, allow_none=True), "x must be null or a finite number > 0 and <= 1, got 2.0"),
])
def test_bad_values_name_the_option_range_and_value(value, options, message):
    with pytest.raises(ValueError) as error:
        check_number("x", value, **options)
    assert str(error.value) == message


@pytest.mark.parametrize("value, expected", [(2, 2), (2.0, 2), (numpy.int32(4), 4)])
def test_check_integer_accepts_integral_floats_and_returns_int(value, expected):
    got = check_integer("patience", value, minimum=1)
    assert got == expected and type(got) is int


@pytest.mark.parametrize("value", [2.5, 0, math.inf, float("nan"), "2", True, None])
def test_check_integer_rejects(value):
    with pytest.raises(ValueError, match="patience must be an integer >= 1, got"):
        check_integer("patience", value, minimum=1)


def test_is_real_excludes_booleans_and_strings():
    assert is_real(numpy.float64(1.0)) and is_real(float("nan"))
    assert not is_real(False) and not is_real("1") and not is_real(None)
