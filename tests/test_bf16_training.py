"""bf16 through fairseq's own Trainer on CPU: ``fairseq-train --bf16`` (fairseq's parser would force
``--tpu``; the plugin's shim undoes that), ``--memory-efficient-bf16``, exact resume, and fine-tuning
from a bf16 checkpoint. The presets through ``fairseq-hydra-train common.bf16=true``: test_presets.py.

Each bf16 run is compared with the fp32 run of the same seed: same batches, same replacement draws
(the task seeds each update), so the curves differ only by rounding."""
import math
import sys

import pytest
import torch
from fairseq import options

from metro_fairseq import plugin

plugin.install()  # the patches, before the parses below
from conftest import BF16_LOSS_TOLERANCE, run
from test_end_to_end import train_cmd, train_logs
from test_finetuning import finetune_cmd, valid_metrics
from test_squad_task import prepare as prepare_squad
from test_squad_task import squad_cmd, squad_json, valid_stats  # noqa: F401  (squad_json is a fixture)

# standard attention, tied embeddings, weighted CLM, crop-view SCL, and a temperature release that
# fires mid-run (release_bits < 0: the generator's loss within 1.7 bits above the unigram entropy)
RELEASE_RUN = ("--disable-validation", "--clm", "--scl-view", "crop", "--sampling-temperature-start", "3",
               "--sampling-temperature-release-bits=-1.7", "--sampling-temperature-anneal-updates", "10")
# disentangled attention, GDES, the exact copy-mixture CLM, dropout-view SCL, a fixed anneal
DEBERTA_RUN = ("--disable-validation", "--clm", "--clm-form", "mixture", "--scl-view", "dropout",
               "--attention-type", "disentangled", "--embedding-sharing", "gdes",
               "--sampling-temperature-start", "2", "--sampling-temperature-anneal-updates", "20")
# separate tables, no CLM or SCL
ELECTRA_RUN = ("--disable-validation", "--embedding-sharing", "none")


def parse(*flags):
    return options.parse_args_and_arch(options.get_training_parser(), ["/data", "--task", "masked_lm", "--arch", "roberta_base", *flags])


def test_bf16_flags_no_longer_mean_tpu():
    assert (parse("--bf16").bf16, parse("--bf16").tpu) == (True, False)
    assert (parse("--memory-efficient-bf16").bf16, parse("--memory-efficient-bf16").tpu) == (True, False)
    assert parse("--bf16", "--tpu").tpu and parse("--tpu").tpu  # an explicit --tpu keeps fairseq's meaning
    assert not parse().tpu and not parse().bf16


def pretrain(data, save_dir, updates, *flags):
    result = run(train_cmd(data, save_dir, updates, *flags))
    return train_logs(result.stdout + result.stderr), result.stdout + result.stderr


def release_update(save_dir):
    state = torch.load(save_dir / "checkpoint_last.pt", weights_only=False)["model"]
    return int(state["sampling_temperature.release_update"]) if bool(state["sampling_temperature.released"]) else None


def assert_tracks(bf16, fp32, updates):
    assert sorted(bf16) == sorted(fp32) == list(range(5, updates + 1, 5))
    for step in bf16:
        for key in ("loss", "mlm_loss", "rtd_loss"):
            low, ref = float(bf16[step][key]), float(fp32[step][key])
            assert math.isfinite(low) and abs(low - ref) <= BF16_LOSS_TOLERANCE * ref, (step, key, low, ref)
    assert float(bf16[updates]["loss"]) < float(bf16[5]["loss"]) - 3


@pytest.fixture(scope="module")
def release_runs(wiki_bin, tmp_path_factory):
    dirs = {p: tmp_path_factory.mktemp(f"release-{p}") for p in ("fp32", "bf16")}
    logs = {"fp32": pretrain(wiki_bin, dirs["fp32"], 30, *RELEASE_RUN)[0]}
    logs["bf16"], out = pretrain(wiki_bin, dirs["bf16"], 30, *RELEASE_RUN, "--bf16")
    assert "'bf16': True" in out and "'tpu': False" in out
    return dirs, logs


def test_bf16_tracks_fp32_and_releases_the_temperature_at_the_same_update(release_runs):
    dirs, logs = release_runs
    assert_tracks(logs["bf16"], logs["fp32"], 30)
    assert release_update(dirs["bf16"]) == release_update(dirs["fp32"]) is not None
    assert 20 < release_update(dirs["fp32"]) < 30  # it fired during the run, after the resume point below
    assert float(logs["bf16"][30]["sample_temp"]) < 3.0 == float(logs["bf16"][5]["sample_temp"])


@pytest.mark.parametrize("flags,precision", [(DEBERTA_RUN, "--bf16"), (ELECTRA_RUN, "--memory-efficient-bf16")],
                         ids=["disentangled-gdes-mixture-dropout", "memory-efficient-none"])
def test_bf16_tracks_fp32(flags, precision, wiki_bin, tmp_path):
    fp32, _ = pretrain(wiki_bin, tmp_path / "fp32", 20, *flags)
    bf16, _ = pretrain(wiki_bin, tmp_path / "bf16", 20, *flags, precision)
    assert_tracks(bf16, fp32, 20)


def test_bf16_resume_reproduces_the_uninterrupted_run(release_runs, wiki_bin, tmp_path):
    """The fp32 master weights travel in the checkpoint (fairseq_patches/master_weights_in_checkpoints.py); without them
    the resumed run drifts (seen: loss 39.34 against 39.14 five updates after the resume)."""
    dirs, logs = release_runs
    pretrain(wiki_bin, tmp_path, 20, *RELEASE_RUN, "--bf16")
    resumed, out = pretrain(wiki_bin, tmp_path, 30, *RELEASE_RUN, "--bf16")
    assert "Loaded checkpoint" in out and sorted(resumed) == [25, 30]
    for step in resumed:
        for key in ("loss", "mlm_loss", "rtd_loss", "clm_loss", "scl_loss", "sample_temp", "gnorm"):
            assert resumed[step][key] == logs["bf16"][step][key], (step, key)
    assert release_update(tmp_path) == release_update(dirs["bf16"])


@pytest.mark.parametrize("precision", [["--bf16"], []], ids=["bf16", "fp32"])
def test_bf16_checkpoint_finetunes_sentence_prediction(precision, release_runs, glue_bin, tmp_path):
    dirs, _ = release_runs
    r = run(finetune_cmd(glue_bin / "SST-2", dirs["bf16"] / "checkpoint_last.pt", tmp_path, "--num-classes", "2",
                         *precision))
    assert "Loaded checkpoint" in r.stdout + r.stderr
    assert 0.0 <= float(valid_metrics(r)["accuracy"]) <= 100.0


@pytest.mark.parametrize("precision", [["--bf16"], []], ids=["bf16", "fp32"])
def test_bf16_checkpoint_finetunes_squad(precision, release_runs, squad_json, wiki_bin, tmp_path):  # noqa: F811
    dirs, _ = release_runs
    data = prepare_squad(squad_json, wiki_bin, tmp_path / "bin")
    short = ["--max-update", "5", "--total-num-update", "5", "--validate-interval-updates", "5"]
    r = run(squad_cmd(data, dirs["bf16"] / "checkpoint_last.pt", tmp_path / "ft", *short, *precision))
    stats = valid_stats(r.stdout + r.stderr)
    assert math.isfinite(stats["loss"]) and 0.0 <= stats["f1"] <= 100.0
