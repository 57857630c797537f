"""model.generator_lr_scale: the generator's own parameters train at a scaled lr through fairseq's
composite optimizer; the preset that uses it trains end to end."""
import math

from omegaconf import OmegaConf

from test_model import build
from test_presets import RUN, TINY, hydra_train


def lr_by_parameter(model, lr=1e-3):
    from fairseq.optim.composite import FairseqCompositeOptimizer

    root = OmegaConf.create({
        "common": {"tpu": False}, "optimization": {"lr": [lr]},
        "optimizer": {"_name": "composite", "dynamic_groups": True, "groups": {"default": {
            "lr_float": lr, "optimizer": {"_name": "adam"}, "lr_scheduler": {"_name": "fixed"}}}},
    })
    optimizer = FairseqCompositeOptimizer(root.optimizer, list(model.parameters()))
    return {id(p): group["lr"] for inner in optimizer.optimizers.values()
            for group in inner.param_groups for p in group["params"]}


def test_generator_parameters_get_the_scaled_lr():
    model = build(generator_lr_scale=3.0)
    lr_of = lr_by_parameter(model)
    generator_only = {name for name, _ in model.named_parameters() if name.split(".")[0] in ("generator", "generator_head")}
    assert generator_only and any(name.startswith("embeddings.") for name, _ in model.named_parameters())
    for name, p in model.named_parameters():
        expected = 3e-3 if name in generator_only else 1e-3  # shared embeddings, main model, heads: unscaled
        assert math.isclose(lr_of[id(p)], expected), name


def test_scale_one_and_fine_tuning_models_are_untagged():
    assert not any(hasattr(p, "optim_overrides") for p in build().parameters())
    assert not any(hasattr(p, "optim_overrides") for p in build(with_generator=False, generator_lr_scale=3.0).parameters())


def test_genlr_preset_trains_with_two_lrs(wiki_bin, tmp_path):
    # the preset's schedule lives in the composite group; RUN's top-level lr_scheduler keys do not apply
    run_args = [a for a in RUN if not a.startswith(("lr_scheduler.", "optimization.lr="))]
    group = "optimizer.groups.default"
    logs = hydra_train(
        "metro_cpu_small_genlr", wiki_bin, tmp_path, f"{group}.lr_float=0.002", f"{group}.lr_scheduler.warmup_updates=3",
        f"{group}.lr_scheduler.total_num_update=30", "optimization.lr=[0.002]", *TINY, run_args=run_args)
    assert sorted(logs) == [5, 10, 15, 20, 25, 30]
    assert float(logs[30]["loss"]) < float(logs[5]["loss"])
    lrs = sorted(float(v) for k, v in logs[10].items() if k.startswith("lr_"))
    assert len(lrs) == 2 and math.isclose(lrs[1], 3 * lrs[0], rel_tol=1e-3), logs[10]



def test_plain_optimizer_is_refused_with_one_line(wiki_bin, tmp_path):
    from conftest import run
    from test_end_to_end import train_cmd

    r = run(train_cmd(wiki_bin, tmp_path, 5, "--generator-lr-scale", "3"), check=False)
    last = (r.stdout + r.stderr).strip().splitlines()[-1]
    assert r.returncode != 0 and "--generator-lr-scale needs fairseq's composite optimizer" in last, last
    assert not list(tmp_path.glob("checkpoint*.pt"))
