"""Adversarial fine-tuning on fairseq's stock ``sentence_prediction`` task (one of Vega v1's fine-tuning
techniques, Zhong et al. 2022), implemented as DeBERTa's SiFT (He et al. 2021, arXiv 2006.03654, section 3.3).

Training loss = task loss + ``adv_weight`` * D(clean prediction, prediction under delta), where delta
perturbs the normalised input embeddings inside a per-token norm ball (``modules/embedding_perturbation.py``):
a random start of std ``adv_init_std``, then ``adv_steps`` ascent steps on D (virtual adversarial
training, Miyato et al. 2018; SiFT's default is one). D is the symmetric KL of the class distributions
with DeBERTa's gradient routing (each side's probabilities held fixed in the other side's term), or the
squared difference for regression. Validation computes the task loss alone.

FreeLB (Zhu et al. 2020, arXiv 1909.11764) would be the other ``_adversarial_term``: the same delta
loop with the task loss on the labels in place of D, the parameter gradients of all K steps averaged.

Free of host syncs (no ``.item()``; an overflowed ascent gradient is zeroed, not tested), and safe under
fp16 loss scaling: delta is fp32, the inner gradient is taken of D / stopgrad(D), whose direction is
all a step uses, so it neither underflows in half precision nor depends on the outer loss scale.
"""
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq.criterions import register_criterion
from fairseq.criterions.sentence_prediction import SentencePredictionConfig, SentencePredictionCriterion
from fairseq.dataclass import ChoiceEnum
from fairseq.logging import metrics

from ..modules.embedding_perturbation import NORMS, EmbeddingPerturbation, ascent_direction, project


@dataclass
class AdversarialSentencePredictionConfig(SentencePredictionConfig):
    adv_weight: float = field(default=1.0, metadata={"help": "weight of the adversarial term (SiFT/VAT lambda)"})
    adv_init_std: float = field(
        default=1e-2, metadata={"help": "std of delta's random start, in normalised-embedding units (SiFT: 1e-2)"}
    )
    adv_epsilon: float = field(
        default=2e-2, metadata={"help": "radius of the per-token norm ball delta stays in (normalised units)"}
    )
    adv_steps: int = field(default=1, metadata={"help": "ascent steps on delta; 0: the random start only"})
    adv_step_size: float = field(
        default=1e-2, metadata={"help": "size of one ascent step, in --adv-norm, before projection onto the ball"}
    )
    adv_norm: ChoiceEnum(NORMS) = field(
        default="linf", metadata={"help": "norm of the ball and of the ascent step: per-token linf or l2"}
    )


def symmetric_kl(clean: torch.Tensor, perturbed: torch.Tensor) -> torch.Tensor:
    """Sum over the batch of KL(p||q) + KL(q||p) in fp32, zero when the logits agree; the gradient
    reaching each side treats the other's probabilities as constants (DeBERTa's ``symmetric_kl``)."""
    log_p, log_q = F.log_softmax(clean.float(), dim=-1), F.log_softmax(perturbed.float(), dim=-1)
    p, q = log_p.exp().detach(), log_q.exp().detach()
    return (p * (log_p.detach() - log_q)).sum() + (q * (log_q.detach() - log_p)).sum()


@register_criterion("adversarial_sentence_prediction", dataclass=AdversarialSentencePredictionConfig)
class AdversarialSentencePredictionCriterion(SentencePredictionCriterion):
    def __init__(self, cfg: AdversarialSentencePredictionConfig, task):
        super().__init__(cfg, task)
        self.weight = cfg.adv_weight
        self.init_std = cfg.adv_init_std
        self.epsilon = cfg.adv_epsilon
        self.steps = cfg.adv_steps
        self.step_size = cfg.adv_step_size
        self.norm = str(cfg.adv_norm)

    def _predict(self, model, net_input, delta=None):
        logits, _ = model(
            **net_input, features_only=True, classification_head_name=self.classification_head_name,
            embedding_perturbation=None if delta is None else EmbeddingPerturbation(delta),
        )
        return logits

    def _divergence(self, clean, perturbed):
        if self.regression_target:
            return F.mse_loss(perturbed.float().view(-1), clean.float().view(-1), reduction="sum")
        return symmetric_kl(clean, perturbed)

    def find_delta(self, model, net_input, clean_logits) -> torch.Tensor:
        """The perturbation ``(B, T, C)``, fp32, detached, zero on padding, inside the ball."""
        tokens = net_input["src_tokens"]
        keep = tokens.ne(model.padding_idx).unsqueeze(-1).float()
        dim = model.cfg.encoder_embed_dim
        delta = project(torch.randn(*tokens.shape, dim, device=tokens.device) * self.init_std, self.epsilon, self.norm)
        delta = delta * keep
        target = clean_logits.detach()
        for _ in range(self.steps):
            delta.requires_grad_(True)
            divergence = self._divergence(target, self._predict(model, net_input, delta))
            (grad,) = torch.autograd.grad(divergence, delta, grad_outputs=1.0 / divergence.detach().clamp(min=1e-30))
            delta = project(delta.detach() + self.step_size * ascent_direction(grad, self.norm), self.epsilon, self.norm)
            delta = delta * keep
        return delta.detach()

    def forward(self, model, sample, reduce=True):
        if not model.training or self.weight == 0:
            return super().forward(model, sample, reduce)
        net_input = sample["net_input"]
        logits = self._predict(model, net_input)
        targets = model.get_targets(sample, [logits]).view(-1)
        sample_size = targets.numel()
        if self.regression_target:
            task_loss = F.mse_loss(logits.view(-1).float(), targets.float(), reduction="sum")
        else:
            task_loss = F.nll_loss(F.log_softmax(logits, dim=-1, dtype=torch.float32), targets, reduction="sum")
        delta = self.find_delta(model, net_input, logits)
        adv_loss = self._divergence(logits, self._predict(model, net_input, delta))
        loss = task_loss + self.weight * adv_loss
        logging_output = {
            "loss": loss.data, "adv_loss": adv_loss.data, "ntokens": sample["ntokens"], "nsentences": sample_size,
            "sample_size": sample_size,
        }
        if not self.regression_target:
            logging_output["ncorrect"] = (logits.argmax(dim=1) == targets).sum()
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        SentencePredictionCriterion.reduce_metrics(logging_outputs)
        adv = sum(log.get("adv_loss", 0) for log in logging_outputs)
        sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
        if any("adv_loss" in log for log in logging_outputs):
            metrics.log_scalar("adv_loss", adv / sample_size / math.log(2), sample_size, round=3)
