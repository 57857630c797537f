"""Criterion ``metro``: generator MLM + weighted replaced-token detection.

    loss = mean_{masked} CE_generator + rtd_weight * mean_{non-pad} BCE_rtd

fairseq divides the summed gradient of all workers (and accumulated micro-batches) by the sum of
their ``sample_size``. We set ``sample_size`` = number of masked tokens and return
``sum CE + rtd_weight * mean BCE * sample_size``: the MLM term is then exactly the global mean over
masked tokens, and the RTD term is the per-batch mean BCE averaged with weights proportional to each
batch's masked count (equal to the global mean when batches hold equal token counts, as with
fixed-size blocks). All losses are computed in fp32; nothing here reads a value back to the host.
"""
import math
from dataclasses import dataclass, field

import torch
from fairseq import metrics, utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass

from .mlm import mlm_loss_terms
from .rtd import rtd_loss_terms

SUMMED_KEYS = (
    "loss", "mlm_loss", "mlm_correct", "rtd_loss", "rtd_correct", "rtd_replaced",
    "rtd_predicted_replaced", "rtd_true_positive", "ntokens", "nsentences", "sample_size",
)


@dataclass
class MetroCriterionConfig(FairseqDataclass):
    rtd_weight: float = field(
        default=50.0, metadata={"help": "weight of the replaced-token-detection loss (ELECTRA/COCO-LM 50, DeBERTaV3 10)"}
    )


@register_criterion("metro", dataclass=MetroCriterionConfig)
class MetroCriterion(FairseqCriterion):
    def __init__(self, task, rtd_weight: float):
        super().__init__(task)
        self.rtd_weight = rtd_weight

    def forward(self, model, sample, reduce=True):
        out = model(**sample["net_input"])
        sample_size = max(sample["net_input"]["masked_index"].numel(), 1)
        ntokens = sample["ntokens"]
        terms = mlm_loss_terms(out["generator_logits"], out["generator_targets"])
        terms.update(rtd_loss_terms(out["rtd_logits"], out["rtd_labels"], out["padding_mask"]))
        loss = terms["mlm_loss"] + self.rtd_weight * terms["rtd_loss"] / ntokens * sample_size
        logging_output = {k: v.detach() for k, v in terms.items()}
        logging_output.update(
            loss=loss.detach(), ntokens=ntokens, nsentences=sample["nsentences"], sample_size=sample_size
        )
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        total = {k: sum(log.get(k, 0) for log in logging_outputs) for k in SUMMED_KEYS}
        sample_size, ntokens = total["sample_size"], total["ntokens"]
        # losses in base 2, as fairseq reports them
        metrics.log_scalar("loss", total["loss"] / sample_size / math.log(2), sample_size, round=3)
        metrics.log_scalar("mlm_loss", total["mlm_loss"] / sample_size / math.log(2), sample_size, round=3)
        metrics.log_scalar("rtd_loss", total["rtd_loss"] / ntokens / math.log(2), ntokens, round=4)
        metrics.log_derived("ppl", lambda m: utils.get_perplexity(m["mlm_loss"].avg))
        for key in SUMMED_KEYS[2:]:
            if key not in ("ntokens", "nsentences", "sample_size"):
                metrics.log_scalar_sum("_" + key, total[key])
        metrics.log_scalar_sum("_masked", sample_size)
        metrics.log_scalar_sum("_tokens", ntokens)

        def ratio(num, den):
            return lambda m: _safe_ratio(m["_" + num].sum, m["_" + den].sum)

        metrics.log_derived("mlm_acc", ratio("mlm_correct", "masked"))
        metrics.log_derived("rtd_acc", ratio("rtd_correct", "tokens"))
        metrics.log_derived("replace_rate", ratio("rtd_replaced", "tokens"))
        metrics.log_derived("rtd_precision", ratio("rtd_true_positive", "rtd_predicted_replaced"))
        metrics.log_derived("rtd_recall", ratio("rtd_true_positive", "rtd_replaced"))

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True


def _safe_ratio(num, den) -> float:
    num, den = float(num), float(den)
    return round(num / den, 4) if den > 0 else 0.0
