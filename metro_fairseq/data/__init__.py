from .language_layout import check_language_dictionary, check_shards, find_languages, is_multilingual, split_language
from .language_probabilities import sampling_probabilities
from .language_sampling import LanguageSampledDataset
from .token_masking_dataset import TokenMaskingDataset, validate_masking_probabilities

__all__ = [
    "LanguageSampledDataset",
    "TokenMaskingDataset",
    "check_language_dictionary",
    "check_shards",
    "find_languages",
    "is_multilingual",
    "sampling_probabilities",
    "split_language",
    "validate_masking_probabilities",
]
