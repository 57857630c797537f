"""transformers config of a metro_fairseq encoder (shipped with exports that no stock class matches)."""
from transformers import PretrainedConfig


class MetroEncoderConfig(PretrainedConfig):
    model_type = "metro_encoder"

    def __init__(
        self,
        vocab_size: int = 1000,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        max_position_embeddings: int = 512,
        normalize_before: bool = False,
        relative_position_buckets: int = 64,
        relative_position_max_distance: int = 128,
        attention_type: str = "standard",
        position_buckets: int = 256,
        max_relative_positions: int = 512,
        pos_att_type: str = "c2p+p2c",
        layer_norm_eps: float = 1e-5,
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        activation_dropout: float = 0.0,
        classifier_activation: str = "tanh",
        classifier_dropout: float = 0.1,
        pad_token_id: int = 1,
        bos_token_id: int = 0,
        eos_token_id: int = 2,
        **kwargs,
    ):
        super().__init__(pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id, **kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.normalize_before = normalize_before
        self.relative_position_buckets = relative_position_buckets
        self.relative_position_max_distance = relative_position_max_distance
        self.attention_type = attention_type  # "disentangled": DeBERTa-v3's attention, no absolute positions
        self.position_buckets = position_buckets
        self.max_relative_positions = max_relative_positions
        self.pos_att_type = pos_att_type
        self.layer_norm_eps = layer_norm_eps
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.activation_dropout = activation_dropout
        self.classifier_activation = classifier_activation
        self.classifier_dropout = classifier_dropout
