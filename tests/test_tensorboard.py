"""fairseq-train --tensorboard-logdir carries the METRO metrics into TensorBoard's event files."""
import math

import pytest

from conftest import run
from test_end_to_end import train_cmd

event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator", reason="pip install -e '.[tensorboard]'"
)

# the generator's loss is mlm_loss; clm_loss/clm_acc need --clm; token_cos and sample_temp are always logged
METRO_SCALARS = ("loss", "mlm_loss", "mlm_acc", "rtd_loss", "rtd_acc", "replace_rate", "rtd_precision", "rtd_recall",
                 "token_cos", "sample_temp", "clm_loss", "clm_acc", "ppl")


def scalars(logdir):
    """{tag: {step: value}} of one fairseq TensorBoard writer folder (train_inner, train, valid)."""
    acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def test_metro_metrics_reach_tensorboard(wiki_bin, tmp_path):
    logdir = tmp_path / "tb"
    run(train_cmd(wiki_bin, tmp_path / "ckpt", 4, "--clm", "--no-save", "--log-interval", "2",
                  "--tensorboard-logdir", str(logdir)))
    # fairseq writes one folder per stats tag: per log interval, per epoch, per validation
    assert {p.name for p in logdir.iterdir()} >= {"train_inner", "train", "valid"}
    inner = scalars(logdir / "train_inner")
    for name in METRO_SCALARS:
        assert sorted(inner.get(name, {})) == [2, 4], name
        assert all(math.isfinite(v) for v in inner[name].values()), (name, inner[name])
    assert 0 < inner["sample_temp"][4] and 0 < inner["token_cos"][4] < 1
    assert 0 <= inner["rtd_recall"][4] <= 1 and 0.05 < inner["replace_rate"][4] < 0.2
    for tag in ("train", "valid"):
        last = scalars(logdir / tag)
        for name in METRO_SCALARS:
            assert list(last.get(name, {})) == [4], (tag, name)
            assert math.isfinite(last[name][4]), (tag, name)
