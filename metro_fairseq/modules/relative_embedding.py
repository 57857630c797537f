"""The relative-position embedding table of disentangled attention: one per encoder, shared by all
layers, LayerNorm-ed before use (DeBERTa-v3's ``norm_rel_ebd: layer_norm``)."""
from typing import Tuple

import torch
import torch.nn as nn
from fairseq.modules import LayerNorm  # apex's fused kernel on GPU when apex is installed

from .log_buckets import attention_span, relative_embedding_index


class RelativeEmbedding(nn.Module):
    def __init__(self, embed_dim: int, buckets: int, max_position: int, layer_norm_eps: float = 1e-5):
        super().__init__()
        self.buckets = buckets
        self.max_position = max_position
        self.span = attention_span(buckets, max_position)
        self.embedding = nn.Embedding(2 * self.span, embed_dim)
        self.layer_norm = LayerNorm(embed_dim, eps=layer_norm_eps)

    def forward(self, seq_len: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """(table ``(R, C)``, index ``(T, T)`` into it), computed once per forward for every layer.

        A bucket is never farther from the centre than its distance, so rows beyond ``T - 1`` either
        side are read by no query/key pair: they are left out (``R <= 2T - 1``), which saves each layer
        that share of its c2p/p2c projections and products without changing any score.
        """
        lo = max(0, self.span - (seq_len - 1))
        hi = min(2 * self.span, self.span + seq_len)
        table = self.layer_norm(self.embedding.weight[lo:hi])
        index = relative_embedding_index(seq_len, self.buckets, self.max_position, table.device) - lo
        return table, index
