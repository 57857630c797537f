"""Draw the generator's replacement tokens."""
import torch


@torch.no_grad()
def sample_replacements(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """One token per row of ``logits`` (``(N, V)``), from ``softmax(logits / T)`` computed in fp32.

    Runs without autograd: nothing of the main model's loss can flow back into the generator.
    """
    probs = torch.softmax(logits.detach().float() / temperature, dim=-1)
    return torch.multinomial(probs, 1).squeeze(-1)
