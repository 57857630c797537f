"""DeBERTa's log-bucketed relative positions (He et al. 2021; DeBERTa-v2/v3's ``position_buckets``).

Distances up to half the buckets keep their own bucket; larger ones share log-spaced buckets that
reach the last one at ``max_position - 1``. Unlike T5's buckets these are signed (``query - key``)
and index a relative *embedding*, not a scalar bias.
"""
import torch


def log_bucket_position(relative_position: torch.Tensor, buckets: int, max_position: int) -> torch.Tensor:
    """Bucket of ``relative_position`` (``query_pos - key_pos``), in ``(-buckets, buckets)`` for
    distances below ``max_position``; farther ones land beyond and are clamped by the caller.

    float32 arithmetic, as transformers' DebertaV2Model: at a distance where the log ratio is an
    integer up to rounding, float64 can take the other side of the ceiling.
    """
    mid = buckets // 2
    sign = torch.sign(relative_position)
    distance = relative_position.abs()
    # the clamp only guards log(0); those distances take the exact branch
    ratio = torch.log(distance.clamp(min=1).float() / mid) / torch.log(torch.tensor((max_position - 1) / mid))
    log_bucket = (torch.ceil(ratio * (mid - 1)) + mid).long()
    return torch.where(distance <= mid, relative_position, sign * log_bucket)


def attention_span(buckets: int, max_position: int) -> int:
    """Half the relative-embedding table: ``buckets``, or ``max_position`` without bucketing."""
    return buckets if buckets > 0 else max_position


def relative_embedding_index(seq_len: int, buckets: int, max_position: int, device=None) -> torch.Tensor:
    """``(T, T)`` row of the ``2 * span`` relative-embedding table that query i uses for key j:
    ``bucket(i - j) + span``, clamped to the table (DeBERTa's c2p index; p2c reads its transpose).
    ``buckets <= 0``: raw distances, no log buckets (DeBERTa v1)."""
    pos = torch.arange(seq_len, device=device)
    relative = pos[:, None] - pos[None, :]
    bucket = log_bucket_position(relative, buckets, max_position) if buckets > 0 else relative
    span = attention_span(buckets, max_position)
    return (bucket + span).clamp(0, 2 * span - 1)
