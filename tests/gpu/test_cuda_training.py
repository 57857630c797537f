"""GPU-only paths (skipped without CUDA): fairseq's fp16 loss scaling, memory-efficient fp16, bf16,
memory-efficient bf16, and fairscale FSDP with activation checkpointing, each training the tiny model
on the real corpus."""
import sys

import pytest
import torch

from conftest import USER_DIR, run
from metro_fairseq.fairseq_log import read_log

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def train(data, save_dir, *extra):
    result = run([
        sys.executable, "-m", "fairseq_cli.train", str(data), "--user-dir", USER_DIR,
        "--task", "metro_pretraining", "--criterion", "metro", "--arch", "metro_tiny", "--clm",
        "--tokens-per-sample", "64", "--batch-size", "16", "--optimizer", "adam", "--lr", "2e-3",
        "--lr-scheduler", "polynomial_decay", "--warmup-updates", "5", "--total-num-update", "60",
        "--max-update", "60", "--log-interval", "10", "--log-format", "json", "--save-dir", str(save_dir),
        "--no-epoch-checkpoints", "--disable-validation", "--num-workers", "0", *extra,
    ])
    out = result.stdout + result.stderr
    losses = [record["loss"] for record in read_log(out.splitlines()).train_inner()]
    assert len(losses) >= 3 and losses[-1] < losses[0], out[-3000:]
    return out


@pytest.mark.parametrize("precision", [["--fp16"], ["--fp16", "--memory-efficient-fp16"], ["--bf16"],
                                       ["--bf16", "--memory-efficient-bf16"]], ids=lambda flags: "+".join(flags))
def test_mixed_precision_training(precision, wiki_bin, tmp_path):
    train(wiki_bin, tmp_path, *precision)


def test_fully_sharded_with_activation_checkpointing(wiki_bin, tmp_path):
    out = train(wiki_bin, tmp_path, "--fp16", "--ddp-backend", "fully_sharded", "--checkpoint-activations")
    assert "FullyShardedDataParallel" in out
    assert (tmp_path / "checkpoint_last.pt").exists()
