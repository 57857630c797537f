"""Draw the generator's replacement tokens."""
import torch


@torch.no_grad()
def sample_replacements(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """One token per row of ``logits`` (``(N, V)``), from ``softmax(logits / T)`` computed in fp32.

    Inverse-CDF sampling: one uniform draw per row against the cumulative probabilities. It draws
    from exactly the same distribution as ``torch.multinomial``, which on CPU spends one exponential
    random number per vocabulary entry (~6% of a METRO update there, benchmarks/cost_per_update.py).
    Runs without autograd: nothing of the main model's loss can flow back into the generator.
    """
    cdf = torch.softmax(logits.detach().float() / temperature, dim=-1).cumsum_(dim=-1)
    # scaled by the row's computed total so rounding in the sum cannot push u past the last entry;
    # right=True skips zero-probability entries (their cdf equals the previous one)
    u = torch.rand(cdf.size(0), 1, device=cdf.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp_(max=cdf.size(-1) - 1)
