"""Task ``token_classification``: one label per word (part-of-speech tags, named entities) on the data
``prepare_token_classification.py`` writes. A word's label sits on its first piece; the other pieces,
``<s>`` and ``</s>`` carry the label dictionary's specials, which the criterion skips."""
import logging
import os
from dataclasses import dataclass, field

import numpy as np
from fairseq.data import (
    BaseWrapperDataset,
    IdDataset,
    NestedDictionaryDataset,
    NumelDataset,
    NumSamplesDataset,
    PrependTokenDataset,
    RightPadDataset,
    data_utils,
)
from fairseq.dataclass import FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from omegaconf import II

from ..data.binarized_split import check_binarized_splits
from ..data.task_batches import padded_input, shuffled_if_train
from ..data.dictionary_file import load_dictionary
from ..errors import MetroError

logger = logging.getLogger(__name__)


class TokenClassificationDataError(MetroError, FileNotFoundError):
    """A data folder that is not a prepare_token_classification.py output."""


@dataclass
class TokenClassificationConfig(FairseqDataclass):
    data: str = field(default="", metadata={"help": "prepare_token_classification.py output (input0/, labels/)"})
    init_token: int = field(default=0, metadata={"help": "token prepended to every sentence (0: <s>)"})
    token_head_name: str = field(default="token_head", metadata={"help": "name of the token head on the model"})
    max_positions: int = II("model.max_positions")
    seed: int = II("common.seed")


class LabelledTokenCount(BaseWrapperDataset):
    """How many pieces of a batch carry a label (the loss's denominator), counted while batching, so
    the training step needs no count from the device."""

    def __init__(self, labels, first_label: int):
        super().__init__(labels)
        self.first_label = first_label

    def __getitem__(self, index):
        return int((self.dataset[index] >= self.first_label).sum())

    def collater(self, samples):
        return sum(samples)


@register_task("token_classification", dataclass=TokenClassificationConfig)
class TokenClassificationTask(FairseqTask):
    def __init__(self, cfg: TokenClassificationConfig, dictionary, label_dictionary):
        super().__init__(cfg)
        self.dictionary, self.label_dictionary = dictionary, label_dictionary

    @classmethod
    def setup_task(cls, cfg: TokenClassificationConfig, **kwargs):
        paths = [os.path.join(cfg.data, name, "dict.txt") for name in ("input0", "labels")]
        for path in paths:
            if not os.path.isfile(path):
                raise TokenClassificationDataError(
                    f"{path} is missing: --data must be a prepare_token_classification.py output folder")
        dictionary = load_dictionary(paths[0])
        dictionary.add_symbol("<mask>")  # as sentence_prediction: the pretraining vocabulary ends with it
        return cls(cfg, dictionary, load_dictionary(paths[1]))

    @property
    def num_labels(self) -> int:
        return len(self.label_dictionary) - self.label_dictionary.nspecial

    def load_dataset(self, split, combine=False, **kwargs):
        loaded = {}
        for name, dictionary in (("input0", self.dictionary), ("labels", self.label_dictionary)):
            prefix = os.path.join(self.cfg.data, name, split)
            check_binarized_splits(prefix)
            loaded[name] = data_utils.load_indexed_dataset(prefix, dictionary, combine=combine)
            if loaded[name] is None:
                raise TokenClassificationDataError(f"{prefix}.bin is missing: run prepare_token_classification.py")
        tokens = PrependTokenDataset(loaded["input0"], self.cfg.init_token)
        labels = PrependTokenDataset(loaded["labels"], self.label_dictionary.pad())
        if not np.array_equal(tokens.sizes, labels.sizes):
            raise TokenClassificationDataError(
                f"{self.cfg.data}: {split}'s pieces and labels differ in length: rerun prepare_token_classification.py")
        longest = int(tokens.sizes.max())
        if longest > self.cfg.max_positions:
            raise TokenClassificationDataError(
                f"{self.cfg.data}: a {split} sentence has {longest} pieces, more than --max-positions "
                f"{self.cfg.max_positions}: split long sentences before preparing the data")
        dataset = NestedDictionaryDataset(
            {
                "id": IdDataset(),
                "net_input": padded_input(tokens, self.dictionary.pad()),
                "target": RightPadDataset(labels, pad_idx=self.label_dictionary.pad()),
                "nlabels": LabelledTokenCount(labels, self.label_dictionary.nspecial),
                "nsentences": NumSamplesDataset(),
                "ntokens": NumelDataset(tokens, reduce=True),
            },
            sizes=[tokens.sizes],
        )
        dataset = shuffled_if_train(dataset, split, self.cfg.seed)
        self.datasets[split] = dataset
        logger.info(f"{split}: {len(dataset)} sentences, {self.num_labels} labels")
        return dataset

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        if not hasattr(model, "register_token_head"):
            raise TokenClassificationDataError(
                f"--arch {cfg._name}: --task token_classification needs a metro model (it has token heads)")
        model.register_token_head(self.cfg.token_head_name, self.num_labels)
        return model

    def max_positions(self):
        return self.cfg.max_positions

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.label_dictionary
