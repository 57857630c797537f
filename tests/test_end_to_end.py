"""Real fairseq-preprocess + fairseq-train runs of metro_tiny on the (cut-down) demo corpus."""
import json
import math
import os
import shutil
import sys

import pytest

from conftest import REPO, USER_DIR, run
from metro_fairseq.fairseq_log import read_log

TRAIN = [sys.executable, "-m", "fairseq_cli.train"]


def train_cmd(data, save_dir, max_update, *extra, user_dir=USER_DIR):
    return TRAIN + [
        str(data), "--user-dir", user_dir, "--task", "metro_pretraining", "--criterion", "metro",
        "--arch", "metro_tiny", "--tokens-per-sample", "64", "--batch-size", "8", "--seed", "7",
        "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--adam-eps", "1e-6", "--lr", "2e-3",
        "--lr-scheduler", "polynomial_decay", "--warmup-updates", "5", "--total-num-update", "60",
        "--clip-norm", "2.0", "--max-update", str(max_update), "--log-interval", "5", "--log-format", "json",
        "--save-dir", str(save_dir), "--save-interval-updates", "15", "--no-epoch-checkpoints",
        "--max-valid-steps", "4", "--cpu", "--num-workers", "0", "--data-buffer-size", "0", *extra,
    ]


def train_logs(stdout_and_err: str):
    """The per-interval training stats fairseq prints as JSON, {num_updates: {name: float}}."""
    return read_log(stdout_and_err.splitlines()).by_update()


@pytest.fixture(scope="module")
def straight_run(wiki_bin, tmp_path_factory):
    save = tmp_path_factory.mktemp("straight")
    r = run(train_cmd(wiki_bin, save, 45, "--log-file", str(save / "train.log")))
    return save, train_logs(r.stdout + r.stderr)


def test_losses_fall(straight_run):
    _, logs = straight_run
    assert sorted(logs) == [5, 10, 15, 20, 25, 30, 35, 40, 45]
    first, last = logs[5], logs[45]
    assert float(last["loss"]) < float(first["loss"]) - 3
    assert float(last["mlm_loss"]) < float(first["mlm_loss"])
    # RTD beats guessing "all original" once trained a little
    assert float(last["rtd_loss"]) < float(first["rtd_loss"])
    assert 0.10 < float(last["replace_rate"]) < 0.16
    for key in ("mlm_acc", "rtd_acc", "rtd_precision", "rtd_recall", "ppl"):
        assert key in last


def test_resume_gives_identical_losses(straight_run, wiki_bin, tmp_path):
    save, logs = straight_run
    run(train_cmd(wiki_bin, tmp_path, 15))
    resumed = run(train_cmd(wiki_bin, tmp_path, 45))
    assert "Loaded checkpoint" in resumed.stdout + resumed.stderr
    again = train_logs(resumed.stdout + resumed.stderr)
    assert sorted(again) == [20, 25, 30, 35, 40, 45]
    for step in again:
        for key in ("loss", "mlm_loss", "rtd_loss", "rtd_acc", "gnorm"):
            assert again[step][key] == logs[step][key], (step, key)


def test_training_report_and_plot(straight_run, tmp_path):
    save, logs = straight_run
    png = tmp_path / "curves.png"
    r = run([sys.executable, "scripts/training_report.py", "--log", str(save / "train.log"), "--plot", str(png)])
    assert f"| RTD accuracy | {float(logs[5]['rtd_acc']):.4f} | {float(logs[45]['rtd_acc']):.4f} |" in r.stdout
    assert "all-original baseline accuracy" in r.stdout and "validation at update 45" in r.stdout
    cos = f"| token-state cosine (collapse indicator) | {float(logs[5]['token_cos']):.3f} | {float(logs[45]['token_cos']):.3f} |"
    assert cos in r.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20000


def test_training_report_warns_about_collapsed_states(tmp_path):
    def line(n, cos):  # fairseq's train_inner JSON in a --log-file
        return json.dumps({"epoch": 1, "update": n / 900, "loss": "30.1", "mlm_loss": "9.6", "rtd_loss": "0.59",
                           "ppl": "800", "mlm_acc": "0.05", "rtd_acc": "0.858", "replace_rate": "0.142",
                           "rtd_precision": "0", "rtd_recall": "0", "token_cos": f"{cos:g}", "num_updates": str(n),
                           "lr": "0.001"}) + "\n"

    for cos, warned in ((0.35, False), (0.97, True)):
        log = tmp_path / f"cos{cos}.log"
        log.write_text(line(50, 0.2) + line(100, cos))
        r = run([sys.executable, "scripts/training_report.py", "--log", str(log)])
        assert f"| token-state cosine (collapse indicator) | 0.200 | {cos:.3f} |" in r.stdout
        assert ("warning: the main model's token states are nearly parallel" in r.stdout) == warned
        prior = -(0.142 * math.log2(0.142) + 0.858 * math.log2(0.858))  # what knowing only the rate scores
        assert f"| RTD prior: H(replace rate) (bits) | {prior:.4f} | {prior:.4f} |" in r.stdout


def test_training_report_needs_json_lines(tmp_path):
    log = tmp_path / "simple.log"
    log.write_text("epoch 001:     50 / 9 loss=30.1, mlm_loss=9.6, num_updates=50, lr=0.001\n")  # --log-format simple
    r = run([sys.executable, "scripts/training_report.py", "--log", str(log)], check=False)
    assert r.returncode != 0 and r.stderr.strip() == (
        f"training_report: error: no fairseq JSON log lines in {log}: train with --log-format json "
        "(fairseq-hydra-train: common.log_format=json)")


def test_checkpoint_loads_with_weights_only_loader(straight_run):
    save, _ = straight_run
    code = (
        "import torch\nfrom metro_fairseq import plugin\nplugin.install()\n"
        f"s = torch.load({str(save / 'checkpoint_last.pt')!r}, weights_only=True)\n"
        "m = s['cfg']['model']\n"
        "assert m['_name'] == 'metro_tiny' and m['encoder_layers'] == 3 and m['relative_position_buckets'] == 32\n"
        "assert 'generator.layers.0.fc1.weight' in s['model']\n"
        "print('ok', s['optimizer_history'][-1]['num_updates'])\n"
    )
    assert run([sys.executable, "-c", code]).stdout.strip().endswith("ok 45")


def test_checkpoint_shim_admits_argparse_namespace(tmp_path):
    """Older fairseq checkpoints keep args as a Namespace; the plugin (once installed) registers it as safe."""
    path = tmp_path / "legacy.pt"
    save = f"import argparse, torch; torch.save({{'args': argparse.Namespace(arch='x')}}, {str(path)!r})"
    run([sys.executable, "-c", save])
    load = f"torch.load({str(path)!r}, weights_only=True).get('args')"
    plain = run([sys.executable, "-c", "import torch; " + load], check=False)
    assert plain.returncode != 0 and "Namespace" in plain.stderr
    install = "from metro_fairseq import plugin; plugin.install()"
    shimmed = run([sys.executable, "-c", f"import torch; {install}; print({load}.arch)"])
    assert shimmed.stdout.strip() == "x"


def test_user_dir_from_repo_root_and_installed_package(wiki_bin, tmp_path):
    installed = run([sys.executable, "-c", "import os, metro_fairseq; print(os.path.dirname(metro_fairseq.__file__))"])
    for i, user_dir in enumerate(["metro_fairseq", installed.stdout.strip()]):
        r = run(train_cmd(wiki_bin, tmp_path / str(i), 2, "--disable-validation", user_dir=user_dir), cwd=REPO)
        assert "done training" in r.stdout + r.stderr
        assert (tmp_path / str(i) / "checkpoint_last.pt").exists()


def last_line(result):
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


@pytest.mark.parametrize(
    "case,expected",
    [
        ("missing_dir", "does not exist: binarize your corpus"),
        ("missing_dict", "dict.txt is missing"),
        ("tokens_per_sample", "--tokens-per-sample 600 exceeds --max-positions 512"),
        ("deep_generator", "pass --allow-deep-generator"),
        ("mask_prob", "--mask-prob 1.5 must lie strictly between 0 and 1"),
    ],
)
def test_bad_input_fails_before_training_with_one_line(case, expected, wiki_bin, tmp_path):
    data, extra = wiki_bin, []
    if case == "missing_dir":
        data = tmp_path / "nowhere"
    elif case == "missing_dict":
        data = tmp_path / "nodict"
        shutil.copytree(wiki_bin, data)
        os.remove(data / "dict.txt")
    elif case == "tokens_per_sample":
        extra = ["--tokens-per-sample", "600"]
    elif case == "deep_generator":
        extra = ["--generator-layers", "3"]
    elif case == "mask_prob":
        extra = ["--mask-prob", "1.5"]
    r = run(train_cmd(data, tmp_path / "save", 5, *extra), check=False)
    assert r.returncode != 0
    assert expected in last_line(r), last_line(r)
    assert "begin training" not in r.stdout + r.stderr


def test_resume_with_other_dictionary_is_refused(straight_run, wiki_text, tmp_path):
    save, _ = straight_run
    other = tmp_path / "other-bin"
    run([
        sys.executable, "scripts/prepare_corpus.py", "--train", str(wiki_text["valid"]),
        "--valid", str(wiki_text["valid"]), "--destdir", str(other), "--vocab-size", "1000", "--workers", "1",
    ])
    resume = tmp_path / "resume"
    shutil.copytree(save, resume)
    r = run(train_cmd(other, resume, 50), check=False)
    assert r.returncode != 0
    assert "does not match the one the checkpoint was trained with" in last_line(r)
    assert "begin training" not in r.stdout + r.stderr


def test_prepare_corpus_rejects_empty_text(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n\t\n")
    r = run([sys.executable, "scripts/prepare_corpus.py", "--train", str(empty), "--valid", str(empty),
             "--destdir", str(tmp_path / "out")], check=False)
    assert r.returncode != 0
    assert last_line(r) == (
        f"prepare_corpus: error: training file {empty} is empty or only whitespace: give it text, one sentence per line"
    )
