"""Transformer encoder shared by the main model and the generator.

Token embeddings are looked up by the caller (they may be shared or GDES-composed, see
``embedding_sharing.py``). Positions, by ``attention_type``:

- ``standard``: learned absolute positions added to the input and, optionally, one T5 relative
  position bias computed once per forward and reused by every layer;
- ``disentangled``: DeBERTa-v3's attention, no absolute positions; one log-bucketed relative
  embedding table (with its LayerNorm) computed once per forward and read by every layer's c2p/p2c terms.

Under ``--ddp-backend fully_sharded`` each layer is its own FSDP unit (``fsdp_wrap`` is a no-op
otherwise); everything else, including the token embeddings that the generator and the main model
share, stays in the root unit, so a shared table is never split across units.
"""
from typing import Callable, Optional

import torch
import torch.nn as nn
from fairseq.distributed import fsdp_wrap
from fairseq.modules import LayerNorm  # apex's fused kernel on GPU when apex is installed
from fairseq.modules.checkpoint_activations import checkpoint_wrapper

from .relative_embedding import RelativeEmbedding
from .t5_relative_bias import RelativePositionBias
from .transformer_layer import TransformerEncoderLayer

ATTENTION_TYPES = ("standard", "disentangled")


class TransformerEncoder(nn.Module):
    def __init__(
        self,
        input_dim: int,
        embed_dim: int,
        ffn_dim: int,
        num_layers: int,
        num_heads: int,
        max_positions: int,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        activation_dropout: float = 0.0,
        normalize_before: bool = False,
        relative_position_buckets: int = 0,
        relative_position_max_distance: int = 128,
        checkpoint_activations: bool = False,
        attention_type: str = "standard",
        position_buckets: int = 256,
        max_relative_positions: int = 512,
        pos_att_type: str = "c2p+p2c",
        layer_norm_eps: float = 1e-5,
        project_after_norm: bool = False,
    ):
        super().__init__()
        if attention_type not in ATTENTION_TYPES:
            raise ValueError(f"--attention-type {attention_type!r} is not one of {', '.join(ATTENTION_TYPES)}")
        disentangled = attention_type == "disentangled"
        # a narrower encoder (ELECTRA-style generator) reads the shared embeddings through a projection:
        # by default before positions and LayerNorm, at its own width; with project_after_norm after them,
        # at the embeddings' width (ELECTRA's own layout, so its released generators import exactly)
        self.input_proj = nn.Linear(input_dim, embed_dim) if input_dim != embed_dim else None
        self.project_after_norm = project_after_norm and self.input_proj is not None
        norm_dim = input_dim if self.project_after_norm else embed_dim
        self.embed_positions = None if disentangled else nn.Embedding(max_positions, norm_dim)
        self.embed_layer_norm = LayerNorm(norm_dim, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)
        self.relative_bias = None  # the T5 bias belongs to standard attention only
        if not disentangled and relative_position_buckets > 0:
            self.relative_bias = RelativePositionBias(num_heads, relative_position_buckets, relative_position_max_distance)
        self.relative_embedding = (
            RelativeEmbedding(embed_dim, position_buckets, max_relative_positions, layer_norm_eps) if disentangled else None
        )
        self.layers = nn.ModuleList()
        for _ in range(num_layers):
            layer = TransformerEncoderLayer(
                embed_dim, ffn_dim, num_heads, dropout, attention_dropout, activation_dropout, normalize_before,
                pos_att_type if disentangled else None, layer_norm_eps,
            )
            if checkpoint_activations:  # recompute the layer in backward (inside its FSDP unit)
                layer = checkpoint_wrapper(layer)
            self.layers.append(fsdp_wrap(layer))
        self.final_layer_norm = LayerNorm(embed_dim, eps=layer_norm_eps) if normalize_before else None
        self.max_positions = max_positions

    def attention_bias(self, padding_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Additive ``(B, heads or 1, T, T)`` mask: relative bias plus the dtype's lowest value on padded keys."""
        seq_len = padding_mask.size(1)
        pad = torch.zeros(padding_mask.shape, dtype=dtype, device=padding_mask.device)
        pad = pad.masked_fill(padding_mask, torch.finfo(dtype).min)[:, None, None, :]
        if self.relative_bias is None:
            return pad
        return self.relative_bias(seq_len).to(dtype) + pad

    def forward(
        self, token_embeddings: torch.Tensor, padding_mask: torch.Tensor, perturbation: Optional[Callable] = None
    ) -> torch.Tensor:
        """token_embeddings: ``(B, T, input_dim)``; padding_mask: ``(B, T)``, True at padding;
        perturbation: applied to the normalised input embeddings (adversarial fine-tuning)."""
        seq_len = token_embeddings.size(1)
        if seq_len > self.max_positions:
            raise ValueError(
                f"sequence of {seq_len} tokens exceeds max_positions={self.max_positions}; "
                "lower --tokens-per-sample or train with a larger --max-positions"
            )
        x = token_embeddings
        if self.input_proj is not None and not self.project_after_norm:
            x = self.input_proj(x)
        if self.embed_positions is not None:
            x = x + self.embed_positions(torch.arange(seq_len, device=x.device))
        x = self.embed_layer_norm(x)
        if perturbation is not None:
            x = perturbation(x)
        x = self.dropout(x)
        if self.project_after_norm:
            x = self.input_proj(x)
        attn_bias = self.attention_bias(padding_mask, x.dtype)
        positions = () if self.relative_embedding is None else self.relative_embedding(seq_len)
        for layer in self.layers:
            x = layer(x, attn_bias, *positions)
        if self.final_layer_norm is not None:
            x = self.final_layer_norm(x)
        return x
