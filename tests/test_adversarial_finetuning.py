"""--criterion adversarial_sentence_prediction (SiFT): delta stays in its ball, zero perturbation is the
plain criterion, bf16 autocast keeps gradients finite, and a real fairseq-train fine-tuning run uses it."""
import sys
from types import SimpleNamespace

import pytest
import torch
from fairseq.criterions.sentence_prediction import SentencePredictionConfig, SentencePredictionCriterion
from fairseq.data import Dictionary

from conftest import run
from metro_fairseq.criterions.adversarial_sentence_prediction import (
    AdversarialSentencePredictionConfig,
    AdversarialSentencePredictionCriterion,
)
from metro_fairseq.fairseq_log import read_log
from metro_fairseq.models.metro import MetroModel
from metro_fairseq.models.metro_config import MetroConfig
from test_end_to_end import train_cmd
from test_finetuning import finetune_cmd

HEAD = "sentence_classification_head"


def setup(attention="disentangled", classes=3, dropout=0.0):
    d = Dictionary()
    for i in range(40):
        d.add_symbol(f"w{i}")
    torch.manual_seed(0)
    cfg = MetroConfig(encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_attention_heads=4,
                      dropout=dropout, attention_dropout=dropout, pooler_dropout=dropout, attention_type=attention)
    model = MetroModel(cfg, d, with_generator=False)
    model.register_classification_head(HEAD, num_classes=classes)
    tokens = torch.randint(d.nspecial, len(d), (4, 12), generator=torch.Generator().manual_seed(1))
    tokens[2, 8:] = tokens[3, 5:] = d.pad()
    target = torch.tensor([0, 1, 2, 1])[:, None] if classes > 1 else torch.tensor([[0.5], [1.0], [2.0], [3.5]])
    sample = {"net_input": {"src_tokens": tokens}, "target": target, "ntokens": int(tokens.ne(d.pad()).sum())}
    task = SimpleNamespace(label_dictionary=d, source_dictionary=d, target_dictionary=d)
    return model.train(), sample, task


def adversarial(task, **kw):
    return AdversarialSentencePredictionCriterion(AdversarialSentencePredictionConfig(**kw), task)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_perturbation_stays_in_the_norm_ball_and_off_padding(norm):
    model, sample, task = setup()
    criterion = adversarial(task, adv_norm=norm, adv_epsilon=0.05, adv_init_std=1e-3, adv_steps=3, adv_step_size=0.04)
    logits, _ = model(**sample["net_input"], classification_head_name=HEAD)
    delta = criterion.find_delta(model, sample["net_input"], logits)
    assert delta.shape == (4, 12, 32) and delta.dtype == torch.float32 and not delta.requires_grad
    size = delta.abs().amax(-1) if norm == "linf" else delta.norm(dim=-1)
    real = sample["net_input"]["src_tokens"].ne(1)
    assert size.max() <= 0.05 * (1 + 1e-5)
    assert size[real].min() > 0.049  # from a 1e-3 start, the ascent steps reach the boundary
    assert (delta[~real] == 0).all()
    # and it is an ascent: a random delta of the same per-token size moves the prediction less
    torch.manual_seed(5)
    other = torch.randn_like(delta)
    other_size = other.abs().amax(-1, keepdim=True) if norm == "linf" else other.norm(dim=-1, keepdim=True)
    other = other / other_size * size.unsqueeze(-1)
    with torch.no_grad():
        found, random = (criterion._divergence(logits, criterion._predict(model, sample["net_input"], d))
                         for d in (delta, other))
    assert found > 2 * random, (found, random)


@pytest.mark.parametrize("classes", [3, 1])
def test_zero_perturbation_is_the_plain_criterion(classes):
    model, sample, task = setup(classes=classes)
    regression = dict(regression_target=classes == 1)
    plain_loss, plain_size, plain_log = SentencePredictionCriterion(SentencePredictionConfig(**regression), task)(model, sample)
    zero = adversarial(task, adv_init_std=0.0, adv_epsilon=0.0, adv_steps=1, **regression)
    loss, size, log = zero(model, sample)
    assert size == plain_size and log["adv_loss"] == 0
    assert torch.allclose(loss, plain_loss, rtol=1e-6, atol=1e-6)
    if classes > 1:
        assert log["ncorrect"] == plain_log["ncorrect"]
    # a real perturbation adds a positive term; evaluation is the plain task loss
    loss, _, log = adversarial(task, adv_epsilon=0.5, adv_init_std=0.3, **regression)(model, sample)
    assert log["adv_loss"] > 0 and loss > plain_loss
    model.eval()
    assert torch.allclose(adversarial(task, **regression)(model, sample)[0], plain_loss.detach(), atol=1e-6)


@pytest.mark.parametrize("attention", ["standard", "disentangled"])
def test_gradients_are_finite_under_bf16_autocast(attention):
    model, sample, task = setup(attention=attention, dropout=0.1)
    criterion = adversarial(task, adv_epsilon=0.1, adv_init_std=0.05, adv_steps=2, adv_step_size=0.05)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _, log = criterion(model, sample)
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and log["adv_loss"] > 0
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(grads) > 20 and all(torch.isfinite(g).all() for g in grads)
    assert model.classification_heads[HEAD].out_proj.weight.grad.abs().sum() > 0


def test_real_fine_tuning_run_from_a_disentangled_checkpoint(wiki_bin, glue_bin, tmp_path):
    """fairseq-train: a disentangled metro_tiny pretrained a few updates, fine-tuned on the RTE fixture
    with the adversarial criterion (its options through fairseq's parser), validated with the plain loss."""
    run(train_cmd(wiki_bin, tmp_path / "pre", 4, "--disable-validation", "--attention-type", "disentangled"))
    cmd = finetune_cmd(glue_bin / "RTE", tmp_path / "pre" / "checkpoint_last.pt", tmp_path / "ft", "--num-classes", "2",
                       arch_args=["--attention-type", "disentangled"])
    cmd[cmd.index("--criterion") + 1] = "adversarial_sentence_prediction"
    r = run(cmd + ["--adv-steps", "2", "--adv-norm", "l2", "--adv-epsilon", "0.1", "--log-interval", "1"])
    out = r.stdout + r.stderr
    log = read_log(out.splitlines())
    adv = [record["adv_loss"] for record in log.train()]  # one epoch per update: the epoch averages
    # logged with 3 decimals: a near-uniform classifier's first KL can round to 0
    assert len(adv) == 6 and all(0 <= a < 10 for a in adv) and max(adv) > 0, out[-2000:]
    assert log.valid() and "done training" in out


def test_ascent_does_not_underflow_with_fp16_weights():
    """As fairseq's --fp16 casts the model: from a 1e-4 start the KL is ~1e-9 and its plain gradient
    underflows in half precision for some tokens (delta stays at its start); the inner gradient of
    D / stopgrad(D) moves every token a full step."""
    model, sample, task = setup()
    model = model.half()
    criterion = adversarial(task, adv_epsilon=0.05, adv_init_std=1e-4, adv_steps=1, adv_step_size=0.04)
    logits, _ = model(**sample["net_input"], classification_head_name=HEAD)
    delta = criterion.find_delta(model, sample["net_input"], logits)
    real = sample["net_input"]["src_tokens"].ne(1)
    assert delta.abs().amax(-1)[real].min() > 0.039
    loss, _, log = criterion(model, sample)
    (loss * 128).backward()  # a loss scale, as FP16Optimizer applies it
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and log["adv_loss"] > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
