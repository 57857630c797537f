"""Task ``metro_pretraining``: blocks of binarized text, ``<s>`` prepended, positions selected for
the generator. Data is ``fairseq-preprocess --only-source`` output; several shards ``a:b:c`` are
read round-robin, one per epoch, as fairseq's ``masked_lm`` does.

Multilingual data (XLM-R's recipe) is ``DATA/<lang>/<split>.{bin,idx}`` with one shared ``DATA/dict.txt``:
training draws languages with p_i proportional to n_i ** alpha, redrawn every epoch; ``valid`` is all
languages together and ``valid_<lang>`` one language (list them in ``--valid-subset``). Shards
``DATA1:DATA2`` each hold that layout; the first fixes the languages, the dictionary and validation."""
import logging
import os
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
from fairseq.data import (
    ConcatDataset,
    Dictionary,
    PrependTokenDataset,
    SortDataset,
    TokenBlockDataset,
    TruncateDataset,
    data_utils,
)
from fairseq.data.shorten_dataset import maybe_shorten_dataset
from fairseq import utils
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from fairseq.tasks.masked_lm import SAMPLE_BREAK_MODE_CHOICES, SHORTEN_METHOD_CHOICES
from omegaconf import II

from ..data.binarized_split import check_binarized_splits
from ..data.dictionary_file import load_dictionary
from ..data.language_layout import (
    check_language_dictionary, check_shards, find_languages, is_multilingual, split_language,
)
from ..data.language_probabilities import sampling_probabilities
from ..data.language_sampling import LanguageSampledDataset
from ..data.token_masking_dataset import TokenMaskingDataset, validate_masking_probabilities

logger = logging.getLogger(__name__)

SCL_VIEWS = ("none", "crop", "dropout")


@dataclass
class MetroPretrainingConfig(FairseqDataclass):
    data: str = field(
        default="",
        metadata={"help": "fairseq-preprocess --only-source output; shards separated by ':' are used one per epoch"},
    )
    sample_break_mode: SAMPLE_BREAK_MODE_CHOICES = field(
        default="complete",
        metadata={"help": "none: fill blocks regardless of sentences; complete: whole sentences; "
                  "complete_doc: whole sentences, never across a document boundary (blank line)"},
    )
    tokens_per_sample: int = field(default=512, metadata={"help": "block length including the leading <s>"})
    mask_prob: float = field(default=0.15, metadata={"help": "fraction of non-special tokens the generator predicts"})
    leave_unmasked_prob: float = field(
        default=0.0, metadata={"help": "fraction of selected tokens left unchanged in the generator input"}
    )
    random_token_prob: float = field(
        default=0.0, metadata={"help": "fraction of selected tokens replaced by a random token in the generator input"}
    )
    clm: bool = field(
        default=False,
        metadata={"help": "also train the main model with COCO-LM's corrective LM (weight: --clm-weight)"},
    )
    scl_view: ChoiceEnum(SCL_VIEWS) = field(
        default="none",
        metadata={"help": "sequence contrastive learning (weight: --scl-weight): none; crop = the corrupted "
                  "sequence vs a crop of the original (COCO-LM); dropout = the original encoded twice (SimCSE)"},
    )
    crop_ratio: float = field(default=0.9, metadata={"help": "fraction of the sequence a crop view covers"})
    shorten_method: SHORTEN_METHOD_CHOICES = field(
        default="none", metadata={"help": "shorten over-long sequences: none, truncate or random_crop"}
    )
    shorten_data_split_list: str = field(default="", metadata={"help": "splits to shorten (comma-separated)"})
    languages: str = field(
        default="",
        metadata={"help": "multilingual data: comma-separated sub-directories of DATA to train on; default: every "
                  "sub-directory holding a binarized split (others are ignored and logged)"},
    )
    multilang_sampling_alpha: float = field(
        default=1.0,
        metadata={"help": "multilingual data: sample language i with p_i proportional to n_i^alpha (n_i its blocks), "
                  "redrawn every epoch; 1.0 = natural shares, XLM-R uses 0.3"},
    )
    seed: int = II("common.seed")
    train_subset: str = II("dataset.train_subset")


@register_task("metro_pretraining", dataclass=MetroPretrainingConfig)
class MetroPretrainingTask(FairseqTask):
    cfg: MetroPretrainingConfig
    # read by MetroModel.build_model: pretraining builds the generator and the RTD head, plus the
    # heads of the objectives switched on here (--clm, --scl-view)
    trains_generator = True

    def __init__(self, cfg: MetroPretrainingConfig, dictionary: Dictionary, languages: Optional[List[str]] = None):
        super().__init__(cfg)
        self.dictionary = dictionary
        self.mask_idx = dictionary.add_symbol("<mask>")
        self.languages = languages  # None: monolingual data

    @classmethod
    def setup_task(cls, cfg: MetroPretrainingConfig, **kwargs):
        paths = [p for p in cfg.data.split(":") if p]
        if not paths:
            raise ValueError("no data directory given: pass the fairseq-preprocess output directory as DATA")
        for path in paths:
            if not os.path.isdir(path):
                raise FileNotFoundError(
                    f"data directory {path} does not exist: binarize your corpus with "
                    "scripts/prepare_corpus.py or fairseq-preprocess --only-source --destdir " + path
                )
        dict_path = os.path.join(paths[0], "dict.txt")
        if not os.path.isfile(dict_path):
            raise FileNotFoundError(
                f"{dict_path} is missing: DATA must be a fairseq-preprocess --only-source output directory"
            )
        validate_masking_probabilities(cfg.mask_prob, cfg.leave_unmasked_prob, cfg.random_token_prob)
        if not 0.0 < cfg.crop_ratio <= 1.0:
            raise ValueError(f"--crop-ratio {cfg.crop_ratio} must lie in (0, 1] (COCO-LM uses 0.9)")
        languages = None
        if is_multilingual(paths[0], cfg.languages):
            languages, ignored = find_languages(paths[0], cfg.languages)
            for lang in languages:
                check_language_dictionary(paths[0], lang)
            check_shards(paths, languages)
            logger.info(f"multilingual data: {len(languages)} languages {','.join(languages)}"
                        + (f"; ignored directories: {','.join(ignored)}" if ignored else ""))
        sampling_probabilities([1], cfg.multilang_sampling_alpha)  # validates alpha before any loading
        dictionary = load_dictionary(dict_path)
        # every shard's training split now, not when its epoch comes (checkpoints of earlier epochs exist by then)
        for path in paths:
            for lang in languages or [""]:
                check_binarized_splits(os.path.join(path, lang, cfg.train_subset))
        logger.info(f"dictionary: {len(dictionary)} types (before <mask>)")
        return cls(cfg, dictionary, languages)

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, **kwargs):
        paths = [p for p in self.cfg.data.split(":") if p]
        data_path = paths[(epoch - 1) % len(paths)]
        if self.languages is None:
            dataset = self._load_blocks(data_path, split, combine)
        else:
            dataset = self._load_languages(data_path, split, epoch, combine)
        masked = TokenMaskingDataset(
            dataset, self.source_dictionary, self.mask_idx, seed=self.cfg.seed, mask_prob=self.cfg.mask_prob,
            leave_unmasked_prob=self.cfg.leave_unmasked_prob, random_token_prob=self.cfg.random_token_prob,
            crop_ratio=self.cfg.crop_ratio if self.cfg.scl_view == "crop" else None,
        )
        if isinstance(dataset, LanguageSampledDataset):
            self.datasets[split] = masked  # orders itself per epoch (sizes change with every draw)
            return
        with data_utils.numpy_seed(self.cfg.seed + epoch):
            shuffle = np.random.permutation(len(masked))
        self.datasets[split] = SortDataset(masked, sort_order=[shuffle, dataset.sizes])

    def _load_languages(self, data_path: str, split: str, epoch: int, combine: bool):
        """``valid_de``: one language; ``train``: all, language-sampled; other splits: all, concatenated."""
        base, lang = split_language(split, self.languages)
        if lang is not None:
            return self._load_blocks(os.path.join(data_path, lang), base, combine)
        per_language = [self._load_blocks(os.path.join(data_path, lang), split, combine) for lang in self.languages]
        if split != self.cfg.train_subset:
            return ConcatDataset(per_language)
        counts = np.array([len(d) for d in per_language])
        probabilities = sampling_probabilities(counts, self.cfg.multilang_sampling_alpha)
        dataset = LanguageSampledDataset(per_language, probabilities, seed=self.cfg.seed, epoch=epoch)
        logger.info(f"{split}: language sampling with alpha {self.cfg.multilang_sampling_alpha}, "
                    f"{int(counts.sum())} blocks per epoch")
        logger.info("| language | blocks | natural share | sampled share | sampled blocks per epoch |")
        for lang, n, p, m in zip(self.languages, counts, counts / counts.sum(), dataset.sampled_counts):
            logger.info(f"| {lang} | {n} | {p:.4f} | {m / dataset.sampled_counts.sum():.4f} | {m} |")
        return dataset

    def _load_blocks(self, data_path: str, split: str, combine: bool):
        """One binarized split as blocks of --tokens-per-sample tokens, ``<s>`` first."""
        split_path = os.path.join(data_path, split)
        check_binarized_splits(split_path)
        dataset = data_utils.load_indexed_dataset(split_path, self.source_dictionary, combine=combine)
        if dataset is None:
            raise FileNotFoundError(
                f"split {split!r} not found in {data_path} (expected {split_path}.bin/.idx from fairseq-preprocess)"
                + ("" if self.languages is None else
                   ": binarize that split for every language or leave the language out of --languages")
            )
        dataset = maybe_shorten_dataset(
            dataset, split, self.cfg.shorten_data_split_list, self.cfg.shorten_method,
            self.cfg.tokens_per_sample - 1, self.cfg.seed,
        )
        # one slot of each block is left for the <s> prepended below
        block_size = self.cfg.tokens_per_sample - 1
        if self.cfg.sample_break_mode in ("complete", "complete_doc"):
            # a sentence longer than a block would form an over-long block of its own
            too_long = int((dataset.sizes > block_size).sum())
            if too_long:
                logger.warning(f"{split_path}: truncating {too_long} sentences longer than {block_size} tokens")
                dataset = TruncateDataset(dataset, block_size)
        dataset = TokenBlockDataset(
            dataset, dataset.sizes, block_size,
            pad=self.source_dictionary.pad(), eos=self.source_dictionary.eos(),
            break_mode=self.cfg.sample_break_mode,
        )
        dataset = PrependTokenDataset(dataset, self.source_dictionary.bos())
        logger.info(f"loaded {len(dataset)} blocks from {split_path}")
        return dataset

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False, **kwargs):
        # one RNG stream per batch, keyed by (seed, update, first example): dropout and the
        # generator's samples then do not depend on how batches are split across data-parallel
        # workers or accumulation steps, so N workers reproduce --update-freq N on one
        if hasattr(criterion, "set_num_updates"):
            criterion.set_num_updates(update_num)
        if not getattr(self, "_lr_groups_checked", False):
            self._lr_groups_checked = True
            check_lr_groups(model, optimizer)
        seed = (self.cfg.seed * 1_000_003 + update_num * 10_007 + sample.get("rng_key", 0)) % 2**31
        with utils.set_torch_seed(seed):
            return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad, **kwargs)

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary


def check_lr_groups(model, optimizer):
    """Per-parameter lr scales (--generator-lr-scale) are tags only fairseq's composite optimizer reads:
    any other optimizer would train at one lr without a word."""
    if any(hasattr(p, "optim_overrides") for p in model.parameters()) and not optimizer.supports_groups:
        raise ValueError(
            f"--generator-lr-scale needs fairseq's composite optimizer (optimizer._name=composite with "
            f"dynamic_groups=true, as in config/pretraining/variants/metro_cpu_small_genlr.yaml); with "
            f"{type(optimizer).__name__} it would have no effect"
        )
