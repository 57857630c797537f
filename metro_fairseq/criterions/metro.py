"""Criterion ``metro``: generator MLM + weighted replaced-token detection, plus COCO-LM's corrective
LM and sequence contrastive learning when the task switches them on (``--clm``, ``--scl-view``):

    loss = mean_{masked} CE_generator + rtd_weight * mean_{non-pad} BCE_rtd
           + clm_weight * mean_{masked} CLM + scl_weight * mean_{views} InfoNCE

fairseq divides the summed gradient of all workers (and accumulated micro-batches) by the sum of
their ``sample_size``. We set ``sample_size`` = number of masked tokens; the MLM (and CLM) terms are
then exact global means over masked tokens, and each other term enters as its per-batch mean times
``sample_size``: an average of per-batch means weighted by masked count (the global mean when
batches hold equal token counts, as with fixed-size blocks). All losses are computed in fp32;
nothing here reads a value back to the host.
"""
import math
from dataclasses import dataclass, field

from fairseq import metrics, utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass

from .clm import CLM_FORMS, clm_loss_terms
from .contrastive import info_nce_terms
from .mlm import mlm_loss_terms
from .rtd import rtd_loss_terms
from .collapse_monitor import token_similarity_terms
from ..rtd_signal import NoSignalWatch, binary_entropy_bits

# summed over batches and workers, kept as hidden meters for corpus-level ratios
RATIO_KEYS = (
    "mlm_correct", "rtd_correct", "rtd_replaced", "rtd_predicted_replaced", "rtd_true_positive",
    "clm_correct", "scl_correct", "scl_views", "token_cos", "token_cos_batches", "sample_temp", "sample_temp_batches",
    "rtd_active",
)
# one per process: warns once when RTD has sat at its prior for several log intervals
NO_SIGNAL_WATCH = NoSignalWatch()
SUMMED_KEYS = ("loss", "mlm_loss", "rtd_loss", "clm_loss", "scl_loss", "ntokens", "sample_size") + RATIO_KEYS


@dataclass
class MetroCriterionConfig(FairseqDataclass):
    rtd_weight: float = field(
        default=50.0, metadata={"help": "weight of the replaced-token-detection loss (ELECTRA/COCO-LM 50, DeBERTaV3 10)"}
    )
    clm_weight: float = field(default=1.0, metadata={"help": "weight of corrective LM (with --clm)"})
    clm_form: ChoiceEnum(CLM_FORMS) = field(
        default="weighted",
        metadata={"help": "weighted: LM cross-entropy weighted by stopgrad P(replaced) (COCO-LM's code); "
                  "mixture: exact copy-mixture likelihood (COCO-LM's paper)"},
    )
    scl_weight: float = field(default=1.0, metadata={"help": "weight of sequence contrastive learning (with --scl-view)"})
    scl_temperature: float = field(default=1.0, metadata={"help": "InfoNCE temperature"})
    rtd_start_update: int = field(
        default=0,
        metadata={"help": "RTD weight 0 before this update: the generator (and CLM/SCL, when on) train alone first "
                  "(ELECTRA's author's suggestion, google-research/electra issue 37)"},
    )
    rtd_warmup_updates: int = field(
        default=0,
        metadata={"help": "from --rtd-start-update, ramp the RTD weight linearly from 0 to --rtd-weight over this "
                  "many updates (a discriminator-loss warm-up); 0 = full weight at once"},
    )
    scl_gather: bool = field(
        default=False,
        metadata={"help": "take contrastive negatives from all data-parallel workers (COCO-LM: this worker's only)"},
    )


@register_criterion("metro", dataclass=MetroCriterionConfig)
class MetroCriterion(FairseqCriterion):
    def __init__(
        self, task, rtd_weight: float, clm_weight: float = 1.0, clm_form: str = "weighted",
        scl_weight: float = 1.0, scl_temperature: float = 1.0, scl_gather: bool = False, rtd_start_update: int = 0,
        rtd_warmup_updates: int = 0,
    ):
        super().__init__(task)
        self.rtd_weight = rtd_weight
        self.clm_weight = clm_weight
        self.clm_form = clm_form
        self.scl_weight = scl_weight
        self.scl_temperature = scl_temperature
        self.scl_gather = scl_gather
        self.rtd_start_update = rtd_start_update
        self.rtd_warmup_updates = rtd_warmup_updates
        self.num_updates = 0

    def set_num_updates(self, num_updates: int):
        """Called by the task before every training step (fairseq gives criterions no such hook)."""
        self.num_updates = num_updates

    def current_rtd_weight(self) -> float:
        elapsed = self.num_updates - self.rtd_start_update
        if elapsed < 0:
            return 0.0
        if self.rtd_warmup_updates <= 0:
            return self.rtd_weight
        return self.rtd_weight * min(1.0, elapsed / self.rtd_warmup_updates)

    def forward(self, model, sample, reduce=True):
        out = model(**sample["net_input"])
        sample_size = max(sample["net_input"]["masked_index"].numel(), 1)
        ntokens = sample["ntokens"]
        terms = mlm_loss_terms(out["generator_logits"], out["generator_targets"])
        terms.update(rtd_loss_terms(out["rtd_logits"], out["rtd_labels"], out["padding_mask"]))
        if "main_hidden" in out:
            terms.update(token_similarity_terms(out["main_hidden"], out["padding_mask"]))
        if "sample_temp" in out:
            terms.update(sample_temp=out["sample_temp"], sample_temp_batches=1)
        rtd_weight = self.current_rtd_weight()
        terms.update(rtd_active=float(rtd_weight > 0))
        loss = terms["mlm_loss"] + rtd_weight * terms["rtd_loss"] / ntokens * sample_size
        if "clm_logits" in out:
            masked = out["masked_index"]
            terms.update(clm_loss_terms(
                out["clm_logits"], out["generator_targets"], out["rtd_logits"].flatten().index_select(0, masked),
                out["main_input"].flatten().index_select(0, masked), self.clm_form,
            ))
            loss = loss + self.clm_weight * terms["clm_loss"]
        if "scl_embeddings" in out:
            terms.update(info_nce_terms(out["scl_embeddings"], self.scl_temperature, self.scl_gather))
            loss = loss + self.scl_weight * terms["scl_loss"] / terms["scl_views"] * sample_size
        logging_output = {k: v.detach() if hasattr(v, "detach") else v for k, v in terms.items()}
        logging_output.update(
            loss=loss.detach(), ntokens=ntokens, nsentences=sample["nsentences"], sample_size=sample_size
        )
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        total = {k: sum(log.get(k, 0) for log in logging_outputs) for k in SUMMED_KEYS}
        present = {k for log in logging_outputs for k in log}
        masked, ntokens = total["sample_size"], total["ntokens"]
        # losses in base 2, as fairseq reports them
        metrics.log_scalar("loss", total["loss"] / masked / math.log(2), masked, round=3)
        metrics.log_scalar("mlm_loss", total["mlm_loss"] / masked / math.log(2), masked, round=3)
        metrics.log_scalar("rtd_loss", total["rtd_loss"] / ntokens / math.log(2), ntokens, round=4)
        metrics.log_derived("ppl", lambda m: utils.get_perplexity(m["mlm_loss"].avg))
        for key in RATIO_KEYS:
            if key in present:
                metrics.log_scalar_sum("_" + key, total[key])
        metrics.log_scalar_sum("_masked", masked)
        metrics.log_scalar_sum("_tokens", ntokens)

        def ratio(num, den):
            return lambda m: _safe_ratio(m["_" + num].sum, m["_" + den].sum)

        metrics.log_derived("mlm_acc", ratio("mlm_correct", "masked"))
        metrics.log_derived("rtd_acc", ratio("rtd_correct", "tokens"))
        metrics.log_derived("replace_rate", ratio("rtd_replaced", "tokens"))
        metrics.log_derived("rtd_precision", ratio("rtd_true_positive", "rtd_predicted_replaced"))
        metrics.log_derived("rtd_recall", ratio("rtd_true_positive", "rtd_replaced"))
        metrics.log_derived("rtd_gain", _rtd_gain)
        if "token_cos" in present:
            # mean over batches (and workers) of each batch's mean token-state cosine; ~1 = collapsed
            metrics.log_derived("token_cos", ratio("token_cos", "token_cos_batches"))
        if "sample_temp" in present:
            metrics.log_derived("sample_temp", ratio("sample_temp", "sample_temp_batches"))
        if "clm_loss" in present:
            metrics.log_scalar("clm_loss", total["clm_loss"] / masked / math.log(2), masked, round=3)
            metrics.log_derived("clm_acc", ratio("clm_correct", "masked"))
        if "scl_loss" in present:
            views = total["scl_views"]
            metrics.log_scalar("scl_loss", total["scl_loss"] / max(views, 1) / math.log(2), views, round=3)
            metrics.log_derived("scl_acc", ratio("scl_correct", "scl_views"))

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True


def _rtd_gain(m) -> float:
    """Bits by which RTD beats its prior H(replace rate). fairseq also evaluates derived metrics for each
    step's own aggregator; only the train_inner evaluation (one per --log-interval) feeds the watch."""
    tokens = float(m["_tokens"].sum)
    replace_rate = float(m["_rtd_replaced"].sum) / tokens if tokens > 0 else 0.0
    gain = binary_entropy_bits(replace_rate) - float(m["rtd_loss"].avg)
    if m is metrics.get_meters("train_inner"):
        recall = _safe_ratio(m["_rtd_true_positive"].sum, m["_rtd_replaced"].sum)
        NO_SIGNAL_WATCH.observe(gain, recall, active=float(m["_rtd_active"].sum) > 0)
    return round(gain, 4)


def _safe_ratio(num, den) -> float:
    num, den = float(num), float(den)
    return round(num / den, 4) if den > 0 else 0.0
