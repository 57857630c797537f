"""Pieces the fine-tuning tasks (``squad``, ``token_classification``) build their datasets from."""
import numpy as np
from fairseq.data import NumelDataset, RightPadDataset, SortDataset, data_utils


def padded_input(tokens, pad: int) -> dict:
    """``net_input`` of a batch: the right-padded tokens and their lengths."""
    return {"src_tokens": RightPadDataset(tokens, pad_idx=pad), "src_lengths": NumelDataset(tokens, reduce=False)}


def shuffled_if_train(dataset, split: str, seed: int):
    """The training split in a fixed seeded order (fairseq batches by this order); other splits as they are."""
    if split != "train":
        return dataset
    with data_utils.numpy_seed(seed):
        return SortDataset(dataset, sort_order=[np.random.permutation(len(dataset))])
