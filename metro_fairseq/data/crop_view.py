"""COCO-LM's second view for sequence contrastive learning: a contiguous crop of the original."""
import numpy as np


def contiguous_crop(tokens: np.ndarray, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """``<s>`` followed by a random contiguous span covering ``ratio`` of ``tokens[1:]``.

    ``tokens`` starts with ``<s>``; the span is drawn from the rest (at least one token).
    """
    body = tokens[1:]
    length = max(1, int(round(ratio * len(body))))
    start = int(rng.integers(0, len(body) - length + 1))
    return np.concatenate([tokens[:1], body[start : start + length]])
