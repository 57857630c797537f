"""Temperature of the generator's sampling distribution over training (Fast-ELECTRA, arXiv
2310.07347: a descending schedule makes early replacements easier to detect).

Replacements are drawn from softmax(logits / T). T starts at ``start`` and anneals (linearly or by
cosine) to ``final`` over ``anneal_updates``. With ``release_bits`` set, the anneal waits for a
condition instead of starting at update 0: the generator's MLM loss (an exponential moving average,
in bits) has fallen ``release_bits`` under the unigram entropy of the tokens it predicts (counted as
they are seen). Until then its samples are frequency draws without context, which a detector can
only tell from the original by token identity; a hot temperature keeps that possible so the main
model does not collapse while the generator sits on the unigram plateau.

All state lives in buffers, so it is saved in checkpoints and identical after a resume. The
statistics are integer tensors (counts, and the float64 moving averages kept as their int64 bit
pattern): every mixed-precision cast (fairseq's ``model.half()`` and ``model.to(bfloat16)``, FSDP's
buffer cast) skips integer tensors, so they stay exact in fp16 and bf16 runs, where counts in the
model's dtype would stop growing past 256 (bf16) or overflow past 65,504 (fp16). The condition is
evaluated with tensor ops only (no host sync): ``observe`` in the training forward,
``set_num_updates`` when fairseq reports the update count.
"""
import math
from typing import Optional, Union

import torch
import torch.nn as nn

ANNEAL_SHAPES = ("linear", "cosine")


class SamplingTemperatureSchedule(nn.Module):
    def __init__(
        self, final: float = 1.0, start: Optional[float] = None, anneal_updates: int = 0, anneal: str = "cosine",
        release_bits: Optional[float] = None, vocab_size: int = 0, ema_decay: float = 0.98,
    ):
        super().__init__()
        start = final if start is None else start
        if final <= 0 or start <= 0:
            raise ValueError(f"sampling temperatures must be positive (start {start}, final {final})")
        if anneal not in ANNEAL_SHAPES:
            raise ValueError(f"--sampling-temperature-anneal {anneal!r} is not one of {ANNEAL_SHAPES}")
        if start != final and anneal_updates <= 0 and release_bits is None:
            raise ValueError(
                "--sampling-temperature-start needs --sampling-temperature-anneal-updates N (anneal over N updates) "
                "or --sampling-temperature-release-bits B (wait for the generator, then anneal)"
            )
        self.final, self.start, self.anneal_updates, self.anneal = final, start, anneal_updates, anneal
        self.release_bits, self.ema_decay = release_bits, ema_decay
        self.num_updates = 0
        if self.constant:
            return  # no state: checkpoints of constant-temperature runs hold nothing of this module
        self.register_buffer("released", torch.tensor(release_bits is None))
        self.register_buffer("release_update", torch.tensor(0, dtype=torch.long))
        if release_bits is not None:
            self.register_buffer("target_counts", torch.zeros(vocab_size, dtype=torch.long))
            # [loss EMA in bits, its weight for bias correction]: float64 stored as int64 bits (see above)
            self.register_buffer("loss_ema_bits", torch.zeros(2, dtype=torch.float64).view(torch.long))

    @property
    def constant(self) -> bool:
        return self.start == self.final

    @torch.no_grad()
    def observe(self, generator_logits: torch.Tensor, targets: torch.Tensor):
        """Record one training batch of the generator (logits and original tokens at masked positions)."""
        if self.constant or self.release_bits is None or targets.numel() == 0:
            return
        logits = generator_logits.float()
        ce = (logits.logsumexp(-1) - logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)).mean() / math.log(2)
        self._loss_ema().mul_(self.ema_decay).add_(torch.stack([ce.double(), torch.ones_like(ce, dtype=torch.float64)]),
                                                   alpha=1 - self.ema_decay)
        self.target_counts.index_add_(0, targets, torch.ones_like(targets))

    def _loss_ema(self) -> torch.Tensor:
        """[loss EMA, weight] as float64, a view of the buffer: in-place updates write it."""
        return self.loss_ema_bits.view(torch.float64)

    def generator_loss_bits(self) -> torch.Tensor:
        loss, weight = self._loss_ema()
        return loss / weight.clamp(min=1e-12)

    def unigram_entropy_bits(self) -> torch.Tensor:
        counts = self.target_counts.double()
        p = counts / counts.sum().clamp(min=1)
        return -(p * torch.log2(p.clamp(min=1e-300))).sum()

    @torch.no_grad()
    def set_num_updates(self, num_updates: int):
        """Called by fairseq (BaseFairseqModel.set_num_updates) before every update and after a resume."""
        self.num_updates = num_updates
        if self.constant or self.release_bits is None:
            return
        ready = (self._loss_ema()[1] > 0) & (self.generator_loss_bits() <= self.unigram_entropy_bits() - self.release_bits)
        newly = ready & ~self.released
        self.release_update.copy_(torch.where(newly, torch.full_like(self.release_update, num_updates),
                                              self.release_update))
        self.released.logical_or_(newly)

    def upgrade_state_dict_named(self, state_dict: dict, name: str):
        """Checkpoints written before 2026-12-07 hold float64 ``target_counts``, ``loss_ema`` and
        ``ema_weight``; called by fairseq's ``upgrade_state_dict`` before the model loads them."""
        prefix = name + "." if name else ""
        if prefix + "loss_ema" in state_dict:
            ema = torch.stack([state_dict.pop(prefix + k).double() for k in ("loss_ema", "ema_weight")])
            state_dict[prefix + "loss_ema_bits"] = ema.view(torch.long)
        counts = state_dict.get(prefix + "target_counts")
        if counts is not None and counts.is_floating_point():
            state_dict[prefix + "target_counts"] = counts.round().long()

    def value(self) -> Union[float, torch.Tensor]:
        """The temperature for the current update: a float when constant, else a 0-d tensor."""
        if self.constant:
            return self.final
        elapsed = (self.num_updates - self.release_update).clamp(min=0).double()
        progress = (elapsed / self.anneal_updates).clamp(max=1.0) if self.anneal_updates > 0 else elapsed.ge(0).double()
        progress = torch.where(self.released, progress, torch.zeros_like(progress))
        shape = progress if self.anneal == "linear" else 0.5 * (1 - torch.cos(math.pi * progress))
        return (self.start + (self.final - self.start) * shape).float()
