"""Collapse indicator: how alike the main model's token states are.

A Post-LN discriminator that has nothing left to learn from RTD can map every token to the same
vector (benchmarks: mean cosine 1.000 after collapse, ~0.01 at random init); such a model no longer
fine-tunes. The mean pairwise cosine over all non-pad positions of a batch is logged so a run
shows it while it happens. Without autograd: a diagnostic, not a loss.
"""
import torch


@torch.no_grad()
def token_similarity_terms(hidden: torch.Tensor, padding_mask: torch.Tensor) -> dict:
    """Mean cosine similarity between the states of distinct non-pad positions of the batch
    (``hidden`` is ``(B, T, C)``), as a per-batch value and a batch count, both tensors.

    With unit vectors u_i, sum_{i != j} u_i . u_j = |sum_i u_i|^2 - n: linear in n, not quadratic.
    Pads are zeroed rather than dropped (no boolean-mask gather, which would sync a GPU).
    """
    real = (~padding_mask).unsqueeze(-1).float()
    unit = torch.nn.functional.normalize(hidden.float(), dim=-1) * real
    n = real.sum()
    pairs = (unit.sum((0, 1)).pow(2).sum() - n) / (n * (n - 1)).clamp(min=1)
    return {"token_cos": pairs, "token_cos_batches": torch.ones_like(pairs)}
