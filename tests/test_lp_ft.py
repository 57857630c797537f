"""--task sentence_prediction_lp_ft (LP-FT): only the classification head learns during the first
--head-only-updates updates, then every parameter does; a real fairseq-train run from a pretrained
checkpoint leaves the encoder bit-identical through LP and changes it in FT."""
from types import SimpleNamespace

import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.criterions.sentence_prediction import SentencePredictionConfig, SentencePredictionCriterion
from fairseq.data import Dictionary

from conftest import run
from metro_fairseq.models.metro import MetroModel
from metro_fairseq.models.metro_config import MetroConfig
from metro_fairseq.tasks.sentence_prediction_lp_ft import SentencePredictionLpFtConfig, SentencePredictionLpFtTask
from test_finetuning import finetune_cmd

HEAD = "sentence_classification_head"


def lp_ft_task(head_only_updates, world_size=1):
    d = Dictionary()
    for i in range(40):
        d.add_symbol(f"w{i}")
    cfg = SentencePredictionLpFtConfig(data="unused", num_classes=3, head_only_updates=head_only_updates,
                                       distributed_world_size=world_size)
    return SentencePredictionLpFtTask(cfg, d, d), d


def small_model(d):
    model = MetroModel(MetroConfig(encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64,
                                   encoder_attention_heads=4), d, with_generator=False)
    model.register_classification_head(HEAD, num_classes=3)
    return model


def gradients_after_step(task, d, update_num, model=None):
    torch.manual_seed(0)
    model = small_model(d) if model is None else model
    model.zero_grad(set_to_none=True)
    tokens = torch.randint(d.nspecial, len(d), (4, 10), generator=torch.Generator().manual_seed(1))
    sample = {"net_input": {"src_tokens": tokens}, "target": torch.tensor([[0], [1], [2], [1]]),
              "ntokens": tokens.numel()}
    criterion = SentencePredictionCriterion(SentencePredictionConfig(classification_head_name=HEAD), task)
    optimizer = SimpleNamespace(backward=lambda loss: loss.backward())
    task.train_step(sample, model, criterion, optimizer, update_num)
    return {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize("head_only_updates, update_num, encoder_learns", [(3, 0, False), (3, 2, False), (3, 3, True),
                                                                             (0, 0, True)])
def test_only_the_head_gets_gradients_during_lp(head_only_updates, update_num, encoder_learns):
    task, d = lp_ft_task(head_only_updates)
    grads = gradients_after_step(task, d, update_num)
    head = {n: g for n, g in grads.items() if n.startswith("classification_heads.")}
    encoder = {n: g for n, g in grads.items() if not n.startswith("classification_heads.")}
    assert len(head) == 4 and len(encoder) > 20
    assert all(g is not None and g.abs().sum() > 0 for g in head.values())
    if encoder_learns:
        assert all(g is not None for g in encoder.values())
        assert sum(g.abs().sum() for g in encoder.values()) > 0
    else:
        assert all(g is None for g in encoder.values())


def test_one_task_switches_from_lp_to_ft():
    """The parameters are set only when the phase changes: one task through LP and into FT."""
    task, d = lp_ft_task(1)
    model = small_model(d)
    lp = gradients_after_step(task, d, 0, model)
    assert all(g is None for n, g in lp.items() if "classification_heads." not in n)
    assert all(g is not None for g in gradients_after_step(task, d, 1, model).values())


def test_bad_settings_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="give 0"):
        lp_ft_task(-1)
    with pytest.raises(ValueError, match="single process"):
        lp_ft_task(5, world_size=2)
    lp_ft_task(0, world_size=2)  # plain fine-tuning stays distributable


def test_real_run_keeps_the_encoder_through_lp_and_moves_it_in_ft(pretrained, glue_bin, tmp_path):
    """Stopped after the LP phase, then resumed from checkpoint_last.pt into FT."""
    _, exported = pretrained
    cmd = finetune_cmd(glue_bin / "RTE", exported, tmp_path / "ft", "--num-classes", "2", "--head-only-updates", "3",
                       "--no-epoch-checkpoints", "--lr", "1e-3")
    cmd[cmd.index("--task") + 1] = "sentence_prediction_lp_ft"
    cmd.remove("--no-save")
    last = tmp_path / "ft" / "checkpoint_last.pt"
    steps = cmd.index("--max-update") + 1
    cmd[steps] = "3"
    run(cmd)
    after_lp = checkpoint_utils.load_checkpoint_to_cpu(str(last))
    cmd[steps] = "6"
    out = run(cmd)
    after_ft = checkpoint_utils.load_checkpoint_to_cpu(str(last))
    assert "Loaded checkpoint" in out.stdout + out.stderr
    assert after_lp["optimizer_history"][-1]["num_updates"] == 3 and after_ft["optimizer_history"][-1]["num_updates"] == 6
    start, after_lp, after_ft = (checkpoint_utils.load_checkpoint_to_cpu(str(exported))["model"], after_lp["model"],
                                 after_ft["model"])
    encoder = [k for k in after_lp if not k.startswith("classification_heads.")]
    heads = [k for k in after_lp if k.startswith("classification_heads.")]
    assert len(encoder) > 20 and heads and set(encoder) <= set(start)
    assert all(torch.equal(after_lp[k], start[k]) for k in encoder)
    assert any(not torch.equal(after_ft[k], start[k]) for k in encoder)
    assert any(not torch.equal(after_ft[k], after_lp[k]) for k in heads)
