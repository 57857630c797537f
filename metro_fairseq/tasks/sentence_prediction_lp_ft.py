"""LP-FT fine-tuning (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features and
Underperform Out-of-Distribution", arXiv 2202.10054): fairseq's ``sentence_prediction`` with a first
phase that trains only the classification heads on the frozen encoder (the linear probe, LP), then
fine-tunes every parameter (FT). Starting FT from a fitted head instead of a random one keeps the
early, large head gradients from rewriting the pretrained features.

Any model with fairseq's ``classification_heads`` works (``metro`` and fairseq's ``roberta``), so
every arm of a comparison gets the same recipe. The phase follows fairseq's update count, so a resume
continues it exactly. Frozen parameters get no gradient, and fairseq's optimizers, clipping and
weight decay skip parameters without one, so they stay untouched during LP. (With --fp16's flat
gradients a frozen parameter gets a zero gradient instead, so Adam's weight decay still shrinks it.)
"""
from dataclasses import dataclass, field

from fairseq.tasks import register_task
from fairseq.tasks.sentence_prediction import SentencePredictionConfig, SentencePredictionTask
from omegaconf import II

HEADS = "classification_heads."


@dataclass
class SentencePredictionLpFtConfig(SentencePredictionConfig):
    head_only_updates: int = field(
        default=0,
        metadata={"help": "updates that train only the classification heads on the frozen encoder (LP) before "
                          "every parameter is fine-tuned (FT); count them in --max-update. 0: plain fine-tuning"},
    )
    distributed_world_size: int = II("distributed_training.distributed_world_size")


@register_task("sentence_prediction_lp_ft", dataclass=SentencePredictionLpFtConfig)
class SentencePredictionLpFtTask(SentencePredictionTask):
    def __init__(self, cfg: SentencePredictionLpFtConfig, data_dictionary, label_dictionary):
        super().__init__(cfg, data_dictionary, label_dictionary)
        if cfg.head_only_updates < 0:
            raise ValueError(f"--head-only-updates is {cfg.head_only_updates}: give 0 (no LP phase) or more")
        if cfg.head_only_updates and cfg.distributed_world_size > 1:
            # DDP expects every parameter that required a gradient at wrap time to get one each update
            raise ValueError("--head-only-updates needs a single process (DDP and FSDP expect the same parameters "
                             "to get gradients every update): run LP-FT on one GPU or the CPU")
        self._head_only = None  # the phase the parameters are set for; None until the first update

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        head_only = update_num < self.cfg.head_only_updates
        if head_only != self._head_only:  # only at the first update and at the switch to FT
            for name, p in model.named_parameters():
                if HEADS not in name:
                    p.requires_grad_(not head_only)
            self._head_only = head_only
        return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)
