"""Each recipe preset loads through fairseq-hydra-train and trains (scaled down) with falling loss."""
import sys

import pytest

from conftest import BF16_LOSS_TOLERANCE, REPO, run
from test_end_to_end import train_cmd, train_logs

TINY = [
    "model.encoder_layers=2", "model.encoder_embed_dim=64", "model.encoder_ffn_embed_dim=128",
    "model.encoder_attention_heads=4", "model.generator_layers=1",
]
RUN = [
    "common.cpu=true", "common.fp16=false", "common.log_format=json", "common.log_interval=5", "common.seed=3",
    "task.tokens_per_sample=64", "dataset.batch_size=8", "dataset.num_workers=0", "dataset.disable_validation=true",
    "optimization.update_freq=[1]", "optimization.max_update=30", "optimization.lr=[0.002]",
    "lr_scheduler.warmup_updates=3", "lr_scheduler.total_num_update=30", "checkpoint.save_interval_updates=0",
    "dataset.data_buffer_size=0",
]
PRESET_EXTRA = {
    "electra_base": ["model.generator_embed_dim=32", "model.generator_ffn_embed_dim=64",
                     "model.generator_attention_heads=2"],
    "metro_large": [],
    "metro_base": [],
    "cocolm_base": [],
    "debertav3_base": [],
    "debertav3_xsmall": [],
    "metro_cpu_small": [],
    "metro_cpu_small_gdes": [],
}
EXPECTED_KEYS = {
    "electra_base": set(),
    "metro_base": {"clm_loss", "clm_acc"},
    "metro_large": {"clm_loss", "clm_acc"},
    "cocolm_base": {"clm_loss", "clm_acc", "scl_loss", "scl_acc"},
    "debertav3_base": set(),
    "debertav3_xsmall": set(),
    "metro_cpu_small": {"clm_loss", "clm_acc"},
    "metro_cpu_small_gdes": {"clm_loss", "clm_acc"},
    "vega_phase2": {"scl_loss", "scl_acc"},
    "metro_multilingual_base": {"clm_loss", "clm_acc"},
}


def hydra_train(preset, data, save_dir, *overrides, output=False, run_args=tuple(RUN)):
    cmd = [
        sys.executable, "-m", "fairseq_cli.hydra_train", "--config-dir", "metro_fairseq/config/pretraining",
        "--config-name", preset, f"task.data={data}", f"checkpoint.save_dir={save_dir}", *run_args, *overrides,
    ]
    result = run(cmd, cwd=REPO)
    logs = train_logs(result.stdout + result.stderr)
    return (logs, result.stdout + result.stderr) if output else logs


def check_falls(logs, preset):
    assert sorted(logs) == [5, 10, 15, 20, 25, 30], preset
    assert float(logs[30]["loss"]) < float(logs[5]["loss"]), preset
    optional = {"clm_loss", "clm_acc", "scl_loss", "scl_acc"}
    assert optional & set(logs[30]) == EXPECTED_KEYS[preset], preset


@pytest.mark.parametrize("preset", sorted(PRESET_EXTRA))
def test_preset_trains_in_fp32_and_bf16(preset, wiki_bin, tmp_path):
    """fairseq's Trainer casts the model to bf16 (common.bf16=true); the same seed's fp32 run is the
    reference. The bf16 run stops at update 10 (same lr schedule): CPUs without AVX512-BF16 emulate
    bf16 matmuls about 10x slower than fp32."""
    fp32 = hydra_train(preset, wiki_bin, tmp_path / "fp32", *TINY, *PRESET_EXTRA[preset])
    bf16 = hydra_train(preset, wiki_bin, tmp_path / "bf16", *TINY, *PRESET_EXTRA[preset], "common.bf16=true",
                       "optimization.max_update=10")
    check_falls(fp32, preset)
    assert sorted(bf16) == [5, 10] and float(bf16[10]["loss"]) < float(bf16[5]["loss"]), preset
    for step in bf16:
        low, ref = float(bf16[step]["loss"]), float(fp32[step]["loss"])
        assert abs(low - ref) <= BF16_LOSS_TOLERANCE * ref, (preset, step, low, ref)


def test_vega_phase2_continues_from_phase1(wiki_bin, tmp_path):
    # phase 1: RTD only (metro_tiny, disentangled attention as the preset's model); phase 2 adds the
    # dropout-view contrastive head on top of it
    run(train_cmd(wiki_bin, tmp_path / "phase1", 10, "--disable-validation", "--attention-type", "disentangled"))
    logs = hydra_train(
        "vega_phase2", wiki_bin, tmp_path / "phase2",
        f"checkpoint.finetune_from_model={tmp_path / 'phase1' / 'checkpoint_last.pt'}",
        "model.encoder_layers=3", "model.encoder_embed_dim=64", "model.encoder_ffn_embed_dim=256",
        "model.encoder_attention_heads=4", "model.generator_layers=1",
    )
    check_falls(logs, "vega_phase2")


def test_multilingual_preset_trains_on_real_languages(help_bin, tmp_path):
    """LibreOffice Help in en, de, ru (the session's multilingual fixture), languages sampled at alpha 0.3."""
    dest, _ = help_bin
    logs, out = hydra_train("metro_multilingual_base", dest, tmp_path, *TINY, output=True)
    check_falls(logs, "metro_multilingual_base")
    assert "multilingual data: 3 languages de,en,ru; ignored directories: notes" in out
    assert "train: language sampling with alpha 0.3" in out

