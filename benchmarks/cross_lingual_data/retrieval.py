"""Nearest-neighbour retrieval accuracy of paired embeddings (Tatoeba-style, XTREME's retrieval tasks)."""
import torch


def retrieval_accuracy(queries: torch.Tensor, keys: torch.Tensor) -> float:
    """Percent of rows i whose most cosine-similar row of ``keys`` is row i (accuracy@1): query i
    is the translation of key i. A tie is resolved towards the lowest index, as argmax does."""
    if queries.dim() != 2 or queries.shape != keys.shape:
        raise ValueError(f"queries {tuple(queries.shape)} and keys {tuple(keys.shape)} must be the same (N, C)")
    if queries.size(0) == 0:
        raise ValueError("no pairs to retrieve among")
    q = torch.nn.functional.normalize(queries.double(), dim=1)
    k = torch.nn.functional.normalize(keys.double(), dim=1)
    nearest = (q @ k.t()).argmax(dim=1)
    return 100.0 * nearest.eq(torch.arange(q.size(0))).double().mean().item()
