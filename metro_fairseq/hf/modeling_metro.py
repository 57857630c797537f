"""transformers port of the metro_fairseq main model, for layouts no stock class computes exactly
(T5 bias other than 32 buckets / distance 128, Pre-LN with a bias, Pre-LN disentangled attention).

Self-contained (torch + transformers only): it is copied into the export and loaded with
``trust_remote_code=True``. Module names mirror ``metro_fairseq/modules`` so the fairseq weights
load under the same keys (``embeddings.weight`` becomes ``embed_tokens.weight``). Positions count
from 0 at the first token, as in fairseq: pad on the right.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PreTrainedModel
from transformers.modeling_outputs import (
    BaseModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
)

from .configuration_metro import MetroEncoderConfig

CLASSIFIER_ACTIVATIONS = {"tanh": torch.tanh, "relu": F.relu, "gelu": F.gelu, "linear": lambda x: x}


def relative_position_bucket(relative_position, num_buckets: int, max_distance: int):
    """T5's bidirectional bucket of ``key_pos - query_pos`` (same as metro_fairseq.modules.t5_relative_bias)."""
    num_buckets //= 2
    n = -relative_position
    bucket = (n < 0).long() * num_buckets
    n = n.abs()
    max_exact = num_buckets // 2
    log_ratio = torch.log(n.clamp(min=1).float() / max_exact) / math.log(max_distance / max_exact)
    large = (max_exact + (log_ratio * (num_buckets - max_exact)).long()).clamp(max=num_buckets - 1)
    return bucket + torch.where(n < max_exact, n, large)


class RelativePositionBias(nn.Module):
    def __init__(self, num_heads: int, num_buckets: int, max_distance: int):
        super().__init__()
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.embedding = nn.Embedding(num_buckets, num_heads)

    def forward(self, seq_len: int) -> torch.Tensor:
        pos = torch.arange(seq_len, device=self.embedding.weight.device)
        buckets = relative_position_bucket(pos[None, :] - pos[:, None], self.num_buckets, self.max_distance)
        return self.embedding(buckets).permute(2, 0, 1).unsqueeze(0)


def log_bucket_position(relative_position, buckets: int, max_position: int):
    """DeBERTa's signed log bucket of ``query_pos - key_pos`` (same as metro_fairseq.modules.log_buckets)."""
    mid = buckets // 2
    distance = relative_position.abs()
    ratio = torch.log(distance.clamp(min=1).float() / mid) / torch.log(torch.tensor((max_position - 1) / mid))
    log_bucket = (torch.ceil(ratio * (mid - 1)) + mid).long()
    return torch.where(distance <= mid, relative_position, torch.sign(relative_position) * log_bucket)


class RelativeEmbedding(nn.Module):
    """Disentangled attention's shared relative table and its LayerNorm; rows no pair reads are left out."""

    def __init__(self, config: MetroEncoderConfig):
        super().__init__()
        self.buckets, self.max_position = config.position_buckets, config.max_relative_positions
        self.span = self.buckets if self.buckets > 0 else self.max_position
        self.embedding = nn.Embedding(2 * self.span, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, seq_len: int):
        lo, hi = max(0, self.span - (seq_len - 1)), min(2 * self.span, self.span + seq_len)
        table = self.layer_norm(self.embedding.weight[lo:hi])
        pos = torch.arange(seq_len, device=table.device)
        relative = pos[:, None] - pos[None, :]
        if self.buckets > 0:
            relative = log_bucket_position(relative, self.buckets, self.max_position)
        return table, (relative + self.span).clamp(0, 2 * self.span - 1) - lo


class SelfAttention(nn.Module):
    """Standard attention, or with ``config.attention_type == "disentangled"`` DeBERTa-v3's: c2p and
    p2c terms from the shared relative table through the content query/key projections, all scaled
    by 1/sqrt((1 + terms) * head_dim)."""

    def __init__(self, config: MetroEncoderConfig):
        super().__init__()
        dim = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = dim // self.num_heads
        self.dropout = config.attention_probs_dropout_prob
        self.in_proj = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)
        terms = config.pos_att_type if getattr(config, "attention_type", "standard") == "disentangled" else ""
        self.c2p, self.p2c = "c2p" in terms, "p2c" in terms
        self.scale = (self.head_dim * (1 + self.c2p + self.p2c)) ** -0.5 if terms else None
        self.position_dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x, attn_bias, rel_table=None, rel_index=None):
        bsz, seq_len, dim = x.shape
        q, k, v = self.in_proj(x).view(bsz, seq_len, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        if rel_table is not None:
            rel = self.position_dropout(rel_table)
            pos_q, pos_k = (
                F.linear(rel, self.in_proj.weight[: 2 * dim], self.in_proj.bias[: 2 * dim])
                .view(-1, 2, self.num_heads, self.head_dim).permute(1, 2, 3, 0).unbind(0)
            )
            index = rel_index.expand(bsz, self.num_heads, seq_len, seq_len)
            scores = []
            if self.c2p:
                scores.append(torch.gather(q @ pos_k, -1, index))
            if self.p2c:
                scores.append(torch.gather(k @ pos_q, -1, index.transpose(-1, -2)).transpose(-1, -2))
            attn_bias = sum(scores) * self.scale + attn_bias
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_bias.to(q.dtype), dropout_p=self.dropout if self.training else 0.0, scale=self.scale
        )
        return self.out_proj(out.transpose(1, 2).reshape(bsz, seq_len, dim))


class EncoderLayer(nn.Module):
    def __init__(self, config: MetroEncoderConfig):
        super().__init__()
        dim, eps = config.hidden_size, config.layer_norm_eps
        self.self_attn = SelfAttention(config)
        self.self_attn_layer_norm = nn.LayerNorm(dim, eps=eps)
        self.fc1 = nn.Linear(dim, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, dim)
        self.final_layer_norm = nn.LayerNorm(dim, eps=eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.activation_dropout = nn.Dropout(config.activation_dropout)
        self.normalize_before = config.normalize_before

    def _ffn(self, x):
        return self.fc2(self.activation_dropout(F.gelu(self.fc1(x))))

    def forward(self, x, attn_bias, *positions):
        if self.normalize_before:
            x = x + self.dropout(self.self_attn(self.self_attn_layer_norm(x), attn_bias, *positions))
            return x + self.dropout(self._ffn(self.final_layer_norm(x)))
        x = self.self_attn_layer_norm(x + self.dropout(self.self_attn(x, attn_bias, *positions)))
        return self.final_layer_norm(x + self.dropout(self._ffn(x)))


class Encoder(nn.Module):
    def __init__(self, config: MetroEncoderConfig):
        super().__init__()
        dim = config.hidden_size
        disentangled = getattr(config, "attention_type", "standard") == "disentangled"
        self.max_positions = config.max_position_embeddings
        self.embed_positions = None if disentangled else nn.Embedding(config.max_position_embeddings, dim)
        self.embed_layer_norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.relative_embedding = RelativeEmbedding(config) if disentangled else None
        self.relative_bias = None
        if not disentangled and config.relative_position_buckets > 0:
            self.relative_bias = RelativePositionBias(
                config.num_attention_heads, config.relative_position_buckets, config.relative_position_max_distance
            )
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_hidden_layers))
        self.final_layer_norm = nn.LayerNorm(dim, eps=config.layer_norm_eps) if config.normalize_before else None

    def forward(self, token_embeddings, padding_mask):
        seq_len = token_embeddings.size(1)
        if seq_len > self.max_positions:
            raise ValueError(
                f"sequence of {seq_len} tokens exceeds max_position_embeddings={self.max_positions}: "
                "truncate the input (tokenizer(..., truncation=True))"
            )
        x = token_embeddings
        if self.embed_positions is not None:
            x = x + self.embed_positions(torch.arange(seq_len, device=x.device))
        x = self.dropout(self.embed_layer_norm(x))
        dtype = x.dtype
        bias = torch.zeros(padding_mask.shape, dtype=dtype, device=x.device)
        bias = bias.masked_fill(padding_mask, torch.finfo(dtype).min)[:, None, None, :]
        if self.relative_bias is not None:
            bias = self.relative_bias(seq_len).to(dtype) + bias
        positions = () if self.relative_embedding is None else self.relative_embedding(seq_len)
        for layer in self.layers:
            x = layer(x, bias, *positions)
        return x if self.final_layer_norm is None else self.final_layer_norm(x)


class MetroEncoderPreTrainedModel(PreTrainedModel):
    config_class = MetroEncoderConfig
    base_model_prefix = "metro"

    def _init_weights(self, module):
        # BERT initialisation, as metro_fairseq's init_bert_weights
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def _padding_mask(input_ids, attention_mask, pad_token_id):
    if attention_mask is not None:
        return attention_mask.eq(0)
    return input_ids.eq(pad_token_id)


class MetroEncoderModel(MetroEncoderPreTrainedModel):
    def __init__(self, config: MetroEncoderConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.encoder = Encoder(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        token_type_ids: Optional[torch.Tensor] = None,  # accepted for pipelines; the model has no segments
        return_dict: Optional[bool] = None,
        **kwargs,
    ):
        hidden = self.encoder(self.embed_tokens(input_ids), _padding_mask(input_ids, attention_mask, self.config.pad_token_id))
        return BaseModelOutput(last_hidden_state=hidden)


class ClassificationHead(nn.Module):
    """fairseq's RobertaClassificationHead: <s> state -> dropout -> dense -> activation -> dropout -> out_proj."""

    def __init__(self, config: MetroEncoderConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.activation = CLASSIFIER_ACTIVATIONS[config.classifier_activation]
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, hidden):
        x = self.dropout(hidden[:, 0])
        return self.out_proj(self.dropout(self.activation(self.dense(x))))


class MetroEncoderForSequenceClassification(MetroEncoderPreTrainedModel):
    def __init__(self, config: MetroEncoderConfig):
        super().__init__(config)
        self.metro = MetroEncoderModel(config)
        self.classifier = ClassificationHead(config)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, return_dict=None, **kwargs):
        logits = self.classifier(self.metro(input_ids, attention_mask).last_hidden_state)
        loss = None
        if labels is not None:
            if self.config.num_labels == 1:  # sentence_prediction's --regression-target
                loss = F.mse_loss(logits.squeeze(-1), labels.float())
            else:
                loss = F.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


class MetroEncoderForQuestionAnswering(MetroEncoderPreTrainedModel):
    def __init__(self, config: MetroEncoderConfig):
        super().__init__(config)
        self.metro = MetroEncoderModel(config)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, start_positions=None,
                end_positions=None, return_dict=None, **kwargs):
        logits = self.qa_outputs(self.metro(input_ids, attention_mask).last_hidden_state)
        start, end = logits.unbind(-1)
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = (F.cross_entropy(start, start_positions) + F.cross_entropy(end, end_positions)) / 2
        return QuestionAnsweringModelOutput(loss=loss, start_logits=start, end_logits=end)
