"""Generator sampling-temperature schedule (Fast-ELECTRA) and the RTD-weight warm-up."""
import math
import sys

import pytest
import torch

from conftest import run
from test_end_to_end import train_cmd, train_logs
from metro_fairseq.modules import SamplingTemperatureSchedule, sample_replacements


def at(schedule, u):
    schedule.set_num_updates(u)
    return float(schedule.value())


def test_fixed_anneal_values():
    lin = SamplingTemperatureSchedule(1.0, start=3.0, anneal_updates=100, anneal="linear")
    assert [at(lin, u) for u in (0, 25, 50, 100, 400)] == pytest.approx([3.0, 2.5, 2.0, 1.0, 1.0])
    cos = SamplingTemperatureSchedule(1.0, start=3.0, anneal_updates=100, anneal="cosine")
    for u in (0, 10, 50, 90, 100, 200):
        p = min(u / 100, 1.0)
        assert at(cos, u) == pytest.approx(1.0 + 2.0 * 0.5 * (1 + math.cos(math.pi * p)))


def test_constant_schedule_has_no_state():
    schedule = SamplingTemperatureSchedule(1.5)
    assert schedule.value() == 1.5 and not schedule.state_dict()
    with pytest.raises(ValueError, match="anneal-updates"):
        SamplingTemperatureSchedule(1.0, start=2.0)


def observe_uniform_targets(schedule, vocab, loss_bits, batches=200, n=512):
    """Targets drawn uniformly over ``vocab`` tokens (entropy log2(vocab)); logits whose
    cross-entropy on every target is exactly ``loss_bits``."""
    g = torch.Generator().manual_seed(0)
    for _ in range(batches):
        targets = torch.randint(0, vocab, (n,), generator=g)
        # target logit l, the others 0: CE = log(e^l + V - 1) - l  ->  l = log((V - 1) / (2^b - 1))
        target_logit = math.log((vocab - 1) / (2 ** loss_bits - 1))
        logits = torch.zeros(n, vocab).scatter_(1, targets[:, None], target_logit)
        schedule.observe(logits, targets)


def test_release_waits_for_the_generator_then_anneals():
    vocab = 64  # unigram entropy 6 bits
    schedule = SamplingTemperatureSchedule(1.0, start=3.0, anneal_updates=10, anneal="linear",
                                           release_bits=0.5, vocab_size=vocab)
    observe_uniform_targets(schedule, vocab, loss_bits=5.8)  # 0.2 bits under unigram: not yet
    assert schedule.unigram_entropy_bits().item() == pytest.approx(6.0, abs=0.01)
    assert schedule.generator_loss_bits().item() == pytest.approx(5.8, abs=1e-5)
    assert at(schedule, 40) == 3.0 and not schedule.released
    observe_uniform_targets(schedule, vocab, loss_bits=5.2)  # 0.8 bits under: released at update 41
    assert at(schedule, 41) == 3.0 and bool(schedule.released) and int(schedule.release_update) == 41
    assert at(schedule, 46) == pytest.approx(2.0)
    assert at(schedule, 51) == pytest.approx(1.0)
    # the release update is kept even if the condition later fails
    observe_uniform_targets(schedule, vocab, loss_bits=6.5)
    assert at(schedule, 60) == 1.0 and int(schedule.release_update) == 41


def test_state_survives_a_checkpoint_round_trip():
    a = SamplingTemperatureSchedule(1.0, start=2.0, anneal_updates=20, release_bits=0.5, vocab_size=64)
    observe_uniform_targets(a, 64, loss_bits=5.0, batches=50)
    a.set_num_updates(7)
    b = SamplingTemperatureSchedule(1.0, start=2.0, anneal_updates=20, release_bits=0.5, vocab_size=64)
    b.load_state_dict(a.state_dict())
    for u in (7, 12, 30):
        assert at(a, u) == at(b, u)


def test_samples_follow_the_tempered_softmax():
    torch.manual_seed(0)
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).repeat(200_000, 1)
    for temperature in (0.5, 1.0, 3.0):
        counts = torch.bincount(sample_replacements(logits, torch.tensor(temperature)), minlength=4).double()
        expected = torch.softmax(logits[0].double() / temperature, -1)
        # 4 standard errors of a binomial proportion
        tolerance = 4 * (expected * (1 - expected) / logits.size(0)).sqrt()
        assert ((counts / logits.size(0) - expected).abs() <= tolerance).all(), (temperature, counts)


def test_rtd_warmup_ramps_the_weight():
    from metro_fairseq.criterions.metro import MetroCriterion

    class Task:
        pass

    def weights(**options):
        crit = MetroCriterion(Task(), rtd_weight=50.0, **options)
        out = []
        for u in (0, 25, 100, 300):
            crit.set_num_updates(u)
            out.append(crit.current_rtd_weight())
        return out

    assert weights() == [50.0] * 4
    assert weights(rtd_warmup_updates=100) == [0.0, 12.5, 50.0, 50.0]
    assert weights(rtd_start_update=100) == [0.0, 0.0, 50.0, 50.0]
    assert weights(rtd_start_update=100, rtd_warmup_updates=100) == [0.0, 0.0, 0.0, 50.0]


SCHEDULE = ["--sampling-temperature-start", "3", "--sampling-temperature-release-bits", "-1.5",
            "--sampling-temperature-anneal-updates", "20", "--rtd-warmup-updates", "10"]


def test_schedule_trains_logs_and_resumes_identically(wiki_bin, tmp_path):
    """A real run with the released schedule: sample_temp is logged, starts hot, is released by the
    generator's loss and falls; a run resumed from update 15 reproduces every logged value."""
    straight = run(train_cmd(wiki_bin, tmp_path / "a", 45, "--disable-validation", *SCHEDULE))
    logs = train_logs(straight.stdout + straight.stderr)
    temps = [float(logs[u]["sample_temp"]) for u in sorted(logs)]
    assert temps[0] == pytest.approx(3.0) and temps[-1] < temps[0], temps
    run(train_cmd(wiki_bin, tmp_path / "b", 15, "--disable-validation", *SCHEDULE))
    resumed = run(train_cmd(wiki_bin, tmp_path / "b", 45, "--disable-validation", *SCHEDULE))
    again = train_logs(resumed.stdout + resumed.stderr)
    assert sorted(again) == [20, 25, 30, 35, 40, 45]
    for u in again:
        for key in ("loss", "mlm_loss", "rtd_loss", "sample_temp"):
            assert again[u][key] == logs[u][key], (u, key)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_statistics_stay_exact_in_half_precision_models(dtype):
    """fairseq casts the whole model (model.to(bfloat16) / model.half()): counts past bf16's 256 and
    fp16's 65,504, and the loss average, must still be exact, and survive a save and load."""
    vocab = 4
    schedule = SamplingTemperatureSchedule(1.0, start=3.0, release_bits=0.5, vocab_size=vocab).to(dtype)
    g = torch.Generator().manual_seed(0)
    targets = [torch.randint(0, vocab, (60_000,), generator=g) for _ in range(5)]
    logits = [torch.randn(60_000, vocab, generator=g).to(dtype) for _ in range(5)]
    loss_ema = weight = 0.0
    for lg, t in zip(logits, targets):
        schedule.observe(lg, t)
        ce = torch.nn.functional.cross_entropy(lg.double(), t).item() / math.log(2)
        loss_ema, weight = 0.98 * loss_ema + 0.02 * ce, 0.98 * weight + 0.02
    expected = torch.bincount(torch.cat(targets), minlength=vocab)
    assert expected.max() > 65_504
    assert torch.equal(schedule.target_counts, expected)
    assert schedule.generator_loss_bits().item() == pytest.approx(loss_ema / weight, rel=1e-6)
    fresh = SamplingTemperatureSchedule(1.0, start=3.0, release_bits=0.5, vocab_size=vocab)
    fresh.load_state_dict(schedule.state_dict())
    assert torch.equal(fresh.target_counts, expected)
    assert fresh.generator_loss_bits().item() == schedule.generator_loss_bits().item()


def test_checkpoints_with_float64_statistics_still_load():
    """Before 2026-12-07 the statistics were float64 buffers (loss_ema, ema_weight, target_counts)."""
    from test_model import build

    model = build(sampling_temperature_start=3.0, sampling_temperature_release_bits=0.5)
    old = model.state_dict()
    old.pop("sampling_temperature.loss_ema_bits")
    old["sampling_temperature.loss_ema"] = torch.tensor(4.5, dtype=torch.float64)
    old["sampling_temperature.ema_weight"] = torch.tensor(0.75, dtype=torch.float64)
    old["sampling_temperature.target_counts"] = torch.arange(len(old["sampling_temperature.target_counts"])).double()
    model.load_state_dict(old)
    assert model.sampling_temperature.generator_loss_bits().item() == 6.0
    assert model.sampling_temperature.target_counts.dtype == torch.long
    assert model.sampling_temperature.target_counts[5] == 5


def test_a_schedule_switched_on_or_off_between_runs_loads():
    """--finetune-from-model a constant-temperature checkpoint (an import, a finished run) into a run with the
    self-releasing schedule: the schedule starts fresh; the other way round its state is dropped."""
    from test_model import build

    constant = build()
    scheduled = build(sampling_temperature_start=3.0, sampling_temperature_release_bits=0.5)
    observe_uniform_targets(scheduled.sampling_temperature, len(scheduled.sampling_temperature.target_counts), 1.0, 5)
    fresh = build(sampling_temperature_start=3.0, sampling_temperature_release_bits=0.5)
    fresh.load_state_dict(constant.state_dict())
    assert not bool(fresh.sampling_temperature.released)
    assert int(fresh.sampling_temperature.target_counts.sum()) == 0
    assert torch.equal(fresh.generator_head.bias, constant.generator_head.bias)
    constant.load_state_dict(scheduled.state_dict())  # no error: the schedule's statistics are dropped
    assert torch.equal(constant.generator_head.bias, scheduled.generator_head.bias)
