"""L2-regularised multinomial logistic regression on frozen features, with the regularisation
strength chosen on a held-out part of the training subset, and the learning-curve summary.

Objective (scikit-learn's convention): 0.5 * ||W||^2 + C * sum_i CE(W x_i + b, y_i), bias not
penalised; features standardised with the training subset's mean and spread. Solved with L-BFGS
in float64, deterministic.
"""
import math
import statistics
from typing import Dict, List, Sequence

import torch

from .label_subsets import stratified_split

C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


class LogisticRegression:
    def __init__(self, C: float = 1.0, max_iter: int = 200):
        self.C, self.max_iter = C, max_iter

    def fit(self, features: torch.Tensor, targets: torch.Tensor, num_classes: int) -> "LogisticRegression":
        x = features.double()
        self.mean = x.mean(0)
        self.scale = x.std(0, unbiased=False).clamp(min=1e-8)
        x = (x - self.mean) / self.scale
        self.weight = torch.zeros(x.size(1), num_classes, dtype=torch.float64, requires_grad=True)
        self.bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([self.weight, self.bias], max_iter=self.max_iter, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-9, tolerance_change=1e-12)

        def closure():
            opt.zero_grad()
            ce = torch.nn.functional.cross_entropy(x @ self.weight + self.bias, targets, reduction="sum")
            # divided by C * n so the scale stays O(1) whatever the subset size; same minimiser
            loss = (0.5 * self.weight.pow(2).sum() + self.C * ce) / (self.C * x.size(0))
            loss.backward()
            return loss

        opt.step(closure)
        return self

    @torch.no_grad()
    def predict(self, features: torch.Tensor) -> torch.Tensor:
        x = (features.double() - self.mean) / self.scale
        return (x @ self.weight + self.bias).argmax(-1)


def accuracy(pred: torch.Tensor, targets: torch.Tensor) -> float:
    return 100.0 * pred.eq(targets).double().mean().item()


def fit_with_selected_C(features, targets, num_classes: int, seed: int, held_out: float = 0.25,
                        grid: Sequence[float] = C_GRID) -> LogisticRegression:
    """Pick C on a stratified held-out part of the training subset, then refit on all of it."""
    labels = [str(t) for t in targets.tolist()]
    kept, held = stratified_split(labels, held_out, seed)
    best_C = grid[len(grid) // 2]
    if held and kept:
        kept, held = torch.tensor(kept), torch.tensor(held)
        scores = []
        for C in grid:
            probe = LogisticRegression(C).fit(features[kept], targets[kept], num_classes)
            scores.append(accuracy(probe.predict(features[held]), targets[held]))
        best_C = grid[max(range(len(grid)), key=lambda i: (scores[i], -i))]  # ties: the stronger penalty
    probe = LogisticRegression(best_C).fit(features, targets, num_classes)
    probe.selected_C = best_C
    return probe


def fit_selecting_C_on_dev(features, targets, dev_features, dev_targets, num_classes: int,
                           grid: Sequence[float] = C_GRID) -> LogisticRegression:
    """The probe of the C in ``grid`` with the best accuracy on a separate dev set (ties: the
    stronger penalty), fitted on the training set alone."""
    if dev_features.size(0) == 0:
        raise ValueError("the dev set is empty: C is chosen on it")
    best, best_score = None, -1.0
    for C in grid:
        probe = LogisticRegression(C).fit(features, targets, num_classes)
        score = accuracy(probe.predict(dev_features), dev_targets)
        if score > best_score:
            best, best_score = probe, score
    best.selected_C, best.dev_accuracy = best.C, best_score
    return best


def learning_curve_area(by_n: Dict[int, float]) -> float:
    """Mean of the curve over log n: the trapezoid area under accuracy against log(n), divided by
    the log range (a single point is its own value)."""
    ns = sorted(by_n)
    if len(ns) == 1:
        return by_n[ns[0]]
    logs = [math.log(n) for n in ns]
    area = sum((logs[i + 1] - logs[i]) * (by_n[ns[i]] + by_n[ns[i + 1]]) / 2 for i in range(len(ns) - 1))
    return area / (logs[-1] - logs[0])


def summarise(scores: List[float]) -> Dict[str, float]:
    return {"median": statistics.median(scores), "min": min(scores), "max": max(scores), "scores": list(scores)}
