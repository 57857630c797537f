from .token_masking_dataset import TokenMaskingDataset, validate_masking_probabilities

__all__ = ["TokenMaskingDataset", "validate_masking_probabilities"]
