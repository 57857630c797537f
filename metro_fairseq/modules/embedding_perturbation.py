"""Perturbations of the normalised input embeddings inside a norm ball, for adversarial fine-tuning.

Scale-invariant as DeBERTa's SiFT (He et al. 2021, section 3.3): ``delta`` is measured in units of
each token's normalised embedding (zero mean, unit variance per token), so one radius means the same
for every model and every token. Unlike SiFT's hook, which re-normalises the clean path too, the
clean forward is left as it is: ``h + std(h) * delta`` equals perturbing ``LayerNorm(h)`` by ``delta``
and mapping back with the token's own mean and scale, and is exactly ``h`` at ``delta = 0``.
"""
import torch

NORMS = ("linf", "l2")
_TINY = 1e-12


class EmbeddingPerturbation:
    """Callable for ``MetroModel(..., embedding_perturbation=...)``: adds ``delta`` ``(B, T, C)``, fp32."""

    def __init__(self, delta: torch.Tensor):
        self.delta = delta

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        scale = hidden.detach().float().std(dim=-1, keepdim=True)
        return (hidden.float() + scale * self.delta).to(hidden.dtype)


def project(delta: torch.Tensor, epsilon: float, norm: str) -> torch.Tensor:
    """Into the per-token ball of radius ``epsilon``: ``max |delta_t| <= eps`` or ``||delta_t||_2 <= eps``."""
    if norm == "linf":
        return delta.clamp(-epsilon, epsilon)
    length = delta.norm(dim=-1, keepdim=True)
    return delta * (epsilon / length.clamp(min=_TINY)).clamp(max=1.0)


def ascent_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-token steepest-ascent direction of unit size in ``norm``; SiFT's ``g / max|g|`` for linf.
    Non-finite entries (an overflowed half-precision backward) count as zero: no host sync to skip a step."""
    grad = torch.nan_to_num(grad.float(), nan=0.0, posinf=0.0, neginf=0.0)
    size = grad.abs().amax(dim=-1, keepdim=True) if norm == "linf" else grad.norm(dim=-1, keepdim=True)
    return grad / size.clamp(min=_TINY)
