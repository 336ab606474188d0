"""Class statistics and MR² margins: exact values on hand-made features."""
import math

import numpy as np
import pytest
import torch

from probe import EmaClassStats, class_means, class_r2, class_spread, margins, margins_from_error

# two classes in 2-D: class 0 = (1, 0), (0, 2); class 1 = (3, 0), (0, -3)
X = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, -3.0]])
Y = torch.tensor([0, 0, 1, 1])


def test_class_means_and_spread_exact():
    assert torch.allclose(class_means(X, Y, 2), torch.tensor([[0.5, 1.0], [1.5, -1.5]]))
    # class 0: deviations (0.5, -1), (-0.5, 1) -> 1.25 each; class 1: (1.5, 1.5), (-1.5, -1.5) -> 4.5 each
    assert torch.allclose(class_spread(X, Y, 2), torch.tensor([1.25, 4.5]))


def test_class_spread_is_accurate_with_a_large_common_offset():
    """‖s_k‖² from the expanded form keeps float32 features accurate when ‖μ‖² ≫ ‖s‖² (here r²/s² ≈ 100)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 20000)
    x64 = rng.normal(0.0, 1.0, (20000, 256)) * np.linspace(0.5, 1.5, 5)[y, None] + 10.0
    expected = [((x64[y == k] - x64[y == k].mean(0)) ** 2).sum(1).mean() for k in range(5)]
    got = class_spread(torch.from_numpy(x64.astype(np.float32)), torch.from_numpy(y), 5)
    assert got.dtype == torch.float32
    assert np.allclose(got.numpy(), expected, rtol=1e-4)


def _old_class_spread(x: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """The definition, row by row in float64: mean over class k of ‖φ − μ_k‖² (the former (n, K) implementation)."""
    x64 = x.double()
    mu = torch.stack([x64[y == c].mean(0) for c in range(k)])
    return torch.stack([(x64[y == c] - mu[c]).pow(2).sum(1).mean() for c in range(k)])


@pytest.mark.parametrize("offset", [0.0, 3.0])
def test_closed_form_spread_equals_the_definition_on_random_data(offset):
    """‖s_k‖² = mean‖φ‖² − ‖μ_k‖² (float64 sums over chunks) equals the per-row definition to 1e-6 relative, also
    across several chunks (n > the chunk size) and for float16 input (compared on the same float16 values)."""
    import probe.stats as stats

    g = torch.Generator().manual_seed(1)
    n, k = stats._STATS_CHUNK + 3001, 7
    y = torch.randint(0, k, (n,), generator=g)
    x = torch.randn(n, 48, generator=g) * torch.linspace(0.3, 2.0, k)[y, None] + offset
    got = class_spread(x, y, k)
    assert got.dtype == torch.float32
    assert torch.allclose(got.double(), _old_class_spread(x, y, k), rtol=1e-6, atol=0)
    half = x.half()
    got16 = class_spread(half, y, k)
    assert got16.dtype == torch.float32
    assert torch.allclose(got16.double(), _old_class_spread(half.float(), y, k), rtol=1e-6, atol=0)


def test_class_spread_clamps_at_zero_and_marks_empty_class():
    x = torch.full((4, 3), 0.1)  # identical rows: spread exactly 0 even where rounding would go below
    spread = class_spread(x, torch.tensor([0, 0, 0, 0]), 2)
    assert spread[0].item() == 0.0 and math.isnan(spread[1].item())


def test_class_r2_p2_equals_mean_norm_plus_spread():
    r2 = class_r2(X, Y, 2, p=2)
    assert torch.allclose(r2, torch.tensor([2.5, 9.0]))
    mu = class_means(X, Y, 2)
    assert torch.allclose(r2, mu.pow(2).sum(1) + class_spread(X, Y, 2))


def test_class_r2_p3_exact():
    x = torch.tensor([[1.0, 1.0], [2.0, 0.0], [1.0, 2.0]])
    y = torch.tensor([0, 0, 1])
    r2 = class_r2(x, y, 2, p=3)
    # ‖(1,1)‖_3² = 2^(2/3); ‖(2,0)‖_3² = 4; ‖(1,2)‖_3² = 9^(2/3)
    expected = torch.tensor([(2 ** (2 / 3) + 4.0) / 2, 9 ** (2 / 3)])
    assert torch.allclose(r2, expected)


def test_class_r2_accepts_numpy_and_marks_empty_class():
    r2 = class_r2(X.numpy(), Y.numpy(), 3, p=2)
    assert torch.allclose(r2[:2], torch.tensor([2.5, 9.0]))
    assert math.isnan(r2[2].item())


@pytest.mark.parametrize("cbar", [1.0, 2.0, 3.0])
def test_margins_exact_and_mean_cbar(cbar):
    g = margins(torch.tensor([2.5, 9.0]), cbar)
    a, b = 2.5 ** (1 / 3), 9.0 ** (1 / 3)
    expected = torch.tensor([cbar * 2 * a / (a + b), cbar * 2 * b / (a + b)])
    assert torch.allclose(g, expected)
    assert g.mean().item() == pytest.approx(cbar)


def test_margins_from_p3_features_hand_computed():
    x = torch.tensor([[1.0, 1.0], [2.0, 0.0], [1.0, 2.0]])
    y = torch.tensor([0, 0, 1])
    g = margins(class_r2(x, y, 2, p=3), 2.0)
    r0, r1 = ((2 ** (2 / 3) + 4.0) / 2) ** 0.5, (9 ** (2 / 3)) ** 0.5
    w0, w1 = r0 ** (2 / 3), r1 ** (2 / 3)
    assert torch.allclose(g, torch.tensor([2.0 * 2 * w0 / (w0 + w1), 2.0 * 2 * w1 / (w0 + w1)]))


def test_margins_equal_stats_give_cbar_and_sharpness():
    assert torch.allclose(margins(torch.full((5,), 3.7), 2.0), torch.full((5,), 2.0))
    r2 = torch.tensor([1.0, 8.0, 27.0])  # r^{2/3} = 1, 2, 3
    n = torch.tensor([1.0, 2.0, 3.0]) / 2.0  # normalised margins, mean 1
    assert torch.allclose(margins(r2, 1.0, sharpness=1.0), n)
    assert torch.allclose(margins(r2, 1.0, sharpness=0.0), torch.ones(3))
    sharp = n.pow(2) / n.pow(2).mean()
    assert torch.allclose(margins(r2, 3.0, sharpness=2.0), 3.0 * sharp)
    assert margins(r2, 3.0, sharpness=2.0).mean().item() == pytest.approx(3.0)


def test_margins_errors_name_the_problem():
    with pytest.raises(ValueError, match="cbar must be > 0, got -1"):
        margins(torch.ones(3), -1)
    with pytest.raises(ValueError, match=r"classes \[1\]"):
        margins(torch.tensor([1.0, float("nan"), 2.0]), 1.0)
    with pytest.raises(ValueError, match="sharpness"):
        margins(torch.ones(3), 1.0, sharpness=-1)


def test_margins_from_error_formula():
    err = np.array([0.0, 0.1, 0.3])
    g = margins_from_error(err, 2.0, power=1.0, eps=0.01)
    e = torch.tensor([0.01, 0.11, 0.31])
    assert torch.allclose(g, 2.0 * 3 * e / e.sum())
    assert margins_from_error(err, 2.0, power=0.0).allclose(torch.full((3,), 2.0))
    with pytest.raises(ValueError, match="val_error"):
        margins_from_error([0.5, 1.5], 1.0)


def test_ema_first_sighting_then_decay_only_present_classes():
    ema = EmaClassStats(3, p=2, decay=0.9)
    ema.update(X, Y)  # classes 0, 1 seen: initialised to batch values
    assert torch.allclose(ema.r2(strict=False)[:2], torch.tensor([2.5, 9.0]))
    with pytest.raises(ValueError, match=r"classes \[2\] have not been seen"):
        ema.r2()
    with pytest.raises(ValueError, match="not been seen"):
        ema.gamma(1.0)
    # second batch: class 0 with ‖x‖² = 10, class 2 first sighting with 4; class 1 absent keeps 9
    ema.update(torch.tensor([[1.0, 3.0], [2.0, 0.0]]), torch.tensor([0, 2]))
    assert torch.allclose(ema.r2(), torch.tensor([0.9 * 2.5 + 0.1 * 10.0, 9.0, 4.0]))
    assert torch.allclose(ema.gamma(2.0), margins(ema.r2(), 2.0))


def test_ema_non_strict_fills_unseen_with_seen_mean():
    ema = EmaClassStats(3)
    ema.update(X, Y)
    assert torch.allclose(ema.r2(strict=False), torch.tensor([2.5, 9.0, 5.75]))
    g = ema.gamma(1.0, strict=False)
    assert g.mean().item() == pytest.approx(1.0)


def test_ema_spread_of_a_class_seen_once_takes_the_others_mean_not_a_vanishing_margin():
    """A review: a class of one sample (in the run, or in the first batch) has a spread of exactly 0, and in the
    training loop (strict=False) its γ came out 2e-13, its logits divided by it; it now counts as not known yet."""
    x = torch.tensor([[1.0, 0.0], [3.0, 0.0], [5.0, 5.0], [0.0, 2.0], [0.0, 6.0]])
    y = torch.tensor([0, 0, 1, 2, 2])
    ema = EmaClassStats(3, p=2, track_spread=True, num_features=2)
    ema.update(x, y)
    spread = ema.spread(strict=False)
    assert torch.allclose(spread, torch.tensor([1.0, 2.5, 4.0]))  # class 1 (one sample): the mean of 1 and 4
    gamma = margins(spread, 2.0, validate=False)
    assert torch.allclose(gamma, margins(torch.tensor([1.0, 2.5, 4.0]), 2.0))
    assert gamma.min() > 1.0
    assert torch.equal(ema.spread(strict=True), torch.tensor([1.0, 0.0, 4.0]))  # strict: the statistic as it is
    # nothing known yet: every class the same margin, c̄
    lone = EmaClassStats(2, p=2, track_spread=True, num_features=2)
    lone.update(x[[0, 2]], torch.tensor([0, 1]))
    assert torch.allclose(margins(lone.spread(strict=False), 3.0, validate=False), torch.tensor([3.0, 3.0]))


def test_ema_spread_of_one_image_blended_with_itself_is_zero_not_its_rounding():
    """A long-tailed round: in ema mode a class of one training image reported a spread of 3.052e-05 (1.192e-07 on
    the cosine head) where another read 0: the EMA blends the image with itself, and float32 rounds E‖φ‖² and
    ‖μ‖² apart by an ulp of E‖φ‖² (591 here); that residue also kept the class from the fill of the training loop."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 64, generator=g) * 3
    other = torch.randn(3, 64, generator=g)
    ema = EmaClassStats(2, track_spread=True, num_features=64)
    for step in range(20):  # the one image in every other batch, as a class of one image among many batches
        ema.update(torch.cat([x, other]) if step % 2 == 0 else other,
                   torch.tensor([0, 1, 1, 1]) if step % 2 == 0 else torch.tensor([1, 1, 1]))
    assert ema.spread(strict=True)[0] == 0.0
    assert ema.spread(strict=False)[0] == ema.spread(strict=True)[1]  # filled, as a spread of exactly 0 is
    exact = float(class_spread(other, torch.zeros(3, dtype=torch.long), 1)[0])
    assert float(ema.measured()[1][1]) == pytest.approx(exact, rel=1e-4)  # a real spread stays as it is


def test_ema_of_one_image_stays_that_image_at_a_slow_decay():
    """At decay 0.999 (ema_decay is the user's) the sum form decay·μ + (1 − decay)·φ rounded μ 1.4e-4 off the one
    image it averaged, past the rounding allowance: a class of one training image read a spread of 0.217."""
    torch.manual_seed(13)
    x = torch.randn(1, 1280) * (0.44 + 13 * 0.3) + 1.3
    ema = EmaClassStats(1, decay=0.999, track_spread=True, num_features=1280)
    for _ in range(300):
        ema.update(x, torch.tensor([0]))
    assert torch.equal(ema._mean, x) and ema.spread()[0] == 0.0
    blended = EmaClassStats(1, decay=0.999)  # the blend is still decay·old + (1 − decay)·batch
    blended.update(torch.tensor([[1.0, 1.0]]), torch.tensor([0]))
    blended.update(torch.tensor([[3.0, 0.0]]), torch.tensor([0]))
    assert blended.r2()[0].item() == pytest.approx(0.999 * 2.0 + 0.001 * 9.0)


def _gaussian_classes(seed=0, n_per=400, d=8, k=4):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(k, d, generator=g) * 2.0
    scales = torch.linspace(0.5, 2.0, k)
    x = torch.cat([means[c] + scales[c] * torch.randn(n_per, d, generator=g) for c in range(k)])
    y = torch.arange(k).repeat_interleave(n_per)
    return x, y


@pytest.mark.parametrize("p", [2.0, 3.0])
def test_ema_converges_to_exact_on_frozen_features(p):
    x, y = _gaussian_classes()
    k = 4
    exact_r2 = class_r2(x, y, k, p=p)
    exact_spread = class_spread(x, y, k)
    ema = EmaClassStats(k, p=p, track_spread=True, num_features=x.shape[1])
    g = torch.Generator().manual_seed(1)
    for _ in range(30):  # 30 epochs of shuffled mini-batches of 128
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), 128):
            idx = perm[i : i + 128]
            ema.update(x[idx], y[idx])
    assert torch.allclose(ema.r2(), exact_r2, rtol=0.05)
    assert torch.allclose(ema.spread(), exact_spread, rtol=0.08)
    assert torch.allclose(ema.gamma(2.0), margins(exact_r2, 2.0), rtol=0.01)


def test_ema_full_batch_equals_exact():
    x, y = _gaussian_classes(n_per=50)
    ema = EmaClassStats(4, p=2, track_spread=True, num_features=x.shape[1])
    for _ in range(3):
        ema.update(x, y)
    assert torch.allclose(ema.r2(), class_r2(x, y, 4, p=2), rtol=1e-5)
    assert torch.allclose(ema.spread(), class_spread(x, y, 4), rtol=1e-4, atol=1e-5)


def test_mean_spread_is_the_mean_over_classes_of_the_spread():
    """s̄ of ℓ_s̄ (what the trainer passes to representation_margin) is mean_k ‖s_k‖², not their sum: here
    (1.25 + 4.5) / 2."""
    from probe import mean_spread

    assert mean_spread(class_spread(X, Y, 2)).item() == pytest.approx((1.25 + 4.5) / 2)
    assert mean_spread(np.array([1.0, 2.0, 6.0])).item() == pytest.approx(3.0)


@pytest.mark.parametrize("extra", [-1, 0, 1])
def test_class_statistics_count_every_row_at_a_chunk_edge(extra):
    """The float64 sums run over row chunks: every row counts also where the row count is a chunk boundary ± 1
    (513 rows: the last chunk holds one row). r_k² (p = 2 and p = 3), ‖s_k‖² and μ_k against numpy in float64."""
    import probe.stats as stats
    from probe.stats import exact_class_stats

    n, k = 2 * stats._STATS_CHUNK + 1 + extra, 3
    rng = np.random.default_rng(extra + 5)
    x = rng.normal(1.0, 2.0, (n, 6))
    y = np.arange(n) % k
    y[-1] = 2  # the last row, alone in its chunk at 2·chunk + 1 rows
    x[-1] = 40.0  # large enough that leaving it out moves every statistic of class 2
    got = exact_class_stats(torch.from_numpy(x), torch.from_numpy(y), k, p=3.0)
    members = [x[y == c] for c in range(k)]
    np.testing.assert_allclose(got.r2.numpy(), [(np.sum(np.abs(m) ** 3, 1) ** (2 / 3)).mean() for m in members],
                               rtol=1e-10)
    np.testing.assert_allclose(got.spread.numpy(), [((m - m.mean(0)) ** 2).sum(1).mean() for m in members],
                               rtol=1e-10)
    np.testing.assert_allclose(class_r2(x, y, k, p=2).numpy(), [(m ** 2).sum(1).mean() for m in members], rtol=1e-10)
    np.testing.assert_allclose(class_means(x, y, k).numpy(), [m.mean(0) for m in members], rtol=1e-10)


@pytest.mark.parametrize("labels", [np.array([0, 1, 2, 1]), np.array([0, 1, -1, 1])])
def test_labels_outside_the_classes_are_a_value_error_naming_the_range(labels):
    """A label of K stopped class_r2 with torch's 'index 2 is out of bounds for dimension 0 with size 2', and
    class_counts gave K + 1 counts (a library round)."""
    from probe import class_counts

    x = np.ones((4, 3), dtype=np.float32)
    for call in (lambda: class_r2(x, labels, 2, 2), lambda: class_spread(x, labels, 2), lambda: class_counts(labels, 2)):
        with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\] for num_classes=2, got values in "):
            call()
