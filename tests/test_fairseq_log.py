"""metro_fairseq/fairseq_log.py: fairseq's JSON statistics lines as records, from lines written by
fairseq's own progress bar and from a real fairseq-train run."""
import io
import json
import logging
import math
import subprocess
import sys

import pytest

from conftest import REPO, run
from metro_fairseq.fairseq_log import TRAIN, TRAIN_INNER, VALID, NoJsonLines, parse_line, read_log
from test_end_to_end import train_cmd

# fairseq_cli/train.py's logging.basicConfig, fairseq's hydra job_logging formatter, Python's default
# (scripts/train_composite.py: fairseq, imported first, logs before fairseq_cli.train configures logging)
CONSOLE = logging.Formatter("%(asctime)s | %(levelname)s | %(name)s | %(message)s", "%Y-%m-%d %H:%M:%S")
HYDRA = logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
PYTHON = logging.Formatter(logging.BASIC_FORMAT)


def progress_bar_lines(log_file=None, epochs=1):
    """What fairseq's JsonProgressBar logs for a run of ``epochs`` epochs of 4 updates (log interval 2),
    each ending with a validation on two subsets and the epoch summary, as fairseq_cli/train.py calls it;
    returns the console lines in fairseq-train's and in hydra's format, and the stats given."""
    from fairseq.logging import meters, progress_bar

    handlers, level = list(progress_bar.logger.handlers), progress_bar.logger.level
    streams = {}
    for name, formatter in (("console", CONSOLE), ("hydra", HYDRA), ("python", PYTHON)):
        streams[name] = logging.StreamHandler(io.StringIO())
        streams[name].setFormatter(formatter)
        progress_bar.logger.addHandler(streams[name])
    progress_bar.logger.setLevel(logging.INFO)
    given = []
    try:
        for epoch in range(1, epochs + 1):
            bar = progress_bar.progress_bar(range(4), log_format="json", log_interval=2, log_file=log_file, epoch=epoch)
            for i, _ in enumerate(bar):
                step = (epoch - 1) * 4 + i + 1
                loss = meters.AverageMeter()
                loss.update(9.87654321 / step)
                stats = {"loss": loss, "num_updates": step, "lr": 2.5e-05 * step, "gnorm": float("inf"), "wall": 12.6}
                bar.log(stats, tag="train_inner", step=step)
                if step % 2 == 0:
                    given.append((TRAIN_INNER, "train_inner", stats))
            for subset in ("valid", "valid_en"):
                stats = {"loss": 8.5 + epoch, "accuracy": 71.4285714, "num_updates": epoch * 4, "best_loss": 8.5}
                progress_bar.progress_bar(range(1), log_format="json", epoch=epoch,
                                          prefix=f"valid on '{subset}' subset").print(stats, tag=subset)
                given.append((VALID, subset, stats))
            stats = {"loss": 9.0, "num_updates": epoch * 4, "train_wall": 3}
            bar.print(stats, tag="train")
            given.append((TRAIN, "train", stats))
    finally:
        for handler in [h for h in progress_bar.logger.handlers if h not in handlers]:
            progress_bar.logger.removeHandler(handler)
            handler.close()
        progress_bar.logger.setLevel(level)
    return {name: h.stream.getvalue().splitlines() for name, h in streams.items()}, given


def expected_value(value):
    """What fairseq writes for a value (its format_stat), read back as a number."""
    from fairseq.logging.progress_bar import format_stat

    return float(format_stat(value))


def assert_records_match(records, given):
    assert [(r.kind, r.tag) for r in records] == [(kind, tag) for kind, tag, _ in given]
    for record, (_, _, stats) in zip(records, given):
        assert set(record.stats) == set(stats)
        for key, value in stats.items():
            assert record[key] == expected_value(value) or math.isinf(value) and math.isinf(record[key]), key
            if math.isfinite(record[key]) and not isinstance(value, int):
                assert math.isclose(record[key], getattr(value, "avg", value), rel_tol=1e-3), key


def test_progress_bar_lines_in_fairseq_train_hydra_and_python_format():
    lines, given = progress_bar_lines()
    assert lines["python"][0].startswith('INFO:train_inner:{"epoch": 1, "update": 0.5, ')
    for name in ("console", "hydra", "python"):
        log = read_log(lines[name])
        assert_records_match(log.records, given)
        assert log.subsets() == ["valid", "valid_en"]
        inner = log.train_inner()
        assert [r.num_updates for r in inner] == [2, 4] and [r.update for r in inner] == [0.5, 1.0]
        assert inner[0].epoch == 1 and inner[0].subset is None
        assert inner[0]["loss"] == 4.938 and inner[0]["lr"] == 5e-05  # "{:.3f}" of an average, "{:g}" of a number
        assert log.valid("valid_en")[0].subset == "valid_en" and log.valid("valid_en")[0]["accuracy"] == 71.4286
        assert log.valid()[0].raw["valid_accuracy"] == "71.4286"  # as logged
        assert log.by_update(VALID, "valid") == {4: log.valid()[0].stats}
        assert log.last_training().kind == TRAIN and log.train()[0]["train_wall"] == 3


def test_log_file_lines_carry_no_tag_and_repeat_from_epoch_two(tmp_path):
    """fairseq writes a --log-file without the logger's name, through one more file handler each epoch."""
    path = tmp_path / "train.log"
    lines, given = progress_bar_lines(log_file=str(path), epochs=3)
    text = path.read_text().splitlines()
    assert len(text) == len(given) * 2 and text[0].startswith("{")  # 1 + 2 + 3 copies of 1/3 each
    log = read_log(path)
    assert_records_match(log.records, given)
    assert log.records == read_log(lines["console"]).records
    assert log.source == str(path)


@pytest.mark.parametrize("line", [
    "epoch 001:      5 / 111 loss=58.403, mlm_loss=9.955, num_updates=5, lr=0.0004, wall=3",  # --log-format simple
    "epoch 001 | valid on 'valid' subset | loss 36.813 | num_updates 15",
    "2026-01-05 10:00:00 | INFO | fairseq_cli.train | {'_name': None, 'common': {'log_format': 'json'}}",
    'INFO:fairseq.trainer:{"loss": "1", "num_updates": "5"}',  # Python's format, not a tag's keys
    '{"epoch": 1, "update": 0.009, "loss": "58.4", "num_updates": "5", "wa',  # cut short by a kill
    '2026-01-05 10:00:00 | INFO | fairseq.trainer | {"loss": "1", "num_updates": "5"}',  # not a tag's keys
    '2026-01-05 10:00:00 | INFO | valid | {"epoch": 1, "loss": "1", "valid_num_updates": "5"}',
    '{"epoch": 1, "loss": "3.2"}',  # a bare line whose tag its keys do not tell
    '[1, 2, 3]', "{}", "", "done training in 42.6 seconds",
])
def test_lines_that_are_not_statistics_are_skipped(line):
    assert parse_line(line) is None
    assert read_log([line, line]).records == []


def test_non_numeric_values_stay_in_raw_only():
    record = parse_line('{"epoch": 2, "valid_loss": "3.5", "valid_per_class": [1, 2], "valid_note": "n/a", '
                        '"valid_num_updates": "40", "valid_ok": true}')
    assert (record.kind, record.tag, record.epoch) == (VALID, "valid", 2)
    assert record.stats == {"loss": 3.5, "num_updates": 40.0} and record.num_updates == 40
    assert record.raw["valid_per_class"] == [1, 2] and "per_class" not in record


def test_no_records_is_one_clear_error(tmp_path):
    path = tmp_path / "train.log"
    path.write_text("epoch 001:      5 / 111 loss=58.403, num_updates=5\n")
    assert read_log(path).records == []
    with pytest.raises(NoJsonLines) as e:
        read_log(path, require=True)
    assert str(e.value) == (f"no fairseq JSON log lines in {path}: train with --log-format json "
                            "(fairseq-hydra-train: common.log_format=json)")


def test_reader_imports_neither_fairseq_nor_torch():
    code = ("import sys, metro_fairseq.fairseq_log\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'fairseq', 'numpy')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_real_run_console_and_log_file_give_the_same_records(wiki_bin, tmp_path):
    log_file = tmp_path / "train.log"
    r = run(train_cmd(wiki_bin, tmp_path, 10, "--log-file", str(log_file), "--validate-interval-updates", "5",
                      "--max-valid-steps", "2"))
    lines = (r.stdout + r.stderr).splitlines()
    console = read_log(lines)
    assert [(r.kind, r.num_updates) for r in console] == [
        (TRAIN_INNER, 5), (VALID, 5), (TRAIN_INNER, 10), (VALID, 10), (TRAIN, 10)]
    assert console.records == read_log(log_file).records  # the tags the file lacks, read off the keys
    # every number is the string logged after fairseq's "date | INFO | tag | " prefix
    logged = [ln.split(" | ", 3) for ln in lines if parse_line(ln)]
    assert [tag for _, _, tag, _ in logged] == [rec.tag for rec in console]
    for record, (_, _, tag, message) in zip(console, logged):
        assert json.loads(message) == record.raw
        for key, value in record.raw.items():
            if key not in ("epoch", "update"):
                assert record[key if tag == TRAIN_INNER else key[len(tag) + 1:]] == float(value), key
    inner = console.train_inner()
    assert inner[-1]["loss"] < inner[0]["loss"] and 0.1 < inner[-1]["replace_rate"] < 0.2
    assert console.train()[0]["num_updates"] == 10 and "wall" in console.train()[0]
