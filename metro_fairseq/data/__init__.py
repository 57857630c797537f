from .binarized_split import check_binarized, check_binarized_splits, read_tokens
from .dictionary_file import check_dictionary, load_dictionary
from .language_layout import check_language_dictionary, check_shards, find_languages, is_multilingual, split_language
from .language_probabilities import sampling_probabilities
from .language_sampling import LanguageSampledDataset
from .token_masking_dataset import TokenMaskingDataset, validate_masking_probabilities

__all__ = [
    "LanguageSampledDataset",
    "TokenMaskingDataset",
    "check_binarized",
    "check_binarized_splits",
    "check_dictionary",
    "check_language_dictionary",
    "check_shards",
    "find_languages",
    "is_multilingual",
    "load_dictionary",
    "read_tokens",
    "sampling_probabilities",
    "split_language",
    "validate_masking_probabilities",
]
