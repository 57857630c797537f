from .relative_position import RelativePositionBias, relative_position_bucket
from .attention import SelfAttention
from .transformer_layer import TransformerEncoderLayer
from .encoder import TransformerEncoder
from .embedding_sharing import TokenEmbeddingSharing
from .heads import CorrectiveLMHead, GeneratorHead, ReplacedTokenDetectionHead, SequenceEmbeddingHead, SpanHead
from .sampling import sample_replacements
from .temperature_schedule import SamplingTemperatureSchedule

__all__ = [
    "CorrectiveLMHead",
    "SequenceEmbeddingHead",
    "SpanHead",
    "GeneratorHead",
    "RelativePositionBias",
    "ReplacedTokenDetectionHead",
    "SamplingTemperatureSchedule",
    "SelfAttention",
    "TokenEmbeddingSharing",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "relative_position_bucket",
    "sample_replacements",
]
