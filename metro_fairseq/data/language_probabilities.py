"""Exponentially smoothed language probabilities (XLM, XLM-R): p_i proportional to n_i ** alpha.
Shared by the task's language sampling and metro-prepare-multilingual-corpus (its SentencePiece sample)."""
from typing import Sequence

import numpy as np


def sampling_probabilities(counts: Sequence[float], alpha: float) -> np.ndarray:
    """p_i = n_i^alpha / sum_j n_j^alpha. alpha 1 keeps the natural shares, 0 makes them uniform."""
    counts = np.asarray(counts, dtype=np.float64)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"--multilang-sampling-alpha {alpha} must lie in [0, 1] (XLM-R uses 0.3, 1.0 = proportional)")
    if counts.size == 0 or (counts <= 0).any():
        raise ValueError(f"every language needs at least one block to be sampled (got block counts {counts.tolist()})")
    weights = counts ** alpha
    return weights / weights.sum()
