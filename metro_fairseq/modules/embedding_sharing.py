"""How the generator and the main model share the token embedding table.

- ``tied``: one table for both (COCO-LM, METRO); both losses update it.
- ``gdes``: DeBERTaV3's gradient-disentangled sharing. The generator owns ``E``; the main model
  uses ``stopgrad(E) + E_delta`` with ``E_delta`` zero-initialised, so the RTD loss only moves
  ``E_delta`` and the generator's MLM loss only moves ``E``.
- ``none``: two independent tables.
In every mode the generator's MLM output projection is tied to the generator's table.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

SHARING_MODES = ("tied", "gdes", "none")


class TokenEmbeddingSharing(nn.Module):
    def __init__(self, num_embeddings: int, embed_dim: int, padding_idx: int, mode: str, with_generator: bool):
        super().__init__()
        if mode not in SHARING_MODES:
            raise ValueError(f"embedding_sharing={mode!r} is not one of {SHARING_MODES}")
        self.mode = mode
        self.padding_idx = padding_idx
        # ``weight`` is always the main model's table when no generator is built (fine-tuning,
        # exported checkpoints), so a model without generator has exactly one table.
        self.weight = nn.Parameter(torch.empty(num_embeddings, embed_dim))
        self.generator_table = None
        self.delta = None
        if with_generator and mode == "none":
            self.generator_table = nn.Parameter(torch.empty(num_embeddings, embed_dim))
        if with_generator and mode == "gdes":
            self.delta = nn.Parameter(torch.zeros(num_embeddings, embed_dim))
        self.reset_parameters()

    def reset_parameters(self):
        for w in (self.weight, self.generator_table):
            if w is not None:
                nn.init.normal_(w, mean=0.0, std=0.02)
                with torch.no_grad():
                    w[self.padding_idx].zero_()
        if self.delta is not None:
            nn.init.zeros_(self.delta)

    def generator_weight(self) -> torch.Tensor:
        return self.generator_table if self.generator_table is not None else self.weight

    def main_weight(self) -> torch.Tensor:
        if self.delta is not None:
            return self.weight.detach() + self.delta
        return self.weight

    def embed_main(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.embedding(tokens, self.main_weight(), self.padding_idx)

    def embed_generator(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.embedding(tokens, self.generator_weight(), self.padding_idx)
