"""Losses: exact formula values on hand-made tensors, registry errors, ℓ_s̄ and its gradient."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from probe import (
    LOSSES,
    create_loss,
    list_losses,
    margin_cross_entropy,
    representation_margin,
    sample_margin_regularizer,
    zero_centroid_regularizer,
)
from probe.losses import LOGSUMEXP_CLASSES, cross_entropy, joint_cross_entropy

Z = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.3, 0.2], [-0.5, 1.5, 0.0], [1.0, 1.0, 1.0]])
Y = torch.tensor([0, 2, 1, 1])


def _manual_ce(z, y):
    return torch.stack([-(z[i, y[i]] - torch.logsumexp(z[i], 0)) for i in range(len(y))]).mean()


def test_margin_ce_is_cross_entropy_when_gamma_is_one():
    assert torch.allclose(margin_cross_entropy(Z, Y, torch.ones(3)), F.cross_entropy(Z, Y))
    assert torch.allclose(create_loss("ce")(Z, Y), F.cross_entropy(Z, Y))
    assert torch.allclose(create_loss("mr2")(Z, Y, gamma=torch.ones(3)), F.cross_entropy(Z, Y))


@pytest.mark.parametrize("k", [2, 4, 5, 10, 15, 16, 100])
def test_cross_entropy_equals_torch_in_value_and_gradient_on_both_kernels(k):
    """logsumexp − gather (K in LOGSUMEXP_CLASSES) and F.cross_entropy (elsewhere) are one function."""
    torch.manual_seed(k)
    z, y = (8 * torch.randn(500, k)).requires_grad_(), torch.randint(0, k, (500,))
    ours = cross_entropy(z, y)
    (grad,) = torch.autograd.grad(ours, z)
    ref = F.cross_entropy(z, y)
    (ref_grad,) = torch.autograd.grad(ref, z)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("k", [2, 10, 16, 100])
def test_joint_cross_entropy_is_each_heads_torch_cross_entropy(k):
    """H heads' logits side by side (n, H·K): one call gives every head's F.cross_entropy and its gradient, on
    both kernels; the loss of head h moves only head h's logits."""
    heads = 3
    torch.manual_seed(k)
    z, y = (8 * torch.randn(300, heads * k)).requires_grad_(), torch.randint(0, k, (300,))
    losses = joint_cross_entropy(z, y, heads)
    assert losses.shape == (heads,)
    weights = torch.tensor([1.0, -2.0, 0.5])
    (grad,) = torch.autograd.grad((losses * weights).sum(), z)
    for h in range(heads):
        part = z[:, h * k:(h + 1) * k]
        torch.testing.assert_close(losses[h], F.cross_entropy(part, y), rtol=1e-6, atol=1e-6)
        (ref_grad,) = torch.autograd.grad(weights[h] * F.cross_entropy(part, y), z)
        torch.testing.assert_close(grad[:, h * k:(h + 1) * k], ref_grad[:, h * k:(h + 1) * k], rtol=1e-5, atol=1e-8)


def test_margin_ce_divides_row_by_true_class_margin():
    gamma = torch.tensor([0.5, 2.0, 1.5])
    expected = _manual_ce(Z / gamma[Y][:, None], Y)
    assert torch.allclose(margin_cross_entropy(Z, Y, gamma), expected)
    # not the same as dividing each column by its own class margin
    assert not torch.allclose(margin_cross_entropy(Z, Y, gamma), _manual_ce(Z / gamma[None, :], Y))


def test_class_margins_per_source():
    r2 = torch.tensor([1.0, 8.0, 27.0])
    spread = torch.tensor([8.0, 1.0, 1.0])
    assert create_loss("ce").class_margins(2.0, 3, r2=r2) is None
    assert torch.allclose(create_loss("uniform").class_margins(2.0, 3, r2=r2), torch.full((3,), 2.0))
    assert torch.allclose(create_loss("mr2").class_margins(2.0, 3, r2=r2), 2.0 * torch.tensor([1.0, 2, 3]) / 2.0)
    g_sharp = create_loss("mr2", sharpness=2.0).class_margins(1.0, 3, r2=r2)
    n = torch.tensor([0.5, 1.0, 1.5])
    assert torch.allclose(g_sharp, n**2 / (n**2).mean())
    g_spread = create_loss("mr2_spread").class_margins(1.0, 3, r2=r2, spread=spread)
    assert torch.allclose(g_spread, torch.tensor([2.0, 1.0, 1.0]) / (4.0 / 3.0))
    err = np.array([0.09, 0.19, 0.39])
    g_err = create_loss("mr2_valerr", val_error=err).class_margins(3.0, 3, r2=r2)
    assert torch.allclose(g_err, 3.0 * 3 * torch.tensor([0.1, 0.2, 0.4]) / 0.7)
    with pytest.raises(ValueError, match="4 entries but the probe has 3"):
        create_loss("mr2_valerr", val_error=[0.1] * 4).class_margins(1.0, 3)


def test_needs_and_input_flags():
    assert {n: LOSSES[n].needs for n in ("ce", "uniform", "mr2", "mr2_spread", "mr2_valerr", "logit_adjust",
                                         "ldam")} == {
        "ce": "none", "uniform": "cbar", "mr2": "r2", "mr2_spread": "spread", "mr2_valerr": "val_error",
        "logit_adjust": "priors", "ldam": "priors"}
    assert {n for n in list_losses() if LOSSES[n].input == "cosine"} == {"lm_softmax", "cosface", "arcface"}
    assert create_loss("cosface").input == "cosine"


def test_registry_errors_name_the_problem():
    with pytest.raises(KeyError, match="Unknown loss 'mr3'; available: ce, uniform, mr2"):
        create_loss("mr3")
    with pytest.raises(TypeError, match="Unknown option.*sharpnes.*for loss 'mr2'; accepted: sharpness"):
        create_loss("mr2", sharpnes=2)
    with pytest.raises(ValueError, match="needs val_error"):
        create_loss("mr2_valerr")
    with pytest.raises(ValueError, match=r"gamma_focal must be in \[0, 100\]"):
        create_loss("focal", gamma_focal=-1)
    # None options are dropped so defaults survive
    assert create_loss("focal", gamma_focal=None).gamma_focal == 2.0


def test_focal_formula():
    p = F.softmax(Z, 1)[torch.arange(4), Y]
    expected = (-(1 - p) ** 2 * torch.log(p)).mean()
    assert torch.allclose(create_loss("focal")(Z, Y), expected)
    assert torch.allclose(create_loss("focal", gamma_focal=0.0)(Z, Y), F.cross_entropy(Z, Y))


@pytest.mark.parametrize("gamma_focal", [0.5, 0.25, 1.0, 2.0])
def test_focal_is_finite_where_the_true_class_is_certain(gamma_focal):
    """A review: at p_y = 1 in float32 (logit gap 30) the gradient of (1 − p_y)^{γ_f} for γ_f < 1 was NaN, and a fit
    with gamma_focal 0.5 ended with NaN weights reported as a too-large learning rate."""
    z = torch.tensor([[30.0, 0.0, 0.0], [200.0, 0.0, -5.0], [1.0, 2.0, 0.5]], requires_grad=True)
    y = torch.tensor([0, 0, 2])
    loss = create_loss("focal", gamma_focal=gamma_focal)(z, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()
    # the certain rows add nothing; the third is the formula's
    p = F.softmax(z.detach()[2], 0)[2]
    assert torch.allclose(loss.detach(), -(1 - p) ** gamma_focal * torch.log(p) / 3, rtol=1e-5)
    assert torch.allclose(z.grad[:2], torch.zeros(2, 3), atol=1e-6)


def test_group_dro_online_weights():
    loss = create_loss("group_dro", eta=0.5)
    per = F.cross_entropy(Z, Y, reduction="none")
    group = torch.tensor([per[0], (per[2] + per[3]) / 2, per[1]])
    q = torch.full((3,), 1 / 3) * torch.exp(0.5 * group)
    q = q / q.sum()
    assert torch.allclose(loss(Z, Y), (q * group).sum())
    assert torch.allclose(loss.q, q)
    # second step on a batch with only class 0: classes 1, 2 keep their (unnormalised) weights
    out = loss(Z[:1], Y[:1])
    q2 = q.clone()
    q2[0] = q2[0] * torch.exp(0.5 * per[0])
    q2 = q2 / q2.sum()
    assert torch.allclose(loss.q, q2)
    assert torch.allclose(out, q2[0] * per[0])


def test_logit_adjust_formula_and_balanced_equals_ce():
    pri = np.array([0.5, 0.3, 0.2])
    loss = create_loss("logit_adjust", tau=1.5, priors=pri)
    assert torch.allclose(loss(Z, Y), F.cross_entropy(Z + 1.5 * torch.log(torch.tensor(pri, dtype=torch.float32)), Y))
    assert torch.allclose(create_loss("logit_adjust", priors=[10, 10, 10])(Z, Y), F.cross_entropy(Z, Y))
    with pytest.raises(ValueError, match="needs priors"):
        create_loss("logit_adjust")


def test_label_smoothing_formula():
    eps = 0.2
    logp = F.log_softmax(Z, 1)
    expected = (-(1 - eps) * logp[torch.arange(4), Y] - eps * logp.mean(1)).mean()
    assert torch.allclose(create_loss("label_smoothing", smoothing=eps)(Z, Y), expected)


COS = torch.tensor([[0.9, 0.1, -0.5], [0.2, -0.3, 0.4], [0.0, 0.7, 0.6]])
CY = torch.tensor([0, 2, 1])


def test_lm_softmax_formula():
    s = 4.0
    expected = []
    for i in range(3):
        num = math.exp(s * COS[i, CY[i]])
        den = sum(math.exp(s * COS[i, j]) for j in range(3) if j != CY[i])
        expected.append(-(1 / s) * math.log(num / den))
    assert create_loss("lm_softmax", scale=s)(COS, CY).item() == pytest.approx(np.mean(expected), rel=1e-6)



def test_the_stopping_tolerance_is_in_cross_entropy_units():
    """lm_softmax is divided by its scale s: ProbeConfig's tol = 1e-3 on its raw value ended digits fits after
    about 50 of 450 epochs, 3–10 points below (a maintainer round); the trainer compares tol·tol_unit, tol / s."""
    filled = {"val_error": [0.1] * 3, "priors": [1.0] * 3}
    units = {name: create_loss(name, **{k: v for k, v in filled.items() if k in LOSSES[name].options}).tol_unit
             for name in list_losses()}
    assert units == {**dict.fromkeys(list_losses(), 1.0), "lm_softmax": 1 / 16}
    assert create_loss("lm_softmax", scale=4.0).tol_unit == 0.25


def test_cosface_and_arcface_formulas():
    s, m = 8.0, 0.3
    onehot = F.one_hot(CY, 3).float()
    assert torch.allclose(create_loss("cosface", scale=s, margin=m)(COS, CY), F.cross_entropy(s * (COS - m * onehot), CY))
    adjusted = COS.clone()
    for i in range(3):
        theta = math.acos(COS[i, CY[i]].item())
        adjusted[i, CY[i]] = math.cos(theta + m)
    arc = create_loss("arcface", scale=s, margin=m)(COS, CY)
    assert torch.allclose(arc, F.cross_entropy(s * adjusted, CY), atol=1e-5)
    # m = 0 is plain scaled softmax
    assert torch.allclose(create_loss("arcface", scale=s, margin=0.0)(COS, CY), F.cross_entropy(s * COS, CY), atol=1e-5)


# LDAM (Cao et al., 2019) on four classes of very different sizes: 1000, 100, 10 and 1 training images; logits in
# [−1, 1], as the authors' cosines (the loss takes any head's logits)
LDAM_COUNTS = np.array([1000.0, 100.0, 10.0, 1.0])
LDAM_COS = torch.tensor([[0.9, 0.1, -0.5, 0.3], [0.2, -0.3, 0.4, 0.1], [0.0, 0.7, 0.6, -0.2],
                         [-0.4, 0.2, 0.1, 0.5], [0.3, 0.3, 0.3, 0.3]])
LDAM_Y = torch.tensor([0, 2, 1, 3, 3])


def _ldam_numpy(cos: np.ndarray, y: np.ndarray, counts: np.ndarray, s: float, max_margin: float) -> float:
    """The paper's formula written out in float64: Δ_j = C / n_j^{1/4}, C so that max_j Δ_j = max_margin, and
    L = −log(e^{s(z_y − Δ_y)} / (e^{s(z_y − Δ_y)} + Σ_{j≠y} e^{s z_j})), averaged over the rows."""
    c = max_margin / np.max(counts ** -0.25)
    delta = c * counts ** -0.25
    losses = []
    for z, t in zip(cos.astype(np.float64), y):
        target = math.exp(s * (z[t] - delta[t]))
        others = sum(math.exp(s * z[j]) for j in range(len(z)) if j != t)
        losses.append(-math.log(target / (target + others)))
    return float(np.mean(losses))


def test_ldam_margins_are_c_over_the_fourth_root_of_the_counts():
    from probe.losses import ldam_margins

    # C = 0.5 · 1^{1/4}: the single-image class gets max_margin, the others 0.5 / n^{1/4}
    expected = [0.5 / 1000 ** 0.25, 0.5 / 100 ** 0.25, 0.5 / 10 ** 0.25, 0.5]
    assert ldam_margins(LDAM_COUNTS, 0.5).tolist() == pytest.approx(expected, rel=1e-7)
    assert ldam_margins(LDAM_COUNTS, 0.5).tolist() == pytest.approx([0.088914, 0.158114, 0.281171, 0.5], abs=1e-6)
    # frequencies give the counts' margins (only their ratios count), and the loss keeps them as its buffer
    assert ldam_margins(LDAM_COUNTS / LDAM_COUNTS.sum(), 0.5).tolist() == pytest.approx(expected, rel=1e-6)
    assert create_loss("ldam", priors=LDAM_COUNTS, max_margin=0.5).delta.tolist() == pytest.approx(expected, rel=1e-6)
    # balanced classes: every margin is max_margin; a class without training images gets max_margin, not ∞
    assert ldam_margins([7, 7, 7], 0.3).tolist() == pytest.approx([0.3] * 3)
    assert ldam_margins([16, 0, 1], 0.4).tolist() == pytest.approx([0.2, 0.4, 0.4])
    with pytest.raises(ValueError, match="not all zero"):
        ldam_margins([0, 0], 0.5)


@pytest.mark.parametrize("s, max_margin", [(1.0, 0.5), (30.0, 0.5), (4.0, 1.2), (8.0, 0.0), (1.0, 5.0)])
def test_ldam_formula_against_numpy(s, max_margin):
    expected = _ldam_numpy(LDAM_COS.numpy(), LDAM_Y.numpy(), LDAM_COUNTS, s, max_margin)
    loss = create_loss("ldam", scale=s, max_margin=max_margin, priors=LDAM_COUNTS)
    assert loss(LDAM_COS, LDAM_Y).item() == pytest.approx(expected, rel=1e-6)
    assert loss(LDAM_COS.double(), LDAM_Y).item() == pytest.approx(expected, rel=1e-7)  # Δ held in float32


def test_ldam_defaults_and_cosface_with_max_margin_on_balanced_classes():
    loss = create_loss("ldam", priors=LDAM_COUNTS)
    assert (loss.scale, loss.max_margin, loss.input, loss.needs) == (1.0, 0.5, "logits", "priors")
    assert loss(LDAM_COS, LDAM_Y).item() == pytest.approx(
        _ldam_numpy(LDAM_COS.numpy(), LDAM_Y.numpy(), LDAM_COUNTS, 1.0, 0.5), rel=1e-6)
    m, s = 0.35, 8.0
    assert torch.allclose(create_loss("ldam", scale=s, max_margin=m, priors=[20, 20, 20])(COS, CY),
                          create_loss("cosface", scale=s, margin=m)(COS, CY))
    # max_margin 0: the scaled cosine softmax
    assert torch.allclose(create_loss("ldam", scale=s, max_margin=0.0, priors=[1, 50, 3])(COS, CY),
                          F.cross_entropy(s * COS, CY))


def test_ldam_gradient_is_the_softmax_minus_onehot_and_passes_gradcheck():
    s, m = 6.0, 0.5
    loss = create_loss("ldam", scale=s, max_margin=m, priors=LDAM_COUNTS)
    z = LDAM_COS.double().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda cos: loss(cos, LDAM_Y), (z,))
    loss(z, LDAM_Y).backward()
    # ∂L/∂cos = s·(softmax(s(cos − Δ_y·onehot)) − onehot) / n, Δ from the same float32 buffer
    onehot = F.one_hot(LDAM_Y, 4).double()
    shifted = s * (LDAM_COS.double() - loss.delta.double()[LDAM_Y, None] * onehot)
    expected = s * (torch.softmax(shifted, dim=1) - onehot) / len(LDAM_Y)
    assert torch.allclose(z.grad, expected, rtol=1e-12, atol=1e-14)
    # the rare class's margin makes its own sample's gradient larger than plain scaled softmax would
    plain = s * (torch.softmax(s * LDAM_COS.double(), dim=1) - onehot) / len(LDAM_Y)
    assert z.grad[3, 3] < plain[3, 3] < 0


@pytest.mark.parametrize("options, match", [
    ({"max_margin": -0.1}, r"loss 'ldam' option max_margin must be in \[0, 100\], got -0.1"),
    ({"max_margin": 101.0}, r"loss 'ldam' option max_margin must be in \[0, 100\], got 101.0"),
    ({"scale": 0.0}, r"loss 'ldam' option scale must be in \(0, 1000\], got 0.0"),
    ({"scale": 1001.0}, r"loss 'ldam' option scale must be in \(0, 1000\], got 1001.0"),
    ({"priors": [1.0, -1.0]}, r"loss 'ldam' option priors must be a non-empty list of numbers, each >= 0"),
])
def test_ldam_option_bounds_are_refused_naming_the_option(options, match):
    from probe import ProbeConfig

    with pytest.raises(ValueError, match=match):
        create_loss("ldam", **{"priors": [1.0, 2.0], **options})
    # the request is refused the same way, before any job (a 422 in the service)
    with pytest.raises(ValueError, match=match.replace("loss 'ldam' option ", "")):
        ProbeConfig(loss="ldam", loss_options=options)


def test_ldam_needs_priors_and_takes_either_head():
    from probe import ProbeConfig

    with pytest.raises(ValueError, match="loss 'ldam' needs priors"):
        create_loss("ldam")
    assert [ProbeConfig(loss="ldam", head=head).head for head in ("linear", "cosine")] == ["linear", "cosine"]
    with pytest.raises(ValueError, match="priors have 4 classes, logits have 3"):
        create_loss("ldam", priors=LDAM_COUNTS)(COS, CY)


def test_ldam_takes_its_margins_from_the_training_counts():
    """The trainer fills priors with the training frequencies (as for logit_adjust): Δ follows the counts."""
    from probe import ProbeTrainer
    from probe.losses import ldam_margins

    counts = np.array([40, 10, 5])
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), counts)
    x = (rng.normal(0, 1, (len(y), 5)) + 2.0 * np.eye(3, 5)[y]).astype(np.float32)
    m = ProbeTrainer(loss="ldam", epochs=3).fit(x, y)
    assert m.loss_options_["priors"] == pytest.approx((counts / counts.sum()).tolist())
    assert m.loss_.delta.tolist() == pytest.approx(ldam_margins(counts, 0.5).tolist(), rel=1e-6)
    assert m.loss_.delta.tolist() == pytest.approx([0.5 * (5 / 40) ** 0.25, 0.5 * (5 / 10) ** 0.25, 0.5], rel=1e-6)
    assert np.isfinite(m.history_).all()


def _simplex(k):
    """Regular simplex of k unit prototypes in k dimensions (centred, pairwise cosine −1/(k−1))."""
    w = torch.eye(k) - 1.0 / k
    return F.normalize(w, dim=1)


def test_zero_centroid_regularizer():
    assert zero_centroid_regularizer(_simplex(4)).item() == pytest.approx(0.0, abs=1e-12)
    w = torch.tensor([[1.0, 0.0], [2.0, 0.0]])  # normalised: both (1, 0), centroid (1, 0)
    assert zero_centroid_regularizer(w).item() == pytest.approx(1.0)


def test_sample_margin_regularizer_on_simplex():
    k = 4
    w = _simplex(k)
    feats = 3.0 * w  # features on their prototypes (scale does not matter: normalised)
    labels = torch.arange(k)
    # sample margin = 1 − (−1/(k−1)) = k/(k−1); R_sm is its negative
    assert sample_margin_regularizer(w, feats, labels).item() == pytest.approx(-k / (k - 1), rel=1e-6)


def test_representation_margin_exact_value():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    y = torch.tensor([0, 0, 0, 1])  # class 1 has a single sample: no x⁺, excluded from the mean
    sbar = 0.5
    d = {(0, 1): 1.0, (0, 2): 4.0, (1, 2): 5.0}
    dist = lambda i, j: d[(min(i, j), max(i, j))]
    per = [math.log(1 + sum(math.exp(dist(i, j) - 2 * sbar) for j in range(3) if j != i)) for i in range(3)]
    assert representation_margin(x, y, sbar).item() == pytest.approx(np.mean(per), rel=1e-6)


def test_representation_margin_gradient_and_degenerate_batch():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    y = torch.tensor([0, 0, 1])
    loss = representation_margin(x, y, 0.25)
    loss.backward()
    # only the class-0 pair matters: ℓ = log(1 + exp(1 − 0.5)) for both anchors; dℓ/dx0 = −2σ(0.5)(x1 − x0)
    sig = 1 / (1 + math.exp(-0.5))
    assert loss.item() == pytest.approx(math.log(1 + math.exp(0.5)))
    assert torch.allclose(x.grad, torch.tensor([[-2 * sig, 0.0], [2 * sig, 0.0], [0.0, 0.0]]), atol=1e-6)
    # every class a singleton: zero, but still backward-able
    x2 = torch.randn(3, 2, requires_grad=True)
    out = representation_margin(x2, torch.tensor([0, 1, 2]), 1.0)
    out.backward()
    assert out.item() == 0.0 and torch.count_nonzero(x2.grad) == 0


def test_representation_margin_no_overflow_on_far_points():
    x = torch.tensor([[0.0] * 4, [100.0] * 4])
    out = representation_margin(x, torch.tensor([0, 0]), 0.0)
    assert torch.isfinite(out) and out.item() == pytest.approx(40000.0, rel=1e-5)


def test_arcface_past_pi_takes_the_reference_implementations_linear_target():
    """Where θ_y + m would pass π (cos θ_y < cos(π − m)) the target logit is cos θ_y − m·sin m (the ArcFace
    reference code's ``cosine - mm``, mm = sin(π − m)·m), not cos(θ_y + m) and not cos θ_y − m: written out here in
    float64 on rows whose true-class cosine lies on either side of that edge. The other tests' cosines never
    reached the edge, so the branch could have been anything."""
    s, m = 8.0, 0.5
    cos = torch.tensor([[-0.95, 0.2, 0.1], [0.3, -0.99, -0.2], [0.6, 0.1, -0.4]], dtype=torch.float64)
    y = torch.tensor([0, 1, 0])
    edge = math.cos(math.pi - m)
    rows = []
    for i in range(3):
        c = cos[i, y[i]].item()
        target = math.cos(math.acos(c) + m) if c > edge else c - m * math.sin(m)
        z = [s * (target if j == y[i] else cos[i, j].item()) for j in range(3)]
        rows.append(-(z[y[i]] - math.log(sum(math.exp(v) for v in z))))
    assert [cos[i, y[i]].item() < edge for i in range(3)] == [True, True, False]
    assert create_loss("arcface", scale=s, margin=m)(cos, y).item() == pytest.approx(np.mean(rows), rel=1e-6)
