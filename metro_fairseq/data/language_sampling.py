"""Per-epoch language resampling (XLM / XLM-R), deterministic per (seed, epoch)."""
from typing import List, Sequence

import numpy as np
from fairseq.data import FairseqDataset


class LanguageSampledDataset(FairseqDataset):
    """Concatenation of per-language datasets, resampled every epoch.

    An epoch keeps the natural total N = sum n_i and draws round(p_i * N) items of language i:
    without replacement when that is at most n_i (fairseq's ResamplingDataset does the same),
    with replacement otherwise. The draw depends on (seed, epoch, language) only, so a resumed run
    sees the same epoch. Unlike ResamplingDataset + SortDataset, the size order is recomputed after
    each draw (fairseq rebuilds batches per epoch because can_reuse_epoch_itr_across_epochs is False).
    """

    def __init__(self, datasets: List, probabilities: Sequence[float], seed: int, epoch: int = 1):
        super().__init__()
        self.datasets = datasets
        self.counts = np.array([len(d) for d in datasets], dtype=np.int64)
        self.probabilities = np.asarray(probabilities, dtype=np.float64)
        total = int(self.counts.sum())
        self.sampled_counts = np.maximum(1, np.round(self.probabilities * total)).astype(np.int64)
        self.seed = seed
        self.epoch = None
        self.set_epoch(epoch)

    def set_epoch(self, epoch, **unused):
        for d in self.datasets:
            if hasattr(d, "set_epoch"):
                d.set_epoch(epoch)
        if epoch == self.epoch:
            return
        self.epoch = epoch
        language, item = [], []
        for i, (n, m) in enumerate(zip(self.counts, self.sampled_counts)):
            rng = np.random.default_rng([self.seed, epoch, i])
            item.append(rng.choice(n, m, replace=bool(m > n)))
            language.append(np.full(m, i, dtype=np.int64))
        self.language = np.concatenate(language)
        self.item = np.concatenate(item)
        self._sizes = np.concatenate([self.datasets[i].sizes[idx] for i, idx in enumerate(item)])

    def __len__(self):
        return len(self.item)

    def __getitem__(self, index):
        return self.datasets[self.language[index]][self.item[index]]

    @property
    def sizes(self):
        return self._sizes

    def num_tokens(self, index):
        return self._sizes[index]

    def size(self, index):
        return self._sizes[index]

    def ordered_indices(self):
        # by size, ties in an order drawn per (seed, epoch): batches mix the languages
        shuffle = np.random.default_rng([self.seed, self.epoch, len(self.datasets)]).permutation(len(self))
        return np.lexsort([shuffle, self._sizes])

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        return False

    @property
    def supports_prefetch(self):
        return False
