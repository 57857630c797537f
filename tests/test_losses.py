"""The metro criterion against a naive reference, and the RTD label convention."""
import math

import torch
import torch.nn.functional as F
from fairseq import metrics

from metro_fairseq.criterions.metro import MetroCriterion


class FixedOutputModel(torch.nn.Module):
    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, **net_input):
        return self.out


def fixed_batch():
    torch.manual_seed(0)
    B, T, V = 3, 6, 11
    padding = torch.zeros(B, T, dtype=torch.bool)
    padding[1, 4:] = True
    padding[2, 2:] = True
    masked_index = torch.tensor([1, 3, 8, 13])
    out = {
        "generator_logits": torch.randn(4, V),
        "generator_targets": torch.tensor([4, 5, 6, 7]),
        "rtd_logits": torch.randn(B, T),
        "rtd_labels": torch.rand(B, T) < 0.3,
        "padding_mask": padding,
    }
    sample = {
        "net_input": {"masked_index": masked_index},
        "ntokens": int((~padding).sum()),
        "nsentences": B,
    }
    return out, sample


def naive_loss(out, rtd_weight):
    ce = [
        -math.log(torch.softmax(out["generator_logits"][i], -1)[out["generator_targets"][i]].item())
        for i in range(len(out["generator_targets"]))
    ]
    bce = []
    B, T = out["rtd_logits"].shape
    for b in range(B):
        for t in range(T):
            if out["padding_mask"][b, t]:
                continue
            p = 1 / (1 + math.exp(-out["rtd_logits"][b, t].item()))
            y = float(out["rtd_labels"][b, t])
            bce.append(-(y * math.log(p) + (1 - y) * math.log(1 - p)))
    return sum(ce) / len(ce), sum(bce) / len(bce)


def test_loss_matches_naive_reference():
    out, sample = fixed_batch()
    crit = MetroCriterion(task=None, rtd_weight=50.0)
    loss, sample_size, log = crit(FixedOutputModel(out), sample)
    mlm, rtd = naive_loss(out, 50.0)
    assert sample_size == 4
    # sample_size-normalised loss = mean MLM + 50 * mean RTD
    assert math.isclose(loss.item() / sample_size, mlm + 50.0 * rtd, rel_tol=1e-5)
    assert math.isclose(log["mlm_loss"].item() / 4, mlm, rel_tol=1e-5)
    assert math.isclose(log["rtd_loss"].item() / sample["ntokens"], rtd, rel_tol=1e-5)


def test_logged_metrics():
    out, sample = fixed_batch()
    crit = MetroCriterion(task=None, rtd_weight=50.0)
    _, _, log = crit(FixedOutputModel(out), sample)
    real = ~out["padding_mask"]
    labels = out["rtd_labels"] & real
    pred = (out["rtd_logits"] > 0) & real
    with metrics.aggregate() as agg:
        MetroCriterion.reduce_metrics([log, log])
    v = agg.get_smoothed_values()
    n = real.sum().item()
    assert math.isclose(v["replace_rate"], round(labels.sum().item() / n, 4))
    assert math.isclose(v["rtd_acc"], round((pred == labels)[real].float().mean().item(), 4))
    assert math.isclose(v["rtd_recall"], round((pred & labels).sum().item() / labels.sum().item(), 4))
    assert math.isclose(v["rtd_precision"], round((pred & labels).sum().item() / pred.sum().item(), 4))
    mlm_acc = (out["generator_logits"].argmax(-1) == out["generator_targets"]).float().mean().item()
    assert math.isclose(v["mlm_acc"], round(mlm_acc, 4))
    mlm, rtd = naive_loss(out, 50.0)
    assert math.isclose(v["loss"], round((mlm + 50 * rtd) / math.log(2), 3), abs_tol=2e-3)
    assert math.isclose(v["mlm_loss"], round(mlm / math.log(2), 3), abs_tol=2e-3)


def test_rtd_weight_is_configurable():
    out, sample = fixed_batch()
    l10, s, _ = MetroCriterion(task=None, rtd_weight=10.0)(FixedOutputModel(out), sample)
    mlm, rtd = naive_loss(out, 10.0)
    assert math.isclose(l10.item() / s, mlm + 10.0 * rtd, rel_tol=1e-5)


def test_losses_in_fp32_for_half_inputs():
    out, sample = fixed_batch()
    half = {k: (v.to(torch.bfloat16) if v.is_floating_point() else v) for k, v in out.items()}
    loss, sample_size, _ = MetroCriterion(task=None, rtd_weight=50.0)(FixedOutputModel(half), sample)
    assert loss.dtype == torch.float32
    # the naive reference reads the bf16 values exactly (as Python floats): a loss computed in bf16
    # would be off by about 1e-2 relative, one computed in fp32 from the same values by about 1e-7
    mlm, rtd = naive_loss(half, 50.0)
    assert math.isclose(loss.item() / sample_size, mlm + 50.0 * rtd, rel_tol=1e-5)


def test_token_similarity_matches_pairwise_reference():
    from metro_fairseq.criterions.collapse_monitor import token_similarity_terms

    torch.manual_seed(1)
    hidden = torch.randn(3, 5, 8)
    hidden[0, 1] = hidden[2, 0] * 3  # one exact pair of parallel states
    padding = torch.zeros(3, 5, dtype=torch.bool)
    padding[1, 3:] = True
    states = [hidden[b, t] for b in range(3) for t in range(5) if not padding[b, t]]
    cos = [F.cosine_similarity(a, b, dim=0).item() for i, a in enumerate(states) for j, b in enumerate(states) if i != j]
    terms = token_similarity_terms(hidden, padding)
    assert math.isclose(terms["token_cos"].item(), sum(cos) / len(cos), rel_tol=1e-5, abs_tol=1e-6)
    # collapsed: every state the same direction
    collapsed = token_similarity_terms(torch.randn(1, 1, 8).expand(2, 4, 8) * torch.rand(2, 4, 1), padding[:2, :4])
    assert math.isclose(collapsed["token_cos"].item(), 1.0, rel_tol=1e-5)


def test_token_similarity_is_logged_when_the_model_returns_states():
    out, sample = fixed_batch()
    out["main_hidden"] = torch.randn(3, 6, 8)
    out["main_hidden"][1] = out["main_hidden"][0]
    _, _, log = MetroCriterion(task=None, rtd_weight=50.0)(FixedOutputModel(out), sample)
    with metrics.aggregate() as agg:
        MetroCriterion.reduce_metrics([log])
    assert math.isclose(agg.get_smoothed_values()["token_cos"], round(log["token_cos"].item(), 4))
