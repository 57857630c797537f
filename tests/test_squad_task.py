"""Task ``squad``, criterion ``squad_span`` and the span head: the loss against a naive reference,
and real fairseq-train fine-tuning on real SQuAD questions with EM/F1 on validation."""
import json
import math
import sys

import pytest
import torch

from conftest import DOWNLOAD_DIR, run
from metro_fairseq.criterions.span_qa import span_loss_terms
from metro_fairseq.fairseq_log import read_log

TRAIN = [sys.executable, "-m", "fairseq_cli.train"]


def test_span_loss_matches_a_naive_reference():
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 2)
    padding = torch.zeros(3, 7, dtype=torch.bool)
    padding[1, 5:] = True
    padding[2, 3:] = True
    start, end = torch.tensor([2, 0, 1]), torch.tensor([4, 0, 2])
    expected = 0.0
    for b in range(3):
        for which, target in ((0, start[b]), (1, end[b])):
            row = [logits[b, t, which].item() for t in range(7) if not padding[b, t]]
            expected += (math.log(sum(math.exp(v) for v in row)) - row[target]) / 2
    terms = span_loss_terms(logits, padding, start, end)
    assert math.isclose(terms["loss"].item(), expected, rel_tol=1e-6)
    assert int(terms["start_correct"]) == sum(
        int(logits[b].masked_fill(padding[b].unsqueeze(-1), -1e9)[:, 0].argmax() == start[b]) for b in range(3))


@pytest.fixture(scope="module")
def squad_json(tmp_path_factory):
    out = tmp_path_factory.mktemp("squad")
    run([sys.executable, "scripts/fetch_squad.py", "--outdir", str(out), "--cache-dir", DOWNLOAD_DIR,
         "--train-questions", "200", "--dev-questions", "60", "--v2-stand-in", "0.33"])
    return out


def prepare(squad_json, wiki_bin, dest, version=""):
    run([sys.executable, "scripts/prepare_squad.py", "--train", str(squad_json / f"train-v1.1.200{version}.json"),
         "--valid", str(squad_json / f"dev-v1.1.60{version}.json"), "--spm-model", str(wiki_bin / "spm.model"),
         "--dict", str(wiki_bin / "dict.txt"), "--destdir", str(dest), "--max-length", "128", "--doc-stride", "64"])
    return dest


def squad_cmd(data, checkpoint, save_dir, *extra):
    return TRAIN + [
        str(data), "--user-dir", "metro_fairseq", "--task", "squad", "--criterion", "squad_span", "--arch", "metro_tiny",
        "--finetune-from-model", str(checkpoint), "--batch-size", "8", "--required-batch-size-multiple", "1",
        "--optimizer", "adam", "--lr", "1e-3", "--lr-scheduler", "polynomial_decay", "--warmup-updates", "5",
        "--total-num-update", "60", "--max-update", "60", "--max-epoch", "100", "--validate-interval-updates", "60",
        "--best-checkpoint-metric", "f1", "--maximize-best-checkpoint-metric", "--no-epoch-checkpoints",
        "--no-last-checkpoints", "--cpu", "--num-workers", "0", "--data-buffer-size", "0", "--log-format", "json",
        "--log-interval", "10", "--save-dir", str(save_dir), "--seed", "1", *extra,
    ]


def valid_stats(text):
    """The last validation's stats (subset valid) in a fairseq-train output, {name: float}."""
    return read_log(text.splitlines()).valid()[-1].stats


def test_finetune_squad_v1_logs_em_f1_and_writes_official_predictions(squad_json, wiki_bin, pretrained, tmp_path):
    data = prepare(squad_json, wiki_bin, tmp_path / "bin")
    _, exported = pretrained
    r = run(squad_cmd(data, exported, tmp_path / "ft"))
    out = r.stdout + r.stderr
    train_losses = [r["loss"] for r in read_log(out.splitlines()).train_inner()]
    assert train_losses[-1] < train_losses[0] - 0.3, train_losses
    stats = valid_stats(out)
    assert 0 <= stats["exact"] <= stats["f1"] <= 100
    predictions = json.loads((tmp_path / "ft" / "predictions.json").read_text())
    dev = json.loads((squad_json / "dev-v1.1.60.json").read_text())
    qids = {q["id"] for a in dev["data"] for p in a["paragraphs"] for q in p["qas"]}
    assert set(predictions) == qids and all(isinstance(v, str) for v in predictions.values())
    # the official-format evaluation of the written predictions gives what fairseq logged
    official = json.loads(run([sys.executable, "scripts/squad_eval.py", str(squad_json / "dev-v1.1.60.json"),
                               str(tmp_path / "ft" / "predictions.json")]).stdout)
    assert official["total"] == len(qids)
    assert math.isclose(official["exact"], stats["exact"], abs_tol=0.01)
    assert math.isclose(official["f1"], stats["f1"], abs_tol=0.01)
    assert (tmp_path / "ft" / "checkpoint_best.pt").exists()


def test_finetune_squad_v2_stand_in_predicts_no_answer(squad_json, wiki_bin, pretrained, tmp_path):
    data = prepare(squad_json, wiki_bin, tmp_path / "bin", ".v2")
    pretraining_checkpoint, _ = pretrained  # the generator and GDES delta are dropped on load
    r = run(squad_cmd(data, pretraining_checkpoint, tmp_path / "ft", "--version-2-with-negative", "--max-update", "20",
                      "--validate-interval-updates", "20", "--null-score-threshold", "-1000"))
    stats = valid_stats(r.stdout + r.stderr)
    predictions = json.loads((tmp_path / "ft" / "predictions.json").read_text())
    null_odds = json.loads((tmp_path / "ft" / "null_odds.json").read_text())
    # a threshold far below every null-odds value answers nothing: exactly the NoAns questions are right
    assert set(predictions.values()) == {""} and set(null_odds) == set(predictions)
    official = json.loads(run([sys.executable, "scripts/squad_eval.py", str(squad_json / "dev-v1.1.60.v2.json"),
                               str(tmp_path / "ft" / "predictions.json")]).stdout)
    assert official["NoAns_exact"] == 100.0 and official["HasAns_exact"] == 0.0
    assert math.isclose(stats["exact"], official["exact"], abs_tol=0.01) and "best_f1" in stats


def test_squad_configs_compose_and_train(squad_json, wiki_bin, pretrained, tmp_path):
    data = prepare(squad_json, wiki_bin, tmp_path / "bin")
    _, exported = pretrained
    for config in ("squad_v1", "squad_v2"):
        r = run([
            sys.executable, "-m", "fairseq_cli.hydra_train", "--config-dir", "metro_fairseq/config/finetuning",
            "--config-name", config, f"task.data={data}", f"checkpoint.finetune_from_model={exported}",
            f"checkpoint.save_dir={tmp_path / config}", "common.cpu=true", "common.fp16=false",
            "optimization.max_update=2", "dataset.batch_size=4", "dataset.num_workers=0", "dataset.data_buffer_size=0",
            "model.encoder_layers=3", "model.encoder_embed_dim=64", "model.encoder_ffn_embed_dim=256",
            "model.encoder_attention_heads=4", "model.relative_position_buckets=32", "common.log_format=json",
        ])
        out = r.stdout + r.stderr
        assert "f1" in read_log(out.splitlines()).valid()[-1], config
        groups = [ln for ln in out.splitlines() if "fairseq.optim.composite" in ln and "Group :" in ln]
        assert len(groups) == 5, config  # layer-wise decay 0.8: embeddings, 3 layers, heads


def test_missing_data_is_one_clear_line(tmp_path, pretrained):
    _, exported = pretrained
    r = run(squad_cmd(tmp_path, exported, tmp_path / "ft"), check=False)
    assert r.returncode != 0 and "prepare_squad.py" in r.stderr.strip().splitlines()[-1]
