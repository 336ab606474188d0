"""Training precision (probe.precision): bf16 autocast of the matrix products, fp32 master weights and statistics."""
import hashlib

import numpy as np
import pytest
import torch
from pydantic import ValidationError

import probe.precision as precision_module
import probe.trainer as trainer_module
from probe import ProbeConfig, ProbeTrainer, fit_many
from probe.precision import (BF16_MIN_CAST_ONCE_OUTPUTS, BF16_MIN_FULL_BATCH_MACS, BF16_MIN_OUTPUTS,
                             BatchProduct, ConstantProduct, cast_rows, cpu_has_native_bf16, per_head_products,
                             resolve_precision, rows_product)

from test_trainer import gaussian_features

CPU = torch.device("cpu")


def _weights_sha256(m: ProbeTrainer) -> str:
    return hashlib.sha256(b"".join(v.numpy().tobytes() for v in m.head_.state_dict().values())).hexdigest()


@pytest.mark.parametrize("kwargs,digest,last_loss", [
    ({"loss": "ce"}, "ef04ad09bf82a96c6aa1b948c6764dc73bf5dd3f752ffe3f7c03ebf7a085efa5", 1.4597713947296143),
    # re-recorded when mini-batches became balanced (probe.trainer.balanced_batches: 1,000 rows in 16 batches of
    # 62–63 rows instead of 15 of 64 and one of 40)
    ({"loss": "mr2", "cbar": 2.0, "head": "cosine", "batch_size": 64},
     "822cd68c655b9e88ae2ae2d3685fc6f2f86fe8bc367ed78ae06743786c942602", 0.4033597707748413),
])
@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_fp32_is_bit_identical_to_the_trainer_before_the_option(kwargs, digest, last_loss, precision):
    """Digests and losses recorded with the trainer before ``precision`` existed (commit ff99fe2; the mini-batch
    case re-recorded with balanced batches); ``auto`` is fp32 on a problem this narrow (5 classes). The digests
    are of one CPU's float32 kernels: on a CPU whose BLAS sums in another order the weights differ in the last
    bits, so there the final loss is checked to 1e-5."""
    x, y = gaussian_features(n_per=200, d=32, k=5)
    m = ProbeTrainer(epochs=4, lr=1e-2, random_state=3, precision=precision, **kwargs).fit(x, y)
    assert m.precision_ == "fp32"
    assert m.history_[-1] == pytest.approx(last_loss, rel=1e-5)
    if _weights_sha256(m) != digest:  # another CPU's kernels: fp32 and auto must still agree bit for bit
        plain = ProbeTrainer(epochs=4, lr=1e-2, random_state=3, precision="fp32", **kwargs).fit(x, y)
        assert _weights_sha256(m) == _weights_sha256(plain) and m.history_[-1] == plain.history_[-1]


def test_bad_precision_is_refused_by_the_trainer_and_the_request():
    x, y = gaussian_features()
    with pytest.raises(ValueError, match=r"precision must be one of auto, fp32, bf16, got 'fp16'"):
        ProbeTrainer(precision="fp16").fit(x, y)
    with pytest.raises(ValidationError, match=r"precision must be one of auto, fp32, bf16, got 'half'"):
        ProbeConfig(precision="half")
    assert ProbeConfig().precision == "auto" and ProbeConfig(precision="bf16", batch_size=1024).trainer_params(
        {"lr": 0.1, "weight_decay": 0.0}, seed=0)["precision"] == "bf16"
    with pytest.raises(ValueError, match="trainers fitted jointly must share precision"):
        fit_many([ProbeTrainer(precision="fp32"), ProbeTrainer(precision="bf16")], x, y)


def test_auto_chooses_bf16_only_for_wide_products_on_a_native_bf16_cpu():
    wide = "bf16" if cpu_has_native_bf16() else "fp32"
    assert resolve_precision("auto", CPU, BF16_MIN_OUTPUTS) == wide
    assert resolve_precision("auto", CPU, BF16_MIN_OUTPUTS - 1) == "fp32"
    assert resolve_precision("auto", torch.device("cuda"), 10 * BF16_MIN_OUTPUTS) == "fp32"
    assert resolve_precision("bf16", CPU, 1) == "bf16" and resolve_precision("fp32", CPU, 10**6) == "fp32"
    # a full batch is cast once per fit, so a narrow product pays from BF16_MIN_FULL_BATCH_MACS multiply-adds
    assert resolve_precision("auto", CPU, 10, full_batch_macs=BF16_MIN_FULL_BATCH_MACS) == wide
    assert resolve_precision("auto", CPU, 10, full_batch_macs=BF16_MIN_FULL_BATCH_MACS - 1) == "fp32"
    assert resolve_precision("fp32", CPU, 10, full_batch_macs=10**12) == "fp32"
    # so are mini-batches gathered from a cast-once copy: bf16 from BF16_MIN_CAST_ONCE_OUTPUTS
    assert BF16_MIN_CAST_ONCE_OUTPUTS < BF16_MIN_OUTPUTS
    assert resolve_precision("auto", CPU, BF16_MIN_CAST_ONCE_OUTPUTS, cast_once=True) == wide
    assert resolve_precision("auto", CPU, BF16_MIN_CAST_ONCE_OUTPUTS - 1, cast_once=True) == "fp32"
    assert resolve_precision("auto", CPU, BF16_MIN_CAST_ONCE_OUTPUTS) == "fp32"
    assert resolve_precision("auto", torch.device("cuda"), BF16_MIN_OUTPUTS, cast_once=True) == "fp32"


@pytest.mark.parametrize("batch_size,kwargs,expected,cast", [
    (None, {}, "bf16", "constant"),  # full batch: one ConstantProduct cast
    (512, {}, "bf16", "rows"),  # mini-batches of ℓ_γ,ce: gathered from a copy cast once (10 ≥ 3 outputs)
    (512, {"loss": "focal"}, "fp32", None),  # the loss reads each batch: a cast per batch, 10 < BF16_MIN_OUTPUTS
])
def test_auto_trains_in_bf16_where_the_features_are_cast_once(monkeypatch, batch_size, kwargs, expected, cast):
    """2,000 × 256 × 10 classes (5.1M multiply-adds), one head: ``auto`` picks bf16 where the features are cast
    once per fit (a full batch: every step's product reads the same bfloat16 tensor; mini-batches that only the
    product reads: gathered from one bfloat16 copy), with the heads an explicit ``bf16`` fit gives; fp32 where each
    batch would be cast anew."""
    if not cpu_has_native_bf16():
        pytest.skip("this CPU has no native bfloat16: auto is fp32")
    x, y = gaussian_features(n_per=200, d=256, k=10)
    assert len(y) * 256 * 10 >= BF16_MIN_FULL_BATCH_MACS and BF16_MIN_CAST_ONCE_OUTPUTS <= 10 < BF16_MIN_OUTPUTS
    inputs, copies = [], []
    original = ConstantProduct._operands

    def spy(self):  # every product reads its operands here: the closed-form step's calls no __call__ (ERM heads)
        out = original(self)
        inputs.append(out[0])
        return out

    monkeypatch.setattr(ConstantProduct, "_operands", spy)
    monkeypatch.setattr(trainer_module, "cast_rows", lambda *a: copies.append(a[0].shape) or cast_rows(*a))
    m = ProbeTrainer(epochs=3, batch_size=batch_size, **kwargs).fit(x, y)
    assert m.precision_ == expected
    if cast == "constant":
        # 3 full-batch steps, each reading the features for its logits and its weight gradient
        assert len(inputs) == 6 and {t.dtype for t in inputs} == {torch.bfloat16} and copies == []
        assert all(t.data_ptr() == inputs[0].data_ptr() for t in inputs)  # one cast, reused
    else:
        assert inputs == [] and copies == ([x.shape] if cast == "rows" else [])
    if expected == "bf16":
        plain = ProbeTrainer(epochs=3, batch_size=batch_size, precision="bf16", **kwargs).fit(x, y)
        assert np.array_equal(m.class_weights(), plain.class_weights())


def test_constant_product_matches_autocast_and_its_gradient_is_the_bf16_weight_gradient():
    torch.manual_seed(0)
    x, w, g = torch.randn(300, 64), torch.randn(7, 64, requires_grad=True), torch.randn(300, 7)
    z = ConstantProduct(x, torch.bfloat16)(w)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = x @ w.t()
    assert z.dtype == torch.float32 and torch.equal(z, ref.float())
    (z * g).sum().backward()
    expected = (g.bfloat16().t() @ x.bfloat16()).float()  # gᵀ·x in bfloat16, as autocast's backward computes it
    assert w.grad.dtype == torch.float32
    torch.testing.assert_close(w.grad, expected, rtol=1e-2, atol=1e-2)
    exact = g.t() @ x  # and the float32 gradient, to bfloat16's precision (inputs rounded to 8 bits)
    assert float((w.grad - exact).abs().max()) <= 0.01 * float(exact.abs().max())


def test_rows_product_is_the_autocast_product_and_its_gradient_the_bf16_weight_gradient():
    torch.manual_seed(0)
    x, w, g = torch.randn(300, 64), torch.randn(7, 64, requires_grad=True), torch.randn(300, 7)
    xb = cast_rows(x, torch.bfloat16, chunk_rows=64)  # 5 chunks, the last one short
    assert xb.dtype == torch.bfloat16 and torch.equal(xb, x.bfloat16())  # autocast's rounding, chunk by chunk
    assert torch.equal(cast_rows(x.half(), torch.bfloat16, 7), x.half().float().bfloat16())  # float16 → bf16
    z = rows_product(xb)(w)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = x @ w.t()
    assert z.dtype == torch.float32 and torch.equal(z, ref.float())
    (z * g).sum().backward()
    assert w.grad.dtype == torch.float32
    torch.testing.assert_close(w.grad, (g.bfloat16().t() @ xb).float())  # gᵀ·x in bfloat16, from x as it is


@pytest.mark.parametrize("transposed", [False, True])
def test_per_head_products_are_the_autocast_products_of_the_stacked_heads_bit_for_bit(transposed):
    """Three heads of 5, 7 and 4 classes: each head's float32 block and each head's float32 weight gradient are
    exactly what torch.cat of the matrices under autocast, widened and split, gives (the code before)."""
    torch.manual_seed(0)
    x = torch.randn(50, 32)
    matrices = [torch.randn(m, 32, requires_grad=True) for m in (5, 7, 4)]
    gs = [torch.randn(50, m) for m in (5, 7, 4)]
    xb = x.bfloat16()
    out = per_head_products(xb, xb.t().contiguous() if transposed else None, matrices)
    assert [tuple(z.shape) for z in out] == [(50, 5), (50, 7), (50, 4)] and {z.dtype for z in out} == {torch.float32}
    sum((z * g).sum() for z, g in zip(out, gs)).backward()
    grads = [m.grad.clone() for m in matrices]
    for m in matrices:
        m.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = x @ torch.cat(matrices).t()
    ref = ref.float().split([5, 7, 4], dim=1)
    for z, r in zip(out, ref):
        assert torch.equal(z, r)
    sum((r * g).sum() for r, g in zip(ref, gs)).backward()
    for got, m in zip(grads, matrices):
        assert got.dtype == torch.float32 and got.is_contiguous()
        if transposed:  # (xt·g)ᵀ sums in another order than autocast's gᵀ·x: equal to bfloat16's rounding
            torch.testing.assert_close(got, m.grad, rtol=1e-2, atol=1e-2)
        else:
            assert torch.equal(got, m.grad)


@pytest.mark.parametrize("batch_size,dtype", [(None, np.float32), (200, np.float16), (200, np.float32)])
def test_a_bf16_sweep_of_many_classes_gets_each_heads_product_in_place(monkeypatch, batch_size, dtype):
    """Classes beyond the closed-form step's CLOSED_FORM_CLASSES (and the joint loss's LOGSUMEXP_CLASSES), the ERM
    sweep's 6 heads in bf16: a full batch, batches gathered from features cast once, and batches cast anew (the
    cast-once cap lowered) all take their heads' products from per_head_products, and give the heads that
    concatenating the matrices and splitting the product gives (BatchProduct.each, the code before), bit for bit."""
    k = trainer_module.CLOSED_FORM_CLASSES.stop
    x, y = gaussian_features(n_per=16, d=k + 4, k=k)
    x = x.astype(dtype)
    calls = []
    monkeypatch.setattr(precision_module, "per_head_products",
                        lambda *a: calls.append(len(a[2])) or per_head_products(*a))
    monkeypatch.setattr(trainer_module, "per_head_products", precision_module.per_head_products)
    if dtype == np.float32 and batch_size:
        monkeypatch.setattr(trainer_module, "CAST_ONCE_MAX_OUTPUTS", 6 * k - 1)
    fitted = _fit_sweep(x, y, batch_size=batch_size)
    steps = 3 * (1 if batch_size is None else -(-len(y) // batch_size))
    assert calls == [6] * steps and fitted[0].precision_ == "bf16"
    for cls in (ConstantProduct, precision_module._RowsProduct, trainer_module._AutocastProduct):
        monkeypatch.setattr(cls, "each", BatchProduct.each)
    calls.clear()
    before = _fit_sweep(x, y, batch_size=batch_size)
    assert calls == []
    for a, b in zip(fitted, before):
        assert np.array_equal(a.class_weights(), b.class_weights()) and a.history_ == b.history_


def _fit_sweep(x, y, **kwargs):
    """The ERM sweep's 6 heads fitted jointly, 3 epochs, batches of 256, bf16."""
    cfg = ProbeConfig(**{"loss": "ce", "batch_size": 256, "precision": "bf16", **kwargs}).resolved(len(y))
    trainers = [ProbeTrainer(**{**cfg.trainer_params(c, seed=0), "epochs": 3, "tol": None})
                for c in cfg.candidates()]
    return fit_many(trainers, x, y)


@pytest.mark.parametrize("dtype,cap", [(np.float16, "bytes"), (np.float32, "bytes"), (np.float16, "outputs")])
def test_bf16_mini_batches_gather_from_features_cast_once(monkeypatch, dtype, cap):
    """A bf16 sweep on mini-batches whose product is the batches' only reader casts its features to bfloat16 once
    per fit and gathers bfloat16 batches from them; past either cap (the copy's bytes, the product's outputs)
    each batch is cast anew, and the heads are the same up to the summation order of the product's two forms
    (bit-identical on this machine's oneDNN)."""
    x, y = gaussian_features(n_per=250, d=48, k=6)
    x = x.astype(dtype)
    casts, batches = [], []
    monkeypatch.setattr(trainer_module, "cast_rows", lambda *a: casts.append(a[0].dtype) or cast_rows(*a))
    monkeypatch.setattr(trainer_module, "rows_product", lambda xb: batches.append(xb.dtype) or rows_product(xb))
    once = _fit_sweep(x, y)
    assert casts == [torch.float16 if dtype == np.float16 else torch.float32]
    assert len(batches) == 3 * 6 and set(batches) == {torch.bfloat16}  # 1,500 rows: 6 batches per epoch
    if cap == "bytes":
        monkeypatch.setattr(trainer_module, "CAST_ONCE_MAX_BYTES", x.size * 2 - 1)  # the copy no longer fits
    else:
        monkeypatch.setattr(trainer_module, "CAST_ONCE_MAX_OUTPUTS", 6 * 6 - 1)  # 6 heads × 6 classes
    casts.clear(), batches.clear()
    per_batch = _fit_sweep(x, y)
    assert casts == [] and batches == []
    for a, b in zip(once, per_batch):
        assert a.precision_ == b.precision_ == "bf16"
        weights = a.class_weights()
        np.testing.assert_allclose(weights, b.class_weights(), rtol=0, atol=1e-3 * np.abs(weights).max())
        assert a.history_ == pytest.approx(b.history_, rel=1e-3)


@pytest.mark.parametrize("kwargs", [{"head": "cosine"}, {"loss": "mr2", "r2_mode": "ema"}, {"loss": "focal"}])
def test_bf16_mini_batches_are_cast_per_batch_where_something_reads_the_features(monkeypatch, kwargs):
    """The cosine head's normalised features, an EMA of the class statistics, a loss outside ℓ_γ,ce: each reads
    the batch, which then stays float32 (each batch cast for the product alone)."""
    x, y = gaussian_features(n_per=250, d=48, k=6)
    casts = []
    monkeypatch.setattr(trainer_module, "cast_rows", lambda *a: casts.append(a) or cast_rows(*a))
    fitted = _fit_sweep(x.astype(np.float16), y, **kwargs)
    assert casts == [] and fitted[0].precision_ == "bf16"


@pytest.mark.parametrize("head,adapter", [("linear", None), ("cosine", None), ("linear", "lowrank")])
def test_bf16_runs_the_products_in_bfloat16_and_the_loss_in_float32(monkeypatch, head, adapter):
    seen = []
    original = trainer_module.widen

    def spy(t):
        seen.append(t.dtype)
        out = original(t)
        assert out.dtype == torch.float32  # what the loss and the statistics receive
        return out

    monkeypatch.setattr(trainer_module, "widen", spy)
    monkeypatch.setattr(precision_module, "widen", spy)  # the full batch's ConstantProduct
    x, y = gaussian_features()
    m = ProbeTrainer(head=head, adapter=adapter, epochs=2, precision="bf16").fit(x, y)
    assert m.precision_ == "bf16" and torch.bfloat16 in seen
    assert all(p.dtype == torch.float32 for p in m.head_.parameters())  # float32 master weights
    assert m.decision_function(x).dtype == np.float32
    seen.clear()
    ProbeTrainer(head=head, adapter=adapter, epochs=2, precision="fp32").fit(x, y)
    assert seen and set(seen) == {torch.float32}


@pytest.mark.parametrize("head,loss", [("linear", "ce"), ("linear", "mr2"), ("cosine", "mr2")])
def test_bf16_fit_matches_fp32_accuracy_and_statistics(head, loss):
    """On a separable 8-class problem bf16 reaches fp32's test accuracy within 1 point (tolerance stated here), and
    the class statistics and margins, computed in float32 either way, are identical."""
    x, y = gaussian_features(n_per=300, d=64, k=8, mean_norm=6.0, seed=0)
    x_test, y_test = gaussian_features(n_per=300, d=64, k=8, mean_norm=6.0, seed=1)
    kw = dict(head=head, loss=loss, cbar=2.0, lr=1e-2, epochs=30, batch_size=256, random_state=0)
    m32 = ProbeTrainer(precision="fp32", **kw).fit(x, y)
    m16 = ProbeTrainer(precision="bf16", **kw).fit(x, y)
    acc32, acc16 = m32.score(x_test, y_test), m16.score(x_test, y_test)
    assert acc32 > 0.85
    assert abs(acc16 - acc32) <= 0.01, (acc32, acc16)
    assert np.array_equal(m16.r2_, m32.r2_) and np.array_equal(m16.gamma_, m32.gamma_)
    assert not np.array_equal(m16.class_weights(), m32.class_weights())  # the products did change
