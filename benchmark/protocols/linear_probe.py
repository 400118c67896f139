"""The linear probe of Kornblith, Shlens & Le ("Do Better ImageNet Models Transfer Better?",
CVPR 2019): L2-regularised logistic regression on frozen, standardised features.

The inverse regularisation strength C is chosen on the validation split from a log-spaced grid
(their 45 values from 1e-6 to 1e5), fitting along the grid from the strongest regularisation
up and warm-starting each fit from the previous solution; then the model is refitted on
train + val with the chosen C and scores the test split. Single-label tasks are one multinomial
problem; multi-label tasks (CelebA's attributes) one binary problem per label, sharing the C
that gives the best validation score of the task.

scikit-learn's ``LogisticRegression`` (L-BFGS) does the fitting: it is the reference the issue
names, it keeps float32 features as float32, and its ``warm_start`` continues from the last
coefficients. This module imports numpy and scikit-learn only.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

Score = Callable[[np.ndarray, np.ndarray], float]  # (logits, targets) -> higher is better
# Below this many feature values, BLAS and OpenMP run the probe on one thread: each L-BFGS step
# is then a few small matrix products, and on a shared machine the threads' busy-waiting costs
# more than they save (60 x 2,048 over 45 values of C: 119 s with 2 threads under load, 8.8 s
# with one). Larger problems keep the libraries' default thread count.
SINGLE_THREAD_BELOW = 1 << 22


def c_grid(c_min: float = 1e-6, c_max: float = 1e5, count: int = 45) -> np.ndarray:
    """Kornblith's grid by default: ``count`` values evenly spaced in log10 from c_min to c_max."""
    return np.logspace(np.log10(c_min), np.log10(c_max), count)


@dataclass
class ProbeResult:
    test_logits: np.ndarray  # [N, classes] (single-label) or [N, labels] (multi-label), float32
    chosen_c: float
    grid: list[float]
    val_scores: list[float]  # one per grid value, same order
    not_converged: list[float] = field(default_factory=list)  # C values that hit max_iter
    iterations: list[int] = field(default_factory=list)  # L-BFGS iterations per grid value

    @property
    def curve(self) -> list[dict[str, float]]:
        return [{"C": c, "val_score": s} for c, s in zip(self.grid, self.val_scores, strict=True)]


class _Problem:
    """One logistic regression (multinomial over ``classes``, or one binary label), warm-started
    across calls to :meth:`fit`. A label with a single value in the training data has nothing to
    fit: its logit is the constant that label's smoothed log-odds give."""

    def __init__(self, y: np.ndarray, n_outputs: int, max_iter: int, tol: float) -> None:
        self.y = y
        self.n_outputs = n_outputs
        self.classes = np.unique(y)
        self.model = LogisticRegression(max_iter=max_iter, tol=tol, warm_start=True)

    @property
    def constant(self) -> bool:
        return len(self.classes) < 2

    def fit(self, x: np.ndarray, c: float) -> int:
        if self.constant:
            return 0
        self.model.set_params(C=float(c))
        self.model.fit(x, self.y)
        return int(np.max(self.model.n_iter_))

    def logits(self, x: np.ndarray) -> np.ndarray:
        """[N] for a binary label; [N, n_outputs] for a multinomial one, a class absent from
        training scored below every other class."""
        binary = self.n_outputs == 1
        if self.constant:
            positives = float(np.sum(self.y == 1))
            value = np.log((positives + 0.5) / (len(self.y) - positives + 0.5))
            if binary:
                return np.full(len(x), value, np.float32)
            out = np.full((len(x), self.n_outputs), -1.0, np.float32)
            out[:, int(self.classes[0])] = 0.0
            return out
        scores = self.model.decision_function(x).astype(np.float32)
        if binary:
            return scores
        if len(self.classes) == 2:  # scikit-learn gives one column for two classes
            scores = np.stack([-scores / 2, scores / 2], axis=1)
        out = np.full((len(x), self.n_outputs), 0.0, np.float32)
        out[:] = scores.min(axis=1, keepdims=True) - 1.0
        out[:, self.classes.astype(int)] = scores
        return out


def _problems(y: np.ndarray, num_outputs: int, multilabel: bool, max_iter: int,
              tol: float) -> list[_Problem]:  # fmt: skip
    if multilabel:
        return [_Problem(y[:, j], 1, max_iter, tol) for j in range(y.shape[1])]
    return [_Problem(y, num_outputs, max_iter, tol)]


def _logits(problems: list[_Problem], x: np.ndarray, multilabel: bool) -> np.ndarray:
    if multilabel:
        return np.stack([p.logits(x) for p in problems], axis=1)
    return problems[0].logits(x)


def fit_probe(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test_features: np.ndarray,
    *,
    num_outputs: int,
    multilabel: bool,
    score: Score,
    grid: np.ndarray | None = None,
    max_iter: int = 1000,
    tol: float = 1e-4,
    progress: Callable[[str], None] | None = None,
) -> ProbeResult:
    """Choose C on ``val`` (best ``score``; on a tie the smaller C, the stronger
    regularisation), refit on train + val with it, and return the test logits."""
    grid = c_grid() if grid is None else np.asarray(grid, dtype=float)
    x_train, y_train = np.asarray(train[0], np.float32), np.asarray(train[1])
    x_val, y_val = np.asarray(val[0], np.float32), np.asarray(val[1])
    scores: list[float] = []
    iterations: list[int] = []
    not_converged: list[float] = []
    small = x_train.size < SINGLE_THREAD_BELOW
    with threadpool_limits(limits=1 if small else None), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # counted in not_converged instead
        scaler = StandardScaler().fit(x_train)  # statistics of the fitting data only
        xs_train, xs_val = scaler.transform(x_train), scaler.transform(x_val)
        problems = _problems(y_train, num_outputs, multilabel, max_iter, tol)
        for c in sorted(grid):
            steps = [p.fit(xs_train, c) for p in problems]
            iterations.append(max(steps))
            if max(steps) >= max_iter:
                not_converged.append(float(c))
            scores.append(float(score(_logits(problems, xs_val, multilabel), y_val)))
            if progress is not None:
                progress(f"C={c:.3g}: val {scores[-1]:.4f} ({max(steps)} iterations)")
        best = int(np.argmax(scores))  # the first maximum: the smallest C among ties
        chosen = float(sorted(grid)[best])
        x_all = np.concatenate([x_train, x_val])
        y_all = np.concatenate([y_train, y_val])
        scaler = StandardScaler().fit(x_all)
        final = _problems(y_all, num_outputs, multilabel, max_iter, tol)
        for p in final:
            p.fit(scaler.transform(x_all), chosen)
        test_logits = _logits(final, scaler.transform(np.asarray(test_features, np.float32)),
                              multilabel)  # fmt: skip
    return ProbeResult(test_logits.astype(np.float32), chosen, [float(c) for c in sorted(grid)],
                       scores, not_converged, iterations)  # fmt: skip


def accuracy(logits: np.ndarray, targets: np.ndarray) -> float:
    """Top-1 (single-label) or mean per-label accuracy at logit 0 (multi-label)."""
    if logits.ndim == 2 and targets.ndim == 1:
        return float(np.mean(np.argmax(logits, axis=1) == targets))
    return float(np.mean((logits > 0) == (targets > 0)))
