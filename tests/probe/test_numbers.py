"""probe.numbers: the one way every view writes a fraction in per cent or in signed points."""
import math

import numpy as np
import pytest

from probe.numbers import is_missing, percent, signed_points


def test_a_difference_that_rounds_to_zero_reads_plus_zero_never_minus_zero():
    assert [signed_points(x) for x in (0.021, -0.021, -0.0004, 0.0, -0.0)] == ["+2.1", "-2.1", "+0.0", "+0.0", "+0.0"]
    assert signed_points(-0.00004, 2) == "+0.00" and signed_points(-0.0004, 2) == "-0.04"


def test_percent_names_its_precision_and_unit():
    assert percent(0.12345) == "12.35" and percent(0.12345, 1) == "12.3" and percent(1.0, 0) == "100"
    assert percent(0.5, unit="%") == "50.00%" and percent(0, 1, unit=" %") == "0.0 %"


@pytest.mark.parametrize("value", [None, math.nan])
def test_a_score_that_could_not_be_computed_reads_absent_not_nan(value):
    """report.py wrote a NaN score as "nan" (selection.py as "n/a", the others as "—"): one rule now."""
    assert is_missing(value)
    assert percent(value) == "—" and percent(value, absent="n/a", unit="%") == "n/a"
    assert signed_points(value) == "—" and signed_points(value, absent="") == ""


def test_a_real_score_is_not_missing():
    assert not any(is_missing(x) for x in (0.0, -0.0, 1.0, math.inf))


def test_two_computations_of_one_value_print_alike():
    """67/80 and the mean of four class accuracies are both 0.8375, the second 0.83749999… in floating point: 83.8
    and 83.7 side by side (a dashboard round; the dashboard's Charts.fixed rounds to 12 digits first too)."""
    macro = (0.55 + 0.85 + 0.95 + 1.0) / 4
    assert macro != 67 / 80 and abs(macro - 67 / 80) < 1e-15
    assert percent(macro, 1) == percent(67 / 80, 1)
    assert percent(0.123449, 2) == "12.34" and percent(0.0001234, 4) == "0.0123"  # digits, not 12 significant


def test_ties_go_away_from_zero_as_on_the_dashboard():
    """Python's :.1f ties to even (65/80 → 81.2) where the dashboard's JavaScript ties up (81.3 %): one rule for
    both, half away from zero after 12 significant digits (tests/app/test_dashboard_browser.py checks the JS)."""
    from decimal import ROUND_HALF_UP, Decimal

    from probe.numbers import fixed

    assert percent(65 / 80, 1) == "81.3" and f"{100 * 65 / 80:.1f}" == "81.2"
    assert fixed(1.005, 2) == "1.01" and fixed(2.675, 2) == "2.68"  # their binary values lie just below the tie
    assert signed_points(-0.0125) == "-1.3" and signed_points(0.0125) == "+1.3" and signed_points(-1e-9) == "+0.0"
    for k in range(81):  # every k/80: the tie rule of the decimal module
        assert percent(k / 80, 1) == str(Decimal(str(100 * k / 80)).quantize(Decimal("0.1"), ROUND_HALF_UP))


def test_fixed_builds_its_context_and_quantum_once_and_writes_every_number_as_the_rule_per_call_did(monkeypatch):
    """fixed built a 400-digit Context and its quantum on every call (105,000 calls in a 5,000-class export): both
    are built once, and every number reads as a fresh context per call wrote it: nan, ±inf, ±0.0, the tiniest and
    largest floats, and halves at every rounding digit either side of the tie."""
    import math
    import sys
    from decimal import ROUND_HALF_UP, Context, Decimal

    from probe.numbers import fixed

    def per_call(value, digits):  # the rule as each call built it before
        if not math.isfinite(value):
            return str(value)
        rounded = Decimal(f"{abs(value):.12g}").quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP,
                                                          context=Context(prec=400))
        text = f"{rounded:f}"
        return "-" + text if value < 0 and rounded != 0 else text

    values = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-30, -1e-30, 1e30, -1e30, 5e-324, sys.float_info.max,
              -sys.float_info.max, sys.float_info.min, 0.5, -0.5, 1.005, 2.675, -2.675, 65 / 80 * 100, 1 / 3]
    for d in range(1, 12):  # a half at every rounding digit, and a hair either side of it
        half = 5 * 10.0 ** -d
        values += [s * (k + half) for k in (0, 1, 12, 99) for s in (1, -1)]
        values += [math.nextafter(half, 0), math.nextafter(half, 1), -math.nextafter(half, 1)]
    values += np.random.default_rng(0).normal(0, 1e3, 2000).tolist()
    texts = {(v, d): fixed(v, d) for v in values for d in range(0, 13)}
    assert texts == {(v, d): per_call(v, d) for v in values for d in range(0, 13)}
    assert texts[(-0.0, 1)] == "0.0" and texts[(0.5, 0)] == "1" and texts[(-2.675, 2)] == "-2.68"
    assert texts[(math.nan, 2)] == "nan" and texts[(1e30, 1)] == "1000000000000000000000000000000.0"
    monkeypatch.setattr("probe.numbers.Context", None)  # nothing left to build per call
    assert fixed(2.675, 2) == "2.68" and fixed(-1e-30, 3) == "0.000"
