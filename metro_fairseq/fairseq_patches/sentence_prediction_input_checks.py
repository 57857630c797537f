"""Patch: checks on fine-tuning data for fairseq's stock ``sentence_prediction`` task (GLUE fine-tuning).

Wraps: ``fairseq.tasks.sentence_prediction.SentencePredictionTask.load_dataset`` and ``load_dictionary``.
Tested by: tests/test_hostile_inputs.py.

fairseq binarizes a label its label dictionary lacks as ``<unk>`` and reads the target as
``index - nspecial``: such a label (or one beyond a replaced, shorter ``label/dict.txt``) becomes an
out-of-range class that crashes the loss at its first batch, possibly hours in or at the first
validation. ``install()`` makes the task check, before each split loads, that
its ``input0``/``input1``/``label`` shards are whole and every label is a class of ``label/dict.txt``
below ``--num-classes``; dictionaries are checked line by line (``data.dictionary_file``).
"""
import os

import numpy as np
from fairseq.tasks.sentence_prediction import SentencePredictionTask

from ..data.binarized_split import check_binarized_splits, read_tokens
from ..data.dictionary_file import check_dictionary

_fairseq_load_dataset = SentencePredictionTask.load_dataset
_fairseq_load_dictionary = SentencePredictionTask.load_dictionary.__func__  # adds <mask> after loading


def check_labels(label_prefix: str, label_dictionary, num_classes: int) -> None:
    tokens = read_tokens(label_prefix)
    labels = tokens[tokens != label_dictionary.eos()].astype(np.int64)
    classes = labels - label_dictionary.nspecial
    dict_path = os.path.join(os.path.dirname(label_prefix), "dict.txt")
    # fairseq's loader appends <mask> to the label dictionary too: an index there is no label of dict.txt
    mask = label_dictionary.index("<mask>") if "<mask>" in label_dictionary else -1
    missing = (classes < 0) | (labels >= len(label_dictionary)) | (labels == mask)
    if missing.any():
        raise ValueError(
            f"{label_prefix}.bin holds {int(missing.sum())} labels missing from {dict_path} (first at example "
            f"{int(np.argmax(missing))}): binarize the labels of every split with that dictionary "
            "(scripts/prepare_glue.py does) or restore the dict.txt they were binarized with"
        )
    if classes.size and int(classes.max()) >= num_classes:
        raise ValueError(
            f"{label_prefix}.bin uses class {int(classes.max())} ({label_dictionary[int(labels.max())]!r}) "
            f"but --num-classes is {num_classes}: raise --num-classes to the number of labels in {dict_path}"
        )


def load_dataset(self, split, combine=False, **kwargs):
    for key in ("input0", "input1", "label"):
        prefix = os.path.join(self.cfg.data, key, split)
        if check_binarized_splits(prefix) and key == "label" and not self.cfg.regression_target:
            check_labels(prefix, self.label_dictionary, self.cfg.num_classes)
    return _fairseq_load_dataset(self, split, combine=combine, **kwargs)


def load_dictionary(cls, filename):
    check_dictionary(filename)
    return _fairseq_load_dictionary(cls, filename)


def install() -> None:
    SentencePredictionTask.load_dataset = load_dataset
    SentencePredictionTask.load_dictionary = classmethod(load_dictionary)
