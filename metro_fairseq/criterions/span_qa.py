"""Criterion ``squad_span``: extractive QA loss, the mean of the start and end cross-entropies over
each window's tokens (padding excluded); an unanswerable window's target is ``<s>`` (position 0)."""
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass


@dataclass
class SpanQaConfig(FairseqDataclass):
    span_head_name: str = field(default="squad", metadata={"help": "name of the span head on the model"})


def span_loss_terms(logits: torch.Tensor, padding_mask: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> dict:
    """Summed (start CE + end CE) / 2 in fp32, and the counts of exactly predicted starts and ends."""
    logits = logits.float().masked_fill(padding_mask.unsqueeze(-1), float("-inf"))
    start_logits, end_logits = logits.unbind(-1)
    loss = (F.cross_entropy(start_logits, start, reduction="sum") + F.cross_entropy(end_logits, end, reduction="sum")) / 2
    return {
        "loss": loss,
        "start_correct": start_logits.argmax(-1).eq(start).sum(),
        "end_correct": end_logits.argmax(-1).eq(end).sum(),
    }


@register_criterion("squad_span", dataclass=SpanQaConfig)
class SpanQaCriterion(FairseqCriterion):
    def __init__(self, task, span_head_name="squad"):
        super().__init__(task)
        self.span_head_name = span_head_name

    def forward(self, model, sample, reduce=True):
        tokens = sample["net_input"]["src_tokens"]
        logits, _ = model(tokens, span_head_name=self.span_head_name)
        terms = span_loss_terms(logits, tokens.eq(self.padding_idx), sample["start_positions"], sample["end_positions"])
        windows = tokens.size(0)
        logging_output = {"loss": terms["loss"].data, "ntokens": sample["ntokens"], "nsentences": windows,
                          "sample_size": windows, "start_correct": terms["start_correct"].data,
                          "end_correct": terms["end_correct"].data}
        if not model.training:
            logging_output["span_logits"] = logits.detach()  # the task decodes whole questions from these
        return terms["loss"], windows, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        total = sum(log.get("sample_size", 0) for log in logging_outputs)
        metrics.log_scalar("loss", sum(log.get("loss", 0) for log in logging_outputs) / total / math.log(2), total, round=3)
        for key in ("start", "end"):
            correct = sum(log.get(f"{key}_correct", 0) for log in logging_outputs)
            metrics.log_scalar(f"{key}_acc", correct / total, total, round=3)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
