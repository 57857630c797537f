"""Output heads of the pretraining model, and the span head of extractive QA fine-tuning."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.modules import LayerNorm  # apex's fused kernel on GPU when apex is installed

CLASSIFIER_POOLING = ("first", "mean")


class GeneratorHead(nn.Module):
    """Generator MLM head: dense -> GELU -> LayerNorm -> projection tied to the embeddings + bias."""

    def __init__(self, hidden_dim: int, embed_dim: int, vocab_size: int, layer_norm_eps: float = 1e-5):
        super().__init__()
        self.dense = nn.Linear(hidden_dim, embed_dim)
        self.layer_norm = LayerNorm(embed_dim, eps=layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, x: torch.Tensor, embedding_weight: torch.Tensor) -> torch.Tensor:
        return F.linear(self.layer_norm(F.gelu(self.dense(x))), embedding_weight, self.bias)


class ReplacedTokenDetectionHead(nn.Module):
    """RTD head: dense -> GELU -> LayerNorm -> Linear(d, 1); logit > 0 means "replaced"."""

    def __init__(self, embed_dim: int):
        super().__init__()
        self.dense = nn.Linear(embed_dim, embed_dim)
        self.layer_norm = LayerNorm(embed_dim)
        self.out_proj = nn.Linear(embed_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.layer_norm(F.gelu(self.dense(x)))).squeeze(-1)


class CorrectiveLMHead(nn.Module):
    """COCO-LM's CLM head on the main model: projection tied to the main embeddings + bias, no transform."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, x: torch.Tensor, embedding_weight: torch.Tensor) -> torch.Tensor:
        return F.linear(x, embedding_weight, self.bias)


class SequenceEmbeddingHead(nn.Module):
    """SCL head on the ``<s>`` state: dense -> GELU -> LayerNorm, then L2-normalised."""

    def __init__(self, embed_dim: int):
        super().__init__()
        self.dense = nn.Linear(embed_dim, embed_dim)
        self.layer_norm = LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.layer_norm(F.gelu(self.dense(x))).float(), dim=-1)


class SpanHead(nn.Module):
    """Extractive QA head (BERT's SQuAD head): Linear(d, 2) gives start and end logits per token."""

    def __init__(self, embed_dim: int):
        super().__init__()
        self.out_proj = nn.Linear(embed_dim, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_proj(x)


class TokenClassificationHead(nn.Module):
    """BERT's token classification head: dropout, then Linear(d, labels) on every token."""

    def __init__(self, embed_dim: int, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(embed_dim, num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.dropout(x))


def classifier_input(states: torch.Tensor, padding_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """What a sentence classification head (fairseq's, which reads position 0) gets: the states as
    they are (``first``: the ``<s>`` state), or ``(B, 1, C)`` means over the non-padding states."""
    if pooling == "first":
        return states
    keep = (~padding_mask).unsqueeze(-1).to(states.dtype)
    return ((states * keep).sum(1) / keep.sum(1)).unsqueeze(1)
