"""Multi-head self-attention on ``scaled_dot_product_attention`` with an additive float mask."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


class SelfAttention(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.in_proj = nn.Linear(embed_dim, 3 * embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor, attn_bias: Optional[torch.Tensor]) -> torch.Tensor:
        """x: ``(B, T, C)``; attn_bias: additive, broadcastable to ``(B, heads, T, T)``
        (relative position bias plus a large negative value on padded keys)."""
        bsz, seq_len, dim = x.shape
        q, k, v = (
            self.in_proj(x)
            .view(bsz, seq_len, 3, self.num_heads, self.head_dim)
            .permute(2, 0, 3, 1, 4)
            .unbind(0)
        )
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=None if attn_bias is None else attn_bias.to(q.dtype),
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out_proj(out.transpose(1, 2).reshape(bsz, seq_len, dim))
