"""Select the positions the generator predicts, deterministically per (seed, epoch, index)."""
from typing import Dict, List, Optional

import numpy as np
import torch
from fairseq.data import FairseqDataset, data_utils

from .crop_view import contiguous_crop


def validate_masking_probabilities(mask_prob: float, leave_unmasked_prob: float, random_token_prob: float):
    if not 0.0 < mask_prob < 1.0:
        raise ValueError(f"--mask-prob {mask_prob} must lie strictly between 0 and 1 (0.15 is standard)")
    if leave_unmasked_prob < 0 or random_token_prob < 0 or leave_unmasked_prob + random_token_prob > 1.0:
        raise ValueError(
            "--leave-unmasked-prob and --random-token-prob must be >= 0 and sum to at most 1 "
            f"(got {leave_unmasked_prob} and {random_token_prob})"
        )


class TokenMaskingDataset(FairseqDataset):
    """Wraps a dataset of token sequences (``<s>`` already prepended) and yields, per item:

    - ``original``: the sequence unchanged,
    - ``corrupted``: the generator input, ``<mask>`` (or per policy the original or a random
      token) at the selected positions,
    - ``masked``: the selected positions as a boolean vector,
    - ``crop`` (with ``crop_ratio``): the second view for sequence contrastive learning.

    Special symbols (``<s>``, ``<pad>``, ``</s>``, ``<unk>``, ``<mask>``) are never selected.
    The collater turns ``masked`` into flat indices into the padded ``(B, T)`` batch, so the model
    gathers masked positions with ``index_select`` (no data-dependent shapes, no host sync).
    """

    def __init__(
        self,
        dataset,
        dictionary,
        mask_idx: int,
        seed: int,
        mask_prob: float = 0.15,
        leave_unmasked_prob: float = 0.0,
        random_token_prob: float = 0.0,
        crop_ratio: Optional[float] = None,
    ):
        super().__init__()
        validate_masking_probabilities(mask_prob, leave_unmasked_prob, random_token_prob)
        self.dataset = dataset
        self.dictionary = dictionary
        self.pad_idx = dictionary.pad()
        self.mask_idx = mask_idx
        self.seed = seed
        self.mask_prob = mask_prob
        self.leave_unmasked_prob = leave_unmasked_prob
        self.random_token_prob = random_token_prob
        self.crop_ratio = crop_ratio
        self.epoch = 0
        special = np.zeros(len(dictionary), dtype=bool)
        special[: dictionary.nspecial] = True
        special[[dictionary.bos(), dictionary.pad(), dictionary.eos(), dictionary.unk(), mask_idx]] = True
        self.special = special
        self.regular_tokens = np.flatnonzero(~special)

    def __len__(self):
        return len(self.dataset)

    @property
    def sizes(self):
        return self.dataset.sizes

    def num_tokens(self, index):
        return self.dataset.sizes[index]

    def num_tokens_vec(self, indices):
        return self.dataset.sizes[indices]

    def size(self, index):
        return self.dataset.sizes[index]

    def ordered_indices(self):
        # the wrapped dataset's order: a LanguageSampledDataset orders each epoch's draw itself
        inner = getattr(self.dataset, "ordered_indices", None)
        return inner() if inner is not None else np.arange(len(self), dtype=np.int64)

    @property
    def supports_prefetch(self):
        return getattr(self.dataset, "supports_prefetch", False)

    def prefetch(self, indices):
        self.dataset.prefetch(indices)

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        # False although batches keep their composition: fairseq reuses a cached iterator's DataLoader,
        # whose persistent workers hold their own copy of this dataset, and set_epoch never reaches
        # them, so with --num-workers > 0 every epoch would repeat epoch 1's masks (fairseq's own
        # MaskTokensDataset has this problem). A fresh iterator per epoch gets fresh workers.
        return False

    def set_epoch(self, epoch, **unused):
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        self.epoch = epoch

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        original = self.dataset[index]
        tokens = original.numpy()
        rng = np.random.default_rng([self.seed, self.epoch, index])
        candidates = np.flatnonzero(~self.special[tokens])
        # probabilistic rounding keeps the expected masked fraction exact for short sequences
        num_mask = min(int(self.mask_prob * len(candidates) + rng.random()), len(candidates))
        chosen = rng.choice(candidates, num_mask, replace=False)
        masked = np.zeros(len(tokens), dtype=bool)
        masked[chosen] = True

        corrupted = tokens.copy()
        policy = rng.random(num_mask)
        keep = policy < self.leave_unmasked_prob
        randomise = ~keep & (policy < self.leave_unmasked_prob + self.random_token_prob)
        corrupted[chosen[~keep & ~randomise]] = self.mask_idx
        corrupted[chosen[randomise]] = rng.choice(self.regular_tokens, int(randomise.sum()))
        item = {
            "id": index,
            "original": original,
            "corrupted": torch.from_numpy(corrupted),
            "masked": torch.from_numpy(masked),
        }
        if self.crop_ratio is not None:
            item["crop"] = torch.from_numpy(contiguous_crop(tokens, self.crop_ratio, rng))
        return item

    def collater(self, samples: List[Dict]) -> Dict:
        if len(samples) == 0:
            return {}

        def pad(key, pad_value):
            return data_utils.collate_tokens([s[key] for s in samples], pad_value)

        original = pad("original", self.pad_idx)
        masked = pad("masked", False)
        net_input = {
            "src_tokens": pad("corrupted", self.pad_idx),
            "original_tokens": original,
            "masked_index": masked.flatten().nonzero().squeeze(-1),
            "src_lengths": torch.tensor([len(s["original"]) for s in samples]),
        }
        if self.crop_ratio is not None:
            net_input["crop_tokens"] = pad("crop", self.pad_idx)
        return {
            "id": torch.tensor([s["id"] for s in samples]),
            # a plain int (not moved to the device): keys the batch's RNG stream, see the task
            "rng_key": int(samples[0]["id"]),
            "nsentences": len(samples),
            "ntokens": int(original.ne(self.pad_idx).sum()),
            "net_input": net_input,
        }
