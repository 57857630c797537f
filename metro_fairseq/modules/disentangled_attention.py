"""DeBERTa-v2/v3's disentangled self-attention (He et al. 2021) on ``scaled_dot_product_attention``.

score(i, j) = (q_i . k_j + q_i . Kr[d(i, j)] + k_j . Qr[d(i, j)]) / sqrt(3 * head_dim), where
d(i, j) is the log bucket of ``i - j`` and Kr, Qr are the shared relative table through this layer's
own key/query projections (v3's ``share_att_key``: no separate position projections). The two
position terms (content-to-position, position-to-content) form one additive ``(B, heads, T, T)``
tensor that goes to SDPA with the padding mask; SDPA's own q.k scale is set to the same
1/sqrt(3 * head_dim) so every term is scaled as in DeBERTa.
"""
from typing import Optional

import torch
import torch.nn.functional as F

from .attention import SelfAttention

# DeBERTa writes c2p|p2c; "+" keeps the value safe in the flags export_main_model.py prints
POS_ATT_TYPES = ("c2p+p2c", "c2p", "p2c")


class DisentangledSelfAttention(SelfAttention):
    """Same parameters as :class:`SelfAttention` (``in_proj``, ``out_proj``): positions reuse them."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float, position_dropout: float, pos_att_type: str):
        super().__init__(embed_dim, num_heads, dropout)
        pos_att_type = str(pos_att_type)  # hydra hands over fairseq's ChoiceEnum member
        if pos_att_type not in POS_ATT_TYPES:
            raise ValueError(f"--pos-att-type {pos_att_type!r} is not one of {', '.join(POS_ATT_TYPES)}")
        self.c2p = "c2p" in pos_att_type
        self.p2c = "p2c" in pos_att_type
        self.scale = (self.head_dim * (1 + self.c2p + self.p2c)) ** -0.5
        # DeBERTa drops out the shared table anew in every layer, at the hidden dropout rate
        self.position_dropout = torch.nn.Dropout(position_dropout)

    def forward(
        self, x: torch.Tensor, attn_bias: Optional[torch.Tensor], rel_table: torch.Tensor, rel_index: torch.Tensor
    ) -> torch.Tensor:
        """x: ``(B, T, C)``; attn_bias: padding mask, additive, ``(B, 1, 1, T)``; rel_table: ``(R, C)``,
        the normalised relative embeddings; rel_index: ``(T, T)`` row of ``rel_table`` for (query, key)."""
        bsz, seq_len, dim = x.shape
        heads, head_dim = self.num_heads, self.head_dim
        q, k, v = (
            self.in_proj(x).view(bsz, seq_len, 3, heads, head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        )
        rel = self.position_dropout(rel_table)
        pos_q, pos_k = (
            F.linear(rel, self.in_proj.weight[: 2 * dim], self.in_proj.bias[: 2 * dim])
            .view(-1, 2, heads, head_dim)
            .permute(1, 2, 3, 0)  # (2, heads, head_dim, R)
            .unbind(0)
        )
        index = rel_index.expand(bsz, heads, seq_len, seq_len)
        bias = None
        if self.c2p:  # query i against the position of key j relative to it
            bias = torch.gather(q @ pos_k, -1, index)
        if self.p2c:  # key j against the position of query i: gathered per key, then transposed
            p2c = torch.gather(k @ pos_q, -1, index.transpose(-1, -2)).transpose(-1, -2)
            bias = p2c if bias is None else bias.add_(p2c)
        # in place: no backward reads these (B, heads, T, T) values, and each copy is a layer's worth
        # of attention-sized memory
        bias = bias.mul_(self.scale)
        if attn_bias is not None:
            bias = bias.add_(attn_bias)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias.to(q.dtype), dropout_p=self.dropout if self.training else 0.0, scale=self.scale
        )
        return self.out_proj(out.transpose(1, 2).reshape(bsz, seq_len, dim))
