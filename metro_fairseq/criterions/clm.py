"""COCO-LM's corrective language modelling (CLM) on the main model.

The main model recovers the original token through a copy mechanism:
    p(x_orig) = P_copy * 1[x_input == x_orig] + (1 - P_copy) * softmax(E h)[x_orig]
with P_copy = P(original) = 1 - sigmoid(rtd_logit) from the RTD head (label 1 = replaced).

Two forms, both on the masked positions only:
- ``weighted`` (COCO-LM's released criterion): cross-entropy of the LM head, each position
  weighted by stopgrad(P(replaced)); the copy part is the RTD loss, computed separately.
- ``mixture``: the exact negative log-likelihood of the mixture above (gradients reach the RTD head).
"""
import torch
import torch.nn.functional as F

CLM_FORMS = ("weighted", "mixture")


def clm_loss_terms(
    clm_logits: torch.Tensor,
    targets: torch.Tensor,
    rtd_logits: torch.Tensor,
    input_tokens: torch.Tensor,
    form: str = "weighted",
) -> dict:
    """All arguments are per masked position: LM-head logits ``(N, V)``, original tokens ``(N,)``,
    RTD logits ``(N,)`` and the tokens the main model saw ``(N,)``. Returns summed fp32 loss and
    the number of positions the corrected prediction (copy the input unless the RTD head says
    replaced, else the LM head's argmax) gets right."""
    lm_logprobs = F.log_softmax(clm_logits.float(), dim=-1)
    target_logprob = lm_logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    rtd_logits = rtd_logits.float()
    copy_possible = input_tokens.eq(targets)
    if form == "weighted":
        loss = -(torch.sigmoid(rtd_logits).detach() * target_logprob).sum()
    elif form == "mixture":
        generate = F.logsigmoid(rtd_logits) + target_logprob  # log((1 - P_copy) * p_LM)
        copy = F.logsigmoid(-rtd_logits)  # log(P_copy), only where copying yields the original
        loss = -torch.where(copy_possible, torch.logaddexp(copy, generate), generate).sum()
    else:
        raise ValueError(f"clm form {form!r} is not one of {CLM_FORMS}")
    corrected = torch.where(rtd_logits > 0, clm_logits.argmax(-1), input_tokens)
    return {"clm_loss": loss, "clm_correct": corrected.eq(targets).sum()}
