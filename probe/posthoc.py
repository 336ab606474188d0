"""Post-hoc per-class logit bias: the cheap disparity baseline every method must beat (issue 7).

On top of a fitted probe's logits z (n, K), learn a bias vector b (K,) on the validation split and predict
argmax_k (z_k + b_k). b maximises a disparity objective subject to the validation overall accuracy (or balanced
accuracy, ``overall="balanced"``: ``probe.metrics.OVERALL_METRICS``) staying ≥ the unbiased probe's (the ERM floor):

* ``hard``: mean per-class accuracy of the hard third (``groups["hard"]``);
* ``worst``: accuracy of the worst class.

Search: deterministic coordinate ascent. Each round visits classes in index order and sets b_k to the best value of
a fixed grid ``scale · linspace(−max_shift, max_shift, n_steps)`` (0 is on the grid when n_steps is odd) with the
other biases held; ``scale`` is the standard deviation of the validation logits, so the grid adapts to linear
heads and to scaled cosine heads alike. Ties → higher overall → smaller |b_k|. Rounds stop after ``n_rounds``
or when a round changes nothing. Every step keeps the floor, so the result never lowers val overall accuracy.
"""
from __future__ import annotations

import logging

import numpy as np

from .metrics import nan_mean, overall_weights

logger = logging.getLogger(__name__)

__all__ = ["POSTHOC_OBJECTIVES", "PosthocLogitBias"]

POSTHOC_OBJECTIVES = ("hard", "worst")


class PosthocLogitBias:
    """Per-class logit bias fitted on validation logits (scikit-learn style).

    Args:
        objective: ``"hard"`` (hard-third accuracy, needs ``groups``) or ``"worst"`` (worst-class accuracy).
        groups: ``{"easy": [...], "medium": [...], "hard": [...]}`` class indices (see ``probe.groups``).
        max_shift: half-width of the bias grid in units of the logits' standard deviation.
        n_steps: number of grid values (odd keeps 0 on the grid).
        n_rounds: maximum coordinate-ascent rounds over all classes.
        floor: minimum validation overall accuracy; ``None`` → the unbiased logits' own accuracy.
        overall: what the floor constrains: ``"accuracy"`` over the samples, or ``"balanced"`` accuracy.

    Learned: ``bias_`` (K,), ``scale_``, ``floor_``, ``overall_before_`` / ``overall_after_``,
    ``objective_before_`` / ``objective_after_``, ``n_rounds_``.
    """

    def __init__(self, objective: str = "hard", groups: dict[str, list[int]] | None = None, *,
                 max_shift: float = 1.0, n_steps: int = 41, n_rounds: int = 3, floor: float | None = None,
                 overall: str = "accuracy"):
        self.objective = objective
        self.groups = groups
        self.max_shift = max_shift
        self.n_steps = n_steps
        self.n_rounds = n_rounds
        self.floor = floor
        self.overall = overall

    def _validate(self, logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.objective not in POSTHOC_OBJECTIVES:
            raise ValueError(f"Unknown post-hoc objective {self.objective!r}; accepted: {', '.join(POSTHOC_OBJECTIVES)}.")
        if self.objective == "hard" and not (self.groups and self.groups.get("hard")):
            raise ValueError("objective='hard' needs groups with a non-empty 'hard' list.")
        if not self.max_shift > 0:
            raise ValueError(f"max_shift must be > 0, got {self.max_shift}.")
        if int(self.n_steps) < 2:
            raise ValueError(f"n_steps must be >= 2, got {self.n_steps}.")
        if int(self.n_rounds) < 1:
            raise ValueError(f"n_rounds must be >= 1, got {self.n_rounds}.")
        logits = np.asarray(logits, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.int64)
        if logits.ndim != 2 or labels.shape != (logits.shape[0],):
            raise ValueError(f"logits must be (n, K) and labels (n,), got {logits.shape} and {labels.shape}.")
        if labels.size == 0:
            raise ValueError("PosthocLogitBias.fit needs at least one validation sample.")
        if labels.min() < 0 or labels.max() >= logits.shape[1]:
            raise ValueError(f"labels must lie in [0, {logits.shape[1] - 1}].")
        return logits, labels

    def _scores(self, correct: np.ndarray, onehot: np.ndarray, counts: np.ndarray,
                weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(G, n) correctness → (objective (G,), overall (G,)); ``weights`` (K,): from
        ``probe.metrics.overall_weights``."""
        with np.errstate(invalid="ignore", divide="ignore"):
            per_class = (correct @ onehot) / counts  # (G, K); nan for classes without samples
        # accuracy as the mean over samples: exactly equal for equal totals, so ties stay ties (the tie-break below)
        overall = correct.mean(axis=1) if self.overall == "accuracy" else np.nan_to_num(per_class) @ weights
        if self.objective == "hard":  # nan where no hard class has a validation image: numpy's warning unsaid
            objective = nan_mean(per_class[:, np.asarray(self.groups["hard"], dtype=np.int64)], axis=1)
        else:
            objective = np.nanmin(per_class, axis=1)
        return objective, overall

    def fit(self, logits: np.ndarray, labels: np.ndarray) -> "PosthocLogitBias":
        """Fit b on validation logits (n, K) and labels (n,); returns ``self``."""
        logits, labels = self._validate(logits, labels)
        n, num_classes = logits.shape
        onehot = np.zeros((n, num_classes))
        onehot[np.arange(n), labels] = 1.0
        counts = onehot.sum(axis=0)
        weights = overall_weights(counts, self.overall)  # checks the name
        scale = float(np.std(logits)) or 1.0
        grid = scale * np.linspace(-self.max_shift, self.max_shift, int(self.n_steps))
        bias = np.zeros(num_classes)

        before_correct = (logits.argmax(axis=1) == labels).astype(np.float64)[None, :]
        objective0, overall0 = self._scores(before_correct, onehot, counts, weights)
        floor = float(overall0[0]) if self.floor is None else float(self.floor)
        rows = np.arange(n)
        rounds = 0
        for _ in range(int(self.n_rounds)):
            rounds += 1
            changed = False
            for k in range(num_classes):
                shifted = logits + bias
                others = shifted.copy()
                others[:, k] = -np.inf
                best_other = others.max(axis=1)
                arg_other = others.argmax(axis=1)
                # (G, n): class k wins when its biased logit beats every other biased logit.
                wins = (logits[:, k][None, :] + grid[:, None]) > best_other[None, :]
                pred = np.where(wins, k, arg_other[None, :])
                correct = (pred == labels[None, :]).astype(np.float64)
                objective, overall = self._scores(correct, onehot, counts, weights)
                feasible = overall >= floor - 1e-12
                key = np.where(feasible, 0, -np.inf)
                order = np.lexsort((-np.abs(grid), overall + key, np.nan_to_num(objective, nan=-1.0) + key))
                best = order[-1]
                if not feasible[best]:  # cannot happen while the current point is feasible; keep it then
                    continue
                if grid[best] != bias[k]:
                    changed = True
                    bias[k] = grid[best]
            if not changed:
                break
        self.bias_ = bias
        self.scale_ = scale
        self.floor_ = floor
        self.n_rounds_ = rounds
        after_correct = ((logits + bias).argmax(axis=1) == labels).astype(np.float64)[None, :]
        objective1, overall1 = self._scores(after_correct, onehot, counts, weights)
        self.overall_before_, self.overall_after_ = float(overall0[0]), float(overall1[0])
        self.objective_before_, self.objective_after_ = float(objective0[0]), float(objective1[0])
        logger.info("post-hoc bias (%s): val objective %.4f -> %.4f, overall %.4f -> %.4f", self.objective,
                    self.objective_before_, self.objective_after_, self.overall_before_, self.overall_after_)
        return self

    def cross_fit(self, logits: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> np.ndarray:
        """Out-of-fold predictions (n,): each fold's samples predicted by a bias fitted, with this one's settings,
        on the other folds (its floor their unbiased accuracy) — the bias's effect on images it was not fitted on.
        ``folds`` (n,) gives each sample's fold (``probe.crossval.stratified_folds``)."""
        logits, labels, folds = np.asarray(logits), np.asarray(labels), np.asarray(folds)
        predicted = np.empty(labels.shape[0], dtype=np.int64)
        for fold in np.unique(folds):
            held = folds == fold
            model = PosthocLogitBias(self.objective, self.groups, max_shift=self.max_shift, n_steps=self.n_steps,
                                     n_rounds=self.n_rounds, floor=self.floor, overall=self.overall)
            predicted[held] = model.fit(logits[~held], labels[~held]).predict(logits[held])
        return predicted

    @classmethod
    def with_bias(cls, bias, objective: str = "hard") -> PosthocLogitBias:
        """A fitted bias restored from its values (a run's ``report.posthoc``): ready for :meth:`predict`."""
        model = cls(objective)
        model.bias_ = np.asarray(bias, dtype=np.float64)
        if model.bias_.ndim != 1 or not np.isfinite(model.bias_).all():
            raise ValueError(f"a post-hoc bias is one finite value per class; got {model.bias_.shape} values.")
        return model

    def decision_function(self, logits: np.ndarray) -> np.ndarray:
        """Biased logits z + b (n, K)."""
        if not hasattr(self, "bias_"):
            raise RuntimeError("PosthocLogitBias is not fitted; call fit(logits, labels) first.")
        logits = np.asarray(logits, dtype=np.float64)
        if logits.ndim != 2 or logits.shape[1] != self.bias_.shape[0]:
            raise ValueError(f"logits must be (n, {self.bias_.shape[0]}), got shape {logits.shape}.")
        return logits + self.bias_

    def predict(self, logits: np.ndarray) -> np.ndarray:
        """argmax_k (z_k + b_k) (n,)."""
        return self.decision_function(logits).argmax(axis=1)
