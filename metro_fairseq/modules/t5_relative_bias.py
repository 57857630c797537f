"""T5-style bucketed relative position bias (Raffel et al. 2020), as used by COCO-LM and METRO."""
import math

import torch
import torch.nn as nn


def relative_position_bucket(
    relative_position: torch.Tensor,
    bidirectional: bool = True,
    num_buckets: int = 32,
    max_distance: int = 128,
) -> torch.Tensor:
    """Map ``key_pos - query_pos`` to a bucket id in ``[0, num_buckets)``, exactly as T5 does.

    Bidirectional: half the buckets per direction (keys after the query get the upper half).
    Within a direction, distances below half of those buckets get one bucket each; larger
    ones share log-spaced buckets up to ``max_distance``, beyond which all fall in the last.
    """
    bucket = torch.zeros_like(relative_position)
    n = -relative_position
    if bidirectional:
        num_buckets //= 2
        bucket = bucket + (n < 0).long() * num_buckets
        n = n.abs()
    else:
        n = n.clamp(min=0)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    # clamp only guards log(0); those positions take the exact branch anyway
    log_ratio = torch.log(n.clamp(min=1).float() / max_exact) / math.log(max_distance / max_exact)
    large = max_exact + (log_ratio * (num_buckets - max_exact)).long()
    large = large.clamp(max=num_buckets - 1)
    return bucket + torch.where(is_small, n, large)


class RelativePositionBias(nn.Module):
    """One learned scalar per (bucket, head); computed once per forward, shared by all layers."""

    def __init__(self, num_heads: int, num_buckets: int = 32, max_distance: int = 128):
        super().__init__()
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.embedding = nn.Embedding(num_buckets, num_heads)

    def forward(self, seq_len: int) -> torch.Tensor:
        """Return the bias as ``(1, heads, seq_len, seq_len)``."""
        pos = torch.arange(seq_len, device=self.embedding.weight.device)
        buckets = relative_position_bucket(
            pos[None, :] - pos[:, None],
            num_buckets=self.num_buckets,
            max_distance=self.max_distance,
        )
        return self.embedding(buckets).permute(2, 0, 1).unsqueeze(0)
