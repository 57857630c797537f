"""Task ``squad``: extractive question answering (SQuAD 1.1 and 2.0) on the windows
``scripts/prepare_squad.py`` writes.

Training reads one window per example with its start/end token targets (``<s>`` = no answer in
the window). Validation keeps every window's start/end logits, decodes each question over all of
its windows (the best legal span; for 2.0 against the null score of ``<s>``) and reports the
official EM and F1 over the whole split as fairseq metrics, so ``--best-checkpoint-metric f1``
selects on them; the predictions are written in the official format.
"""
import json
import logging
import os
from dataclasses import dataclass, field

import torch
from fairseq import metrics
from fairseq.data import (
    Dictionary,
    IdDataset,
    NestedDictionaryDataset,
    NumelDataset,
    NumSamplesDataset,
    RawLabelDataset,
    data_utils,
)
from fairseq.dataclass import FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from omegaconf import II

from ..data.binarized_split import check_binarized_splits
from ..data.task_batches import padded_input, shuffled_if_train
from ..data.dictionary_file import load_dictionary
from ..errors import MetroError
from ..evaluation.squad_metrics import decode_question, evaluate_predictions

logger = logging.getLogger(__name__)


class SquadValidationError(MetroError):
    """A run whose validation cannot score EM/F1 as it is set up."""


@dataclass
class SquadConfig(FairseqDataclass):
    data: str = field(default="", metadata={"help": "scripts/prepare_squad.py output (windows, questions, dict.txt)"})
    max_answer_length: int = field(default=30, metadata={"help": "longest answer span in tokens when decoding"})
    version_2_with_negative: bool = field(
        default=False, metadata={"help": "SQuAD 2.0: predict no answer when the null score wins by the threshold"}
    )
    null_score_threshold: float = field(
        default=0.0, metadata={"help": "2.0: no answer if null score - best span score exceeds this"}
    )
    span_head_name: str = field(default="squad", metadata={"help": "name of the span head on the model"})
    predictions_dir: str = II("checkpoint.save_dir")  # predictions.json (and null_odds.json) go to --save-dir
    max_positions: int = II("model.max_positions")
    seed: int = II("common.seed")


@register_task("squad", dataclass=SquadConfig)
class SquadTask(FairseqTask):
    def __init__(self, cfg: SquadConfig, dictionary: Dictionary):
        super().__init__(cfg)
        self.dictionary = dictionary
        self.windows = {}  # split -> list of window records (qid, context_start, offsets)
        self.questions = {}  # split -> {qid: {context, answers, is_impossible}}
        self.valid_split = None
        self.valid_logits = {}  # window id -> (start, end) logits of position 0 and the context
        self._scores = None

    @classmethod
    def setup_task(cls, cfg: SquadConfig, **kwargs):
        path = os.path.join(cfg.data, "dict.txt")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} is missing: --data must be a scripts/prepare_squad.py output folder")
        dictionary = load_dictionary(path)
        dictionary.add_symbol("<mask>")  # as sentence_prediction: the pretraining vocabulary ends with it
        return cls(cfg, dictionary)

    def load_dataset(self, split, combine=False, **kwargs):
        prefix = os.path.join(self.cfg.data, split)
        if not os.path.isfile(prefix + ".windows.jsonl"):
            raise FileNotFoundError(f"{prefix}.windows.jsonl is missing: run scripts/prepare_squad.py for this split")
        check_binarized_splits(prefix + ".input")
        tokens = data_utils.load_indexed_dataset(prefix + ".input", self.dictionary, combine=combine)
        with open(prefix + ".windows.jsonl", encoding="utf-8") as f:
            windows = [json.loads(line) for line in f]
        if tokens is None or len(tokens) != len(windows):
            raise ValueError(f"{prefix}: the windows and the token file do not match: rerun scripts/prepare_squad.py")
        if split != "train":
            if self.valid_split not in (None, split):
                raise ValueError("task squad scores one validation split: pass --valid-subset with one name")
            self.valid_split = split
            with open(prefix + ".questions.json", encoding="utf-8") as f:
                self.questions[split] = json.load(f)
        self.windows[split] = windows
        dataset = NestedDictionaryDataset(
            {
                "id": IdDataset(),
                "net_input": padded_input(tokens, self.dictionary.pad()),
                "start_positions": RawLabelDataset([w["start"] for w in windows]),
                "end_positions": RawLabelDataset([w["end"] for w in windows]),
                "nsentences": NumSamplesDataset(),
                "ntokens": NumelDataset(tokens, reduce=True),
            },
            sizes=[tokens.sizes],
        )
        dataset = shuffled_if_train(dataset, split, self.cfg.seed)
        self.datasets[split] = dataset
        logger.info(f"{split}: {len(windows)} windows of {len({w['qid'] for w in windows})} questions")
        return dataset

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        model.register_span_head(self.cfg.span_head_name)
        return model

    def begin_valid_epoch(self, epoch, model):
        if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            raise SquadValidationError("--task squad: EM/F1 need every window of a question on one worker: train with "
                                       "--disable-validation on several workers and evaluate the checkpoint on one")
        self.valid_logits, self._scores = {}, None

    def valid_step(self, sample, model, criterion):
        loss, sample_size, logging_output = super().valid_step(sample, model, criterion)
        logits = logging_output.pop("span_logits")  # the criterion's (B, T, 2), moved off the device here
        logging_output["validated_windows"] = logits.size(0)
        for window_id, row in zip(sample["id"].tolist(), logits.float().cpu()):
            window = self.windows[self.valid_split][window_id]
            context = row[window["context_start"]:window["context_start"] + len(window["offsets"])]
            self.valid_logits[window_id] = torch.cat([row[:1], context])  # <s> (the null answer), then the context
        return loss, sample_size, logging_output

    def scores(self, windows_in_aggregate):
        """Official EM/F1 over the validated windows, once per validation. fairseq also evaluates
        derived metrics on each step's own aggregate: those see fewer windows than are stored and
        get an empty placeholder."""
        if windows_in_aggregate != len(self.valid_logits):
            return {}
        if self._scores is None or self._scores[0] != windows_in_aggregate:
            self._scores = (windows_in_aggregate, self._score(self.valid_logits))
        return self._scores[1]

    def _score(self, logits):
        windows, questions = self.windows[self.valid_split], self.questions[self.valid_split]
        by_question = {}
        for window_id, rows in sorted(logits.items()):
            by_question.setdefault(windows[window_id]["qid"], []).append((window_id, rows))
        predictions, null_odds = {}, {}
        for qid, parts in by_question.items():
            legal = [torch.arange(len(rows)) > 0 for _, rows in parts]  # context tokens, not <s>
            best = decode_question([r[:, 0] for _, r in parts], [r[:, 1] for _, r in parts], legal,
                                   self.cfg.max_answer_length)
            if best.window is None:  # no context token in any window
                predictions[qid], null_odds[qid] = "", 1e9
                continue
            offsets = windows[parts[best.window][0]]["offsets"]
            text = questions[qid]["context"][offsets[best.start - 1][0]:offsets[best.end - 1][1]]
            null_odds[qid] = best.null_score - best.score
            if self.cfg.version_2_with_negative and null_odds[qid] > self.cfg.null_score_threshold:
                text = ""
            predictions[qid] = text
        self._write(predictions, null_odds)
        return evaluate_predictions(questions, predictions, null_odds if self.cfg.version_2_with_negative else None)

    def _write(self, predictions, null_odds):
        if not self.cfg.predictions_dir:
            return
        os.makedirs(self.cfg.predictions_dir, exist_ok=True)
        with open(os.path.join(self.cfg.predictions_dir, "predictions.json"), "w", encoding="utf-8") as f:
            json.dump(predictions, f, ensure_ascii=False, indent=1)
        if self.cfg.version_2_with_negative:
            with open(os.path.join(self.cfg.predictions_dir, "null_odds.json"), "w", encoding="utf-8") as f:
                json.dump(null_odds, f, indent=1)

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)
        windows = sum(log.get("validated_windows", 0) for log in logging_outputs)
        if windows:
            metrics.log_scalar_sum("_validated_windows", windows)
            for key in ("exact", "f1") + (("best_f1",) if self.cfg.version_2_with_negative else ()):
                metrics.log_derived(key, lambda meters, key=key: round(
                    self.scores(int(meters["_validated_windows"].sum)).get(key, 0.0), 2))

    def max_positions(self):
        return self.cfg.max_positions

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary
