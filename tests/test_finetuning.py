"""Export, fine-tuning with fairseq's stock sentence_prediction task, GLUE preparation, layer decay."""
import math
import os
import sys

import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.data import Dictionary, data_utils
from omegaconf import OmegaConf

from conftest import DOWNLOAD_DIR, REPO, run
from glue_fixtures import write_glue
from test_end_to_end import last_line, train_cmd
from test_model import build
from metro_fairseq.fairseq_log import read_log
from metro_fairseq.models.metro import MetroModel
from metro_fairseq.models.metro_config import MetroConfig

TRAIN = [sys.executable, "-m", "fairseq_cli.train"]
PREPARE = [sys.executable, "scripts/prepare_glue.py"]


def dictionary(wiki_bin):
    d = Dictionary.load(str(wiki_bin / "dict.txt"))
    d.add_symbol("<mask>")
    return d


def test_export_round_trip(pretrained, wiki_bin):
    source, exported = pretrained
    src, exp = checkpoint_utils.load_checkpoint_to_cpu(str(source)), torch.load(exported, weights_only=True)
    assert not any(k.startswith(("generator", "rtd_head", "clm_head")) or k == "embeddings.delta" for k in exp["model"])
    assert exp["cfg"]["model"]["encoder_layers"] == 3 and exp["last_optimizer_state"] is None
    d = dictionary(wiki_bin)
    full = MetroModel(MetroConfig(**{k: v for k, v in src["cfg"]["model"].items() if k != "_name"}), d, True, clm=True)
    full.load_state_dict(src["model"])
    assert full.embeddings.delta.abs().sum() > 0  # GDES really trained a delta
    main = MetroModel(MetroConfig(**{k: v for k, v in exp["cfg"]["model"].items() if k != "_name"}), d, False)
    main.load_state_dict(exp["model"])
    full.eval(), main.eval()
    tokens = torch.tensor([[d.bos()] + list(range(10, 40)) + [d.eos()]])
    assert torch.allclose(full(tokens)[0], main(tokens)[0], atol=1e-5)


def finetune_cmd(data, checkpoint, save_dir, *extra, arch_args=()):
    return TRAIN + [
        str(data), "--user-dir", "metro_fairseq", "--task", "sentence_prediction", "--criterion", "sentence_prediction",
        "--arch", "metro_tiny", *arch_args, "--finetune-from-model", str(checkpoint), "--init-token", "0",
        "--separator-token", "2", "--batch-size", "4", "--required-batch-size-multiple", "1", "--optimizer", "adam", "--lr", "1e-4", "--max-update", "6",
        "--no-save", "--cpu", "--num-workers", "0", "--data-buffer-size", "0", "--log-format", "json",
        "--save-dir", str(save_dir), *extra,
    ]


def valid_metrics(result):
    """The last validation's stats (subset valid) of a fairseq-train run, {name: float}."""
    return read_log((result.stdout + result.stderr).splitlines()).valid()[-1].stats


def test_prepare_glue_every_layout(glue_bin):
    for task in ("CoLA", "SST-2", "MRPC", "QQP", "STS-B", "MNLI", "QNLI", "RTE", "WNLI"):
        pair = task not in ("CoLA", "SST-2")
        assert (glue_bin / task / "input1").is_dir() == pair, task
        d = Dictionary.load(str(glue_bin / task / "input0" / "dict.txt"))
        for split in ("train", "valid"):
            ds = data_utils.load_indexed_dataset(str(glue_bin / task / "input0" / split), d)
            assert len(ds) == 4, (task, split)  # CoLA has no header: all four rows kept
    mnli = Dictionary.load(str(glue_bin / "MNLI" / "input0" / "dict.txt"))
    assert len(data_utils.load_indexed_dataset(str(glue_bin / "MNLI" / "input0" / "valid1"), mnli)) == 4
    labels = Dictionary.load(str(glue_bin / "MNLI" / "label" / "dict.txt"))
    assert {"entailment", "neutral", "contradiction"} <= set(labels.symbols)
    scores = (glue_bin / "STS-B" / "label" / "train.label").read_text().split()
    assert [float(s) for s in scores] == [0.0, 0.25, 0.5, 0.75]


def test_prepare_glue_names_the_bad_file(wiki_bin, tmp_path):
    write_glue(str(tmp_path / "glue"))
    os.remove(tmp_path / "glue" / "RTE" / "dev.tsv")
    args = ["--spm-model", str(wiki_bin / "spm.model"), "--dict", str(wiki_bin / "dict.txt"), "--destdir", str(tmp_path / "o")]
    r = run(PREPARE + ["--glue-dir", str(tmp_path / "glue"), "--tasks", "RTE", *args], check=False)
    assert r.returncode != 0 and last_line(r) == (
        f"prepare_glue: error: {tmp_path / 'glue' / 'RTE' / 'dev.tsv'} is missing (official GLUE layout expected)"
    )
    (tmp_path / "glue" / "QNLI" / "train.tsv").write_text("index\tquestion\n0\tonly two columns\n")
    r = run(PREPARE + ["--glue-dir", str(tmp_path / "glue"), "--tasks", "QNLI", *args], check=False)
    assert r.returncode != 0 and f"{tmp_path / 'glue' / 'QNLI' / 'train.tsv'}:2 has 2 columns" in last_line(r)


@pytest.mark.parametrize(
    "task,flags,metrics",
    [
        ("SST-2", ["--num-classes", "2"], {"accuracy"}),
        ("CoLA", ["--num-classes", "2", "--report-mcc"], {"accuracy", "mcc"}),
        ("MRPC", ["--num-classes", "2", "--report-acc-and-f1"], {"accuracy", "f1", "acc_and_f1"}),
        ("STS-B", ["--num-classes", "1", "--regression-target", "--report-pearson-and-spearman"],
         {"pearson", "spearman", "pearson_and_spearman"}),
    ],
)
def test_finetune_with_stock_sentence_prediction(task, flags, metrics, glue_bin, pretrained, tmp_path):
    source, exported = pretrained
    # the exported checkpoint and, for CoLA, the pretraining checkpoint itself (no export)
    checkpoint = source if task == "CoLA" else exported
    r = run(finetune_cmd(glue_bin / task, checkpoint, tmp_path, *flags))
    assert "Loaded checkpoint" in r.stdout + r.stderr
    found = valid_metrics(r)
    assert metrics <= set(found), found
    assert all(math.isfinite(float(found[m])) for m in metrics)


def test_finetune_on_real_reviews(pretrained, wiki_bin, tmp_path):
    _, exported = pretrained
    run([sys.executable, "scripts/fetch_review_data.py", "--outdir", str(tmp_path / "raw"), "--cache-dir", DOWNLOAD_DIR])
    run(PREPARE + ["--glue-dir", str(tmp_path / "raw"), "--spm-model", str(wiki_bin / "spm.model"),
                   "--dict", str(wiki_bin / "dict.txt"), "--destdir", str(tmp_path / "bin")])
    r = run(finetune_cmd(tmp_path / "bin" / "SST-2", exported, tmp_path / "ft", "--num-classes", "2", "--max-valid-steps", "5"))
    assert 0.0 <= float(valid_metrics(r)["accuracy"]) <= 100.0


def test_glue_results_median_over_seeds(glue_bin, pretrained, tmp_path):
    _, exported = pretrained
    best = {}
    for task, flags in (("SST-2", ["--num-classes", "2"]), ("CoLA", ["--num-classes", "2", "--report-mcc"])):
        for seed in (1, 2, 3):
            # a hand-made layout and scripts/sweep.py's run names
            name = f"{task}/lr1e-4_seed{seed}" if task == "SST-2" else f"glue/task_cola.lr_1e-4.seed_{seed}"
            run_dir = tmp_path / "runs" / name
            run_dir.mkdir(parents=True)
            r = run(finetune_cmd(glue_bin / task, exported, run_dir, *flags, "--seed", str(seed), "--max-update", "3",
                                 "--validate-interval-updates", "1", "--log-file", str(run_dir / "train.log")))
            metric = "mcc" if task == "CoLA" else "accuracy"
            valid = read_log((r.stdout + r.stderr).splitlines()).valid()
            assert len(valid) == 3 and read_log(run_dir / "train.log").valid() == valid
            best.setdefault(task, []).append(max(v[metric] for v in valid))
    table = run([sys.executable, "scripts/glue_results.py", str(tmp_path / "runs")]).stdout
    medians = {t: sorted(v)[1] for t, v in best.items()}
    assert f"| SST-2 | accuracy | {medians['SST-2']:.1f} | 3 |" in table
    assert f"| CoLA | mcc | {medians['CoLA']:.1f} | 3 |" in table
    assert f"| **average** | | **{(medians['SST-2'] + medians['CoLA']) / 2:.1f}** |" in table


def test_glue_results_needs_json_lines(tmp_path):
    run_dir = tmp_path / "runs" / "RTE" / "seed1"
    run_dir.mkdir(parents=True)
    (run_dir / "train.log").write_text(  # --log-format simple
        "epoch 001 | valid on 'valid' subset | loss 0.693 | nll_loss 0.693 | accuracy 52.7 | num_updates 10\n")
    r = run([sys.executable, "scripts/glue_results.py", str(tmp_path / "runs")], check=False)
    assert r.returncode != 0 and r.stderr.strip() == (
        f"glue_results: error: no fairseq JSON log lines in {run_dir / 'train.log'}: train with --log-format json "
        "(fairseq-hydra-train: common.log_format=json)")


def test_finetuning_configs_compose_and_train(glue_bin, pretrained, tmp_path):
    _, exported = pretrained
    # the architecture as the docs pass it: $(metro-export --show-args --format hydra MODEL)
    shown = run([sys.executable, "scripts/export_main_model.py", "--show-args", "--format", "hydra", str(exported)])
    tiny = shown.stdout.split()
    assert "++model.encoder_layers=3" in tiny and "++model.attention_type=standard" in tiny, tiny
    # the three shapes: single sentence with MCC, regression, three classes with two dev sets
    for config, task in (("cola", "CoLA"), ("sts_b", "STS-B"), ("mnli", "MNLI")):
        r = run([
            sys.executable, "-m", "fairseq_cli.hydra_train", "--config-dir", "metro_fairseq/config/finetuning",
            "--config-name", config, f"task.data={glue_bin / task}", f"checkpoint.finetune_from_model={exported}",
            f"checkpoint.save_dir={tmp_path / config}", "common.cpu=true", "common.fp16=false", "optimization.max_update=2",
            "dataset.batch_size=4", "dataset.num_workers=0", "dataset.data_buffer_size=0", *tiny,
            "common.log_format=json",
        ])
        subsets = read_log((r.stdout + r.stderr).splitlines()).subsets()
        assert subsets == (["valid", "valid1"] if config == "mnli" else ["valid"]), config


def test_missing_or_mismatched_checkpoint_fails(glue_bin, pretrained, tmp_path):
    r = run(finetune_cmd(glue_bin / "SST-2", tmp_path / "nope.pt", tmp_path, "--num-classes", "2"), check=False)
    assert r.returncode != 0 and "nope.pt" in last_line(r) and "begin training" not in r.stdout + r.stderr
    _, exported = pretrained
    r = run(finetune_cmd(glue_bin / "SST-2", exported, tmp_path, "--num-classes", "2", arch_args=["--encoder-layers", "2"]),
            check=False)
    assert r.returncode != 0
    assert "the checkpoint was trained with other architecture options" in last_line(r), last_line(r)
    shown = run([sys.executable, "scripts/export_main_model.py", "--show-args", str(exported)]).stdout
    assert "--arch metro_tiny --encoder-layers 3 --encoder-embed-dim 64" in shown


def composite_lrs(model, lr=1e-3):
    """Each parameter's lr in fairseq's composite optimizer with dynamic groups."""
    from fairseq.optim.composite import FairseqCompositeOptimizer

    root = OmegaConf.create({
        "common": {"tpu": False}, "optimization": {"lr": [lr]},
        "optimizer": {"_name": "composite", "dynamic_groups": True, "groups": {"default": {
            "lr_float": lr, "optimizer": {"_name": "adam"}, "lr_scheduler": {"_name": "fixed"}}}},
    })
    optimizer = FairseqCompositeOptimizer(root.optimizer, list(model.parameters()))
    lr_of = {id(p): group["lr"] for inner in optimizer.optimizers.values() for group in inner.param_groups
             for p in group["params"]}
    return {name: lr_of[id(p)] for name, p in model.named_parameters()}


def test_layer_lr_decay_through_composite_optimizer():
    model = build(with_generator=False, layer_lr_decay=0.8)
    model.register_classification_head("head", num_classes=2)
    lr_of = composite_lrs(model)
    top = len(model.encoder.layers) + 1  # 3 layers: embeddings 0.8^4, layer i 0.8^(3-i), heads 1
    for name, p in model.named_parameters():
        if name.startswith("encoder.layers."):
            depth = int(name.split(".")[2]) + 1
        elif name.startswith(("embeddings.", "encoder.embed_", "encoder.relative_bias")):
            depth = 0
        else:
            depth = top
        assert math.isclose(lr_of[name], 1e-3 * 0.8 ** (top - depth)), name
    assert math.isclose(lr_of["classification_heads.head.out_proj.weight"], 1e-3)
    plain = build(with_generator=False)
    assert not any(hasattr(p, "optim_overrides") for p in plain.parameters())


@pytest.mark.parametrize("decay", [1.0, 0.8])
def test_relative_bias_lr_scale_multiplies_its_layer_decay(decay):
    model = build(with_generator=False, layer_lr_decay=decay, relative_bias_lr_scale=30.0)
    model.register_classification_head("head", num_classes=2)
    lrs = composite_lrs(model)
    bias = [n for n in lrs if n.startswith("encoder.relative_bias.")]
    assert bias, "the tiny model has a relative bias"
    for name in bias:  # depth 0: decay^(L + 1), then the bias's own scale
        assert math.isclose(lrs[name], 1e-3 * decay ** (len(model.encoder.layers) + 1) * 30), name
    assert math.isclose(lrs["embeddings.weight"], 1e-3 * decay ** (len(model.encoder.layers) + 1))
    assert math.isclose(lrs["classification_heads.head.out_proj.weight"], 1e-3)


@pytest.mark.parametrize("pooling", ["first", "mean"])
def test_classifier_pooling_feeds_the_head(pooling):
    model = build(with_generator=False, classifier_pooling=pooling)
    model.register_classification_head("head", num_classes=3)
    model.eval()
    tokens = torch.tensor([[0, 7, 8, 9, 2], [0, 7, 2, 1, 1]])  # 1 = <pad>
    states = model.encode(tokens)
    head = model.classification_heads["head"]
    if pooling == "first":
        pooled = states[:, 0]
    else:  # naive: average each row's non-padding states
        pooled = torch.stack([states[0, :5].mean(0), states[1, :3].mean(0)])
    expected = head.out_proj(torch.tanh(head.dense(pooled)))
    logits, _ = model(tokens, classification_head_name="head")
    torch.testing.assert_close(logits, expected)


def test_layer_decay_block_from_the_docs_trains(glue_bin, pretrained, tmp_path):
    """docs/finetuning.md's composite-optimizer block, pasted into the RTE config, gives one lr per depth."""
    page = open(os.path.join(REPO, "docs", "finetuning.md"), encoding="utf-8").read()
    block = page.split("## Layer-wise learning-rate decay")[1].split("```yaml\n")[1].split("```")[0]
    config = open(os.path.join(REPO, "metro_fairseq/config/finetuning/rte.yaml"), encoding="utf-8").read()
    start, end = config.index("optimizer:\n"), config.index("optimization:\n")
    (tmp_path / "rte_decay.yaml").write_text(config[:start] + block + "\n" + config[end:])
    _, exported = pretrained
    r = run([
        sys.executable, "-m", "fairseq_cli.hydra_train", "--config-dir", str(tmp_path), "--config-name", "rte_decay",
        f"task.data={glue_bin / 'RTE'}", f"checkpoint.finetune_from_model={exported}",
        f"checkpoint.save_dir={tmp_path / 'out'}", "common.cpu=true", "common.fp16=false", "optimization.max_update=2",
        "dataset.batch_size=4", "dataset.num_workers=0", "dataset.data_buffer_size=0", "model.encoder_layers=3",
        "model.encoder_embed_dim=64", "model.encoder_ffn_embed_dim=256", "model.encoder_attention_heads=4",
        "model.relative_position_buckets=32", "model.layer_lr_decay=0.8",
    ])
    groups = [ln for ln in (r.stdout + r.stderr).splitlines() if "fairseq.optim.composite" in ln and "Group :" in ln]
    lrs = sorted(float(ln.split("'lr': [")[1].split("]")[0]) for ln in groups)
    assert len(lrs) == 5  # embeddings, 3 layers, heads
    assert all(math.isclose(lr, 2e-5 * 0.8 ** k) for lr, k in zip(lrs, [4, 3, 2, 1, 0]))


def test_train_composite_gives_flags_layer_decay(glue_bin, pretrained, tmp_path):
    """scripts/train_composite.py: a fairseq-train command line with --layer-lr-decay gets one lr per depth,
    each on the flags' polynomial schedule."""
    _, exported = pretrained
    cmd = finetune_cmd(glue_bin / "RTE", exported, tmp_path, "--num-classes", "2", "--layer-lr-decay", "0.8",
                       "--lr-scheduler", "polynomial_decay", "--warmup-updates", "2", "--total-num-update", "8",
                       "--log-interval", "1")
    r = run([sys.executable, "scripts/train_composite.py", *cmd[len(TRAIN):]])
    out = r.stdout + r.stderr
    groups = [ln for ln in out.splitlines() if "fairseq.optim.composite" in ln and "Group :" in ln]
    lrs = sorted(float(ln.split("'lr': [")[1].split("]")[0]) for ln in groups)
    assert len(lrs) == 5  # embeddings, 3 layers, heads
    assert all(math.isclose(lr, 1e-4 * 0.8 ** k) for lr, k in zip(lrs, [4, 3, 2, 1, 0]))
    inner = read_log(out.splitlines()).train_inner()
    for record in inner:
        u = record.num_updates
        shape = u / 2 if u <= 2 else (8 - u) / 6  # warm-up to update 2, then linear to 0 at update 8
        logged = sorted(v for k, v in record.stats.items() if k.startswith("lr_"))
        assert len(logged) == 5 and all(math.isclose(a, b * shape, rel_tol=1e-4) for a, b in zip(logged, lrs)), record.raw
    assert [r.num_updates for r in inner] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("flags,message", [
    (["--optimizer", "composite", "--lr", "1e-4"], "the optimizer is already composite; use fairseq-train"),
    (["--optimizer", "adam", "--lr", "1e-4,2e-4"], "has several values; give one"),
])
def test_train_composite_refuses(flags, message, tmp_path):
    r = run([sys.executable, "scripts/train_composite.py", str(tmp_path), "--task", "sentence_prediction", "--criterion",
             "sentence_prediction", "--arch", "roberta_base", "--cpu", *flags], check=False)
    assert r.returncode != 0 and message in last_line(r), last_line(r)
