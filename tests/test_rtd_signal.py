"""RTD's gain over its prior (logged as rtd_gain) and the one warning when RTD has no signal."""
import logging
import math

import pytest
import torch
from fairseq import metrics

from conftest import run
from metro_fairseq.criterions import metro as metro_criterion
from metro_fairseq.rtd_signal import NoSignalWatch
from test_end_to_end import train_cmd

WARNING = "RTD has had no signal"
HOT_START = ["--sampling-temperature-start", "3", "--sampling-temperature-release-bits", "0.5",
             "--sampling-temperature-anneal-updates", "500"]


def warnings_in(caplog):
    return [r for r in caplog.records if WARNING in r.getMessage()]


def test_watch_warns_once_after_consecutive_intervals_without_signal(caplog):
    watch = NoSignalWatch(intervals=3)
    with caplog.at_level(logging.WARNING):
        for gain, recall in [(-0.2, 0.3), (0.0, 0.0), (0.005, 0.0), (0.05, 0.0), (0.0, 0.0), (0.0, 0.0)]:
            watch.observe(gain, recall, active=True)  # a signal (gain 0.05) resets the count: 2, then 2 again
        watch.observe(0.0, 0.0, active=False)  # RTD switched off on purpose: neither counts nor resets
        assert not warnings_in(caplog)
        watch.observe(0.0, 0.005, active=True)
        assert len(warnings_in(caplog)) == 1 and "--sampling-temperature-start" in warnings_in(caplog)[0].getMessage()
        for _ in range(5):
            watch.observe(0.0, 0.0, active=True)
    assert len(warnings_in(caplog)) == 1


def logging_output(rtd_loss_nats, replaced, tokens, true_positive, active=1.0):
    t = torch.tensor
    return {"loss": t(1.0), "mlm_loss": t(1.0), "rtd_loss": t(rtd_loss_nats), "ntokens": tokens, "sample_size": 4,
            "mlm_correct": t(1.0), "rtd_correct": t(1.0), "rtd_replaced": t(float(replaced)),
            "rtd_predicted_replaced": t(1.0), "rtd_true_positive": t(float(true_positive)), "rtd_active": active}


def test_rtd_gain_is_the_prior_minus_the_loss_and_only_train_inner_feeds_the_watch(monkeypatch):
    watch = NoSignalWatch()
    monkeypatch.setattr(metro_criterion, "NO_SIGNAL_WATCH", watch)
    outputs = [logging_output(30.0, 10, 80, 3), logging_output(20.0, 6, 40, 0)]
    p = 16 / 120  # replaced / tokens over both batches
    prior = -(p * math.log2(p) + (1 - p) * math.log2(1 - p))
    expected = prior - 50.0 / 120 / math.log(2)  # summed nats per token, in bits
    with metrics.aggregate(new_root=True) as agg:  # a step's own aggregator, as fairseq's Trainer has
        metro_criterion.MetroCriterion.reduce_metrics(outputs)
        assert math.isclose(agg.get_smoothed_values()["rtd_gain"], round(expected, 4), abs_tol=1e-4)
    assert watch.count == 0
    with metrics.aggregate("train_inner"):
        metro_criterion.MetroCriterion.reduce_metrics([logging_output(30.0, 10, 80, 0, active=0.0)])
    metrics.get_smoothed_values("train_inner")  # RTD off in every batch: not counted
    metrics.reset_meters("train_inner")
    assert watch.count == 0
    with metrics.aggregate("train_inner"):
        metro_criterion.MetroCriterion.reduce_metrics([logging_output(30.0, 10, 80, 0)])
    metrics.get_smoothed_values("train_inner")  # gain < 0, recall 0: one interval without signal
    metrics.reset_meters("train_inner")
    assert watch.count == 1


@pytest.mark.parametrize("extra,warns", [([], True), (HOT_START, False)], ids=["default", "hot-start"])
def test_a_real_run_warns_only_when_rtd_sits_at_its_prior(wiki_bin, tmp_path, extra, warns):
    """metro_tiny with the default flags collapses onto the unigram plateau (recall 0, RTD at its prior);
    the self-releasing hot start keeps a signal and must not warn."""
    r = run(train_cmd(wiki_bin, tmp_path, 150, "--total-num-update", "300", "--log-interval", "10", "--no-save",
                      "--disable-validation", *extra))
    assert (r.stdout + r.stderr).count(WARNING) == (1 if warns else 0)
