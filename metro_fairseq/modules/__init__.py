from .t5_relative_bias import RelativePositionBias, relative_position_bucket
from .attention import SelfAttention
from .disentangled_attention import DisentangledSelfAttention
from .log_buckets import log_bucket_position
from .relative_embedding import RelativeEmbedding
from .transformer_layer import TransformerEncoderLayer
from .encoder import TransformerEncoder
from .embedding_sharing import TokenEmbeddingSharing
from .heads import (
    CLASSIFIER_POOLING,
    CorrectiveLMHead,
    GeneratorHead,
    ReplacedTokenDetectionHead,
    SequenceEmbeddingHead,
    SpanHead,
    TokenClassificationHead,
    classifier_input,
)
from .sampling import sample_replacements
from .temperature_schedule import SamplingTemperatureSchedule

__all__ = [
    "CorrectiveLMHead",
    "DisentangledSelfAttention",
    "SequenceEmbeddingHead",
    "SpanHead",
    "GeneratorHead",
    "RelativeEmbedding",
    "RelativePositionBias",
    "ReplacedTokenDetectionHead",
    "SamplingTemperatureSchedule",
    "SelfAttention",
    "TokenEmbeddingSharing",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "log_bucket_position",
    "relative_position_bucket",
    "sample_replacements",
]
