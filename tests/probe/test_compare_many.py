"""compare_many's rows: each metric's p-values Holm-corrected over the runs, and the gain/loss word read on them."""
from types import SimpleNamespace

import pytest

from probe.compare_many import _cells
from probe.uncertainty import holm


def _comparison(p_value, beyond=True, delta=0.05):
    metric = SimpleNamespace(delta=delta, delta_ci=[0.01, 0.09], p_value=p_value, beyond_noise=beyond,
                             seed_spread=None)
    return SimpleNamespace(metrics={"overall": metric})


def test_holm_is_the_step_down_adjustment_written_out():
    """Holm (1979) by hand: sort the m p-values, multiply the j-th smallest (1-based) by m − j + 1, take the
    running maximum, cap at 1; members without a test stay out of the family."""
    p = [0.02, 0.001, 0.04, None, 0.03]
    tested = sorted((v, i) for i, v in enumerate(p) if v is not None)
    m, running, expected = len(tested), 0.0, [None] * len(p)
    for j, (v, i) in enumerate(tested, start=1):
        running = max(running, min(1.0, (m - j + 1) * v))
        expected[i] = running
    assert expected == pytest.approx([0.06, 0.004, 0.06, None, 0.06])
    assert holm(p) == pytest.approx(expected)


def test_a_row_is_beyond_noise_only_where_its_holm_corrected_p_passes():
    """Three runs each pairwise beyond noise at p = 0.02, 0.03 and 0.001: Holm makes them 0.04, 0.04 and 0.003,
    all gains; at p = 0.03, 0.04 and 0.001 they become 0.06, 0.06 and 0.003: only the third stays a gain, though
    each pairwise p alone is below 0.05. A p exactly at 0.05 after correction passes (p ≤ 0.05)."""
    cells = _cells([_comparison(0.02), _comparison(0.03), _comparison(0.001)], "overall")
    assert [c.holm_p for c in cells] == pytest.approx([0.04, 0.04, 0.003])
    assert [c.beyond_noise for c in cells] == [True, True, True]
    cells = _cells([_comparison(0.03), _comparison(0.04), _comparison(0.001)], "overall")
    assert [c.holm_p for c in cells] == pytest.approx([0.06, 0.06, 0.003])
    assert [c.beyond_noise for c in cells] == [False, False, True]
    at_level = _cells([_comparison(0.025), _comparison(0.025)], "overall")
    assert [c.holm_p for c in at_level] == [0.05, 0.05] and [c.beyond_noise for c in at_level] == [True, True]
    # pairwise within noise stays within noise whatever its p; no interval: no word
    assert _cells([_comparison(0.001, beyond=False)], "overall")[0].beyond_noise is False
    assert _cells([_comparison(0.001, beyond=None)], "overall")[0].beyond_noise is None
