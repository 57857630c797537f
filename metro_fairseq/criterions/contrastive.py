"""Sequence contrastive learning (COCO-LM's SCL; SimCSE-style with dropout views).

Views arrive as ``(2B, d)`` L2-normalised embeddings: rows ``i`` and ``i + B`` are the two views of
sequence ``i``. Each view is scored against every other view (its own row excluded) at temperature
``tau``; InfoNCE takes its partner as the positive and the other 2B - 2 views as negatives. With
``gather``, negatives come from every data-parallel worker through a gradient-correct all-gather.
"""
import torch
import torch.distributed as dist
import torch.nn.functional as F


def partner_index(n_views: int, device) -> torch.Tensor:
    half = n_views // 2
    idx = torch.arange(n_views, device=device)
    return torch.where(idx < half, idx + half, idx - half)


def _gather_views(z: torch.Tensor):
    """All workers' views (padded to the largest local count) and this worker's column offset.

    Reads the per-worker view counts back to the host (one small sync; only with gather on)."""
    from torch.distributed.nn.functional import all_gather

    world, rank = dist.get_world_size(), dist.get_rank()
    counts = [torch.zeros(1, dtype=torch.long, device=z.device) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([z.size(0)], device=z.device))
    counts = [int(c) for c in counts]
    largest = max(counts)
    padded = F.pad(z, (0, 0, 0, largest - z.size(0)))
    gathered = all_gather(padded)
    valid = torch.cat([torch.arange(largest, device=z.device) < c for c in counts])
    return torch.cat(gathered), valid, rank * largest


def info_nce_terms(z: torch.Tensor, temperature: float, gather: bool = False) -> dict:
    z = z.float()
    n = z.size(0)
    columns, valid, offset = z, None, 0
    if gather and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        columns, valid, offset = _gather_views(z)
    scores = z @ columns.t() / temperature
    rows = torch.arange(n, device=z.device)
    exclude = torch.zeros_like(scores, dtype=torch.bool)
    exclude[rows, rows + offset] = True
    if valid is not None:
        exclude |= ~valid[None, :]
    scores = scores.masked_fill(exclude, float("-inf"))
    targets = partner_index(n, z.device) + offset
    return {
        "scl_loss": F.cross_entropy(scores, targets, reduction="sum"),
        "scl_correct": scores.argmax(-1).eq(targets).sum(),
        "scl_views": n,
    }
