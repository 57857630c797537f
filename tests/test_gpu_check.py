"""The one-call GPU check (scripts/gpu_check.sh) rehearsed on CPU: every section is in the report, the
GPU-only parts say "skipped: no CUDA", the pretraining step and the bf16 throughput against RoBERTa
run with finite numbers, and no section failed. Also both ways a section fails: an exception, and a
failing test in the pytest run."""
import math
import os
import re
import subprocess
import sys

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import gpu_check  # noqa: E402

NO_CUDA = "skipped: no CUDA"
TESTS, STEP, THROUGHPUT, COST = ("tests/gpu (pytest)", "pretraining step under sync debug mode",
                                 "throughput against RoBERTa", "cost ratio")
SYSTEMS = {"roberta (fairseq masked_lm)", "metro: generator + RTD"}


def section_text(report: str, title: str) -> str:
    return report.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def rows(text: str):
    """The body rows of the Markdown tables in ``text``, as lists of cells."""
    lines = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("|---")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


def number(cell: str) -> float:
    return float(cell.replace(",", ""))


def test_cpu_rehearsal_runs_every_section(wiki_bin, tmp_path):
    out = tmp_path / "report.md"
    result = subprocess.run(["bash", "scripts/gpu_check.sh", "--cpu", "--data", str(wiki_bin), "--out", str(out)],
                            cwd=REPO, env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = out.read_text()
    assert report in result.stdout  # printed as well
    assert "fairseq and its dependencies found by" in report  # this suite's .venv: the first set-up branch

    status = {row[0]: row[1] for row in rows(section_text(report, "Summary"))[1:]}
    assert list(status) == [TESTS, STEP, THROUGHPUT, COST]
    assert not [s for s in status.values() if s.startswith("failed")], status
    assert status[TESTS] == NO_CUDA
    assert status[STEP].startswith("passed") and NO_CUDA in status[STEP]

    step = {row[0]: row for row in rows(section_text(report, STEP))[1:]}
    assert math.isfinite(number(step["bf16"][2])) and step["fp16"][1] == NO_CUDA

    throughput = rows(section_text(report, THROUGHPUT))[1:]
    bf16 = [row for row in throughput if row[1] == "bf16"]
    assert {row[0] for row in bf16} == SYSTEMS
    for row in bf16:
        seconds, tokens_per_second, tflops = number(row[3]), number(row[5]), number(row[6])
        assert all(math.isfinite(x) and x > 0 for x in (seconds, tokens_per_second, tflops)), row
    assert [row[2] for row in throughput if row[1] == "fp16"] == [NO_CUDA, NO_CUDA]

    cost = {row[0]: row for row in rows(section_text(report, COST))[1:]}
    time_ratio, flop_ratio = number(cost["bf16"][3]), number(cost["bf16"][4])
    assert math.isfinite(time_ratio) and time_ratio > 0 and flop_ratio > 1  # METRO adds the generator's FLOPs
    assert cost["fp16"][1] == NO_CUDA


def test_a_section_that_raises_is_reported_failed_and_the_next_runs():
    def broken():
        raise ValueError("no such corpus\nsecond line")

    failed = gpu_check.run_section("broken", broken)
    later = gpu_check.run_section("fine", lambda: ("passed", ""))
    assert re.fullmatch(r"failed: ValueError: no such corpus \(at test_gpu_check\.py:\d+ in broken\)", failed.status)
    assert later.status == "passed"
    summary = rows(section_text(gpu_check.report([("device", "none")], [failed, later]), "Summary"))
    assert [row[:2] for row in summary[1:]] == [["broken", failed.status], ["fine", "passed"]]


def test_a_failing_test_fails_the_tests_section(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "def test_passes():\n    pass\n"
        "def test_fails():\n    assert 1 == 2, 'one is not two'\n"
        "@pytest.mark.skip(reason='not here')\ndef test_skipped():\n    pass\n")
    status, body = gpu_check.tests_section([str(tmp_path / "test_sample.py")], str(tmp_path), cuda=True)
    assert status == "failed: 1 failed, 1 passed, 1 skipped (pytest exit code 1)"
    outcomes = {row[0]: row[1:] for row in rows(body)[1:] if len(row) == 4}
    assert outcomes["test_fails"][0] == "failed" and "one is not two" in outcomes["test_fails"][2]
    assert outcomes["test_skipped"][0] == "skipped" and outcomes["test_skipped"][2] == "not here"
    assert outcomes["test_passes"][0] == "passed"
    assert "<details><summary>test_fails</summary>" in body
