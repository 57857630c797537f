"""One Transformer encoder block, Post-LN (BERT, the default) or Pre-LN."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.modules import LayerNorm  # apex's fused kernel on GPU when apex is installed

from .attention import SelfAttention
from .disentangled_attention import DisentangledSelfAttention


class TransformerEncoderLayer(nn.Module):
    def __init__(
        self,
        embed_dim: int,
        ffn_dim: int,
        num_heads: int,
        dropout: float,
        attention_dropout: float,
        activation_dropout: float,
        normalize_before: bool,
        pos_att_type: Optional[str] = None,
        layer_norm_eps: float = 1e-5,
    ):
        """``pos_att_type`` (``c2p+p2c``, ...) makes the attention DeBERTa's disentangled one."""
        super().__init__()
        if pos_att_type is None:
            self.self_attn = SelfAttention(embed_dim, num_heads, attention_dropout)
        else:
            self.self_attn = DisentangledSelfAttention(embed_dim, num_heads, attention_dropout, dropout, pos_att_type)
        self.self_attn_layer_norm = LayerNorm(embed_dim, eps=layer_norm_eps)
        self.fc1 = nn.Linear(embed_dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, embed_dim)
        self.final_layer_norm = LayerNorm(embed_dim, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)
        self.activation_dropout = nn.Dropout(activation_dropout)
        self.normalize_before = normalize_before

    def residual_projections(self):
        """The linear layers that write into the residual stream (for scaled init)."""
        return [self.self_attn.out_proj, self.fc2]

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation_dropout(F.gelu(self.fc1(x))))

    def forward(self, x: torch.Tensor, attn_bias, *positions) -> torch.Tensor:
        """positions: disentangled attention's (relative table, index), shared by the layers; passed as
        separate tensors so activation checkpointing saves them and routes their gradients."""
        if self.normalize_before:
            x = x + self.dropout(self.self_attn(self.self_attn_layer_norm(x), attn_bias, *positions))
            return x + self.dropout(self._ffn(self.final_layer_norm(x)))
        x = self.self_attn_layer_norm(x + self.dropout(self.self_attn(x, attn_bias, *positions)))
        return self.final_layer_norm(x + self.dropout(self._ffn(x)))
