"""Criterion ``token_classification``: cross-entropy over the labelled pieces (each word's first
piece), summed; pieces whose label is one of the label dictionary's specials are skipped: ``<pad>`` on
a word's other pieces and at ``<s>`` (the task prepends it), ``</s>`` at the end."""
import math

import torch
import torch.nn.functional as F
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion

IGNORE = -100


def token_label_terms(logits: torch.Tensor, labels: torch.Tensor, first_label: int) -> dict:
    """Summed CE in fp32 and the count of correct predictions over the pieces whose label id is at
    least ``first_label`` (class = id - first_label); no host sync."""
    labelled = labels.ge(first_label)
    classes = (labels - first_label).masked_fill(~labelled, IGNORE)
    loss = F.cross_entropy(logits.float().flatten(0, 1), classes.flatten(), ignore_index=IGNORE, reduction="sum")
    correct = (logits.argmax(-1).eq(classes) & labelled).sum()
    return {"loss": loss, "correct": correct}


@register_criterion("token_classification")
class TokenClassificationCriterion(FairseqCriterion):
    def forward(self, model, sample, reduce=True):
        head = self.task.cfg.token_head_name
        logits, _ = model(sample["net_input"]["src_tokens"], token_head_name=head)
        terms = token_label_terms(logits, sample["target"], self.task.label_dictionary.nspecial)
        labelled = sample["nlabels"]
        logging_output = {"loss": terms["loss"].data, "ntokens": sample["ntokens"], "nsentences": sample["nsentences"],
                          "sample_size": labelled, "correct": terms["correct"].data}
        return terms["loss"], labelled, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        total = sum(log.get("sample_size", 0) for log in logging_outputs)
        loss = sum(log.get("loss", 0) for log in logging_outputs)
        metrics.log_scalar("loss", loss / max(total, 1) / math.log(2), total, round=3)
        correct = sum(log.get("correct", 0) for log in logging_outputs)
        metrics.log_scalar("accuracy", 100.0 * correct / max(total, 1), total, round=2)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
