"""Patch: fp32 master weights in checkpoints, so a resumed ``--bf16`` / ``--fp16`` run continues exactly.

Wraps: ``fairseq.optim.fp16_optimizer._FP16OptimizerMixin.state_dict`` and ``load_state_dict``.
Tested by: tests/test_bf16_training.py (``test_bf16_resume_reproduces_the_uninterrupted_run``).

fairseq's ``FP16Optimizer`` (``--bf16``, ``--fp16`` without ``--memory-efficient-*``) steps fp32
master copies of the half-precision parameters, but ``_FP16OptimizerMixin.state_dict`` saves only
Adam's moments: on resume the masters are rebuilt from the half-precision model, so every weight is
rounded once (to 8 bits of mantissa in bf16) and the resumed run drifts from the uninterrupted one.
``install()`` wraps ``state_dict`` to add the masters, as one flat fp32 tensor in parameter order
(whether or not fairseq flattened them), and ``load_state_dict`` to copy them back. Checkpoints
without the key (older ones, other optimizers) load as before.
"""
import torch
from fairseq.optim.fp16_optimizer import _FP16OptimizerMixin

KEY = "metro_fp32_master_weights"


def _masters(optimizer):
    params = optimizer.fp32_params
    return list(params.values()) if isinstance(params, dict) else list(params)


def install():
    if getattr(_FP16OptimizerMixin.state_dict, "_metro_master_weights", False):
        return
    state_dict, load_state_dict = _FP16OptimizerMixin.state_dict, _FP16OptimizerMixin.load_state_dict

    def state_dict_with_masters(self):
        state = state_dict(self)
        state[KEY] = torch.cat([p.detach().reshape(-1) for p in _masters(self)]).cpu()
        return state

    def load_state_dict_with_masters(self, state, optimizer_overrides=None):
        saved = state.get(KEY)
        load_state_dict(self, {k: v for k, v in state.items() if k != KEY}, optimizer_overrides)
        if saved is None:
            return
        masters = _masters(self)
        if saved.numel() != sum(p.numel() for p in masters):
            raise ValueError(
                f"the checkpoint's fp32 master weights hold {saved.numel()} values but this model has "
                f"{sum(p.numel() for p in masters)} parameters: resume with the architecture it was trained with"
            )
        with torch.no_grad():
            for p, values in zip(masters, saved.split([p.numel() for p in masters])):
                p.copy_(values.view_as(p))

    state_dict_with_masters._metro_master_weights = True
    _FP16OptimizerMixin.state_dict = state_dict_with_masters
    _FP16OptimizerMixin.load_state_dict = load_state_dict_with_masters
