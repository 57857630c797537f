"""Shared pieces of the benchmarks: build a real fairseq Trainer from command-line flags, time its
train_step on pre-fetched batches, measure peak memory, and count FLOPs from the configuration.

Both sides go through the same code: fairseq's own `roberta` + `masked_lm` and our `metro` +
`metro_pretraining`, with fixed-length blocks (``--sample-break-mode none``) so every batch holds
exactly batch x tokens_per_sample tokens.
"""
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional

warnings.simplefilter("ignore", FutureWarning)
warnings.simplefilter("ignore", UserWarning)

import logging  # noqa: E402

logging.getLogger("fairseq").setLevel(logging.WARNING)

import torch  # noqa: E402

from metro_fairseq import plugin  # noqa: E402

plugin.install()  # its patches, --bf16 without --tpu among them, before the first parse

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USER_DIR = os.path.join(REPO, "metro_fairseq")


@dataclass
class Size:
    layers: int = 6
    dim: int = 256
    ffn: int = 1024
    heads: int = 4
    generator_layers: int = 2
    tokens_per_sample: int = 128
    batch: int = 32


PRECISION_FLAGS = {"fp32": [], "bf16": ["--bf16"], "fp16": ["--fp16"]}


def common_flags(data: str, size: Size, device: str, precision: Optional[str] = None) -> List[str]:
    """fairseq-train flags for ``size`` on ``device``; ``precision`` defaults to fp32 on CPU, fp16 on CUDA."""
    flags = [
        data, "--user-dir", USER_DIR, "--encoder-layers", str(size.layers), "--encoder-embed-dim", str(size.dim),
        "--encoder-ffn-embed-dim", str(size.ffn), "--encoder-attention-heads", str(size.heads),
        "--tokens-per-sample", str(size.tokens_per_sample), "--sample-break-mode", "none",
        "--batch-size", str(size.batch), "--required-batch-size-multiple", "1", "--max-positions", "512",
        "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--adam-eps", "1e-6", "--weight-decay", "0.01",
        "--clip-norm", "2.0", "--lr", "5e-4", "--lr-scheduler", "polynomial_decay", "--warmup-updates", "10",
        "--total-num-update", "100000", "--num-workers", "0", "--seed", "1", "--no-progress-bar",
    ]
    if precision is None:
        precision = "fp32" if device == "cpu" else "fp16"
    return flags + (["--cpu"] if device == "cpu" else []) + PRECISION_FLAGS[precision]


def matmul_peak_gflops(size: Size, dtype: torch.dtype, device: str = "cpu", seconds: float = 1.0) -> float:
    """The machine's best GFLOP/s on the model's own matmul shapes (tokens x dim x dim, x ffn and
    back) in ``dtype`` at the current thread count: the ceiling the training step is measured against.
    Both layouts count: ``a @ b`` and ``F.linear`` (``x @ W^T``, the forward's), since CPUs without bf16
    units run them through different kernels (bf16 ``F.linear`` several times faster than ``a @ b``)."""
    tokens = size.batch * size.tokens_per_sample
    best = 0.0
    for m, k, n in ((tokens, size.dim, size.dim), (tokens, size.dim, size.ffn), (tokens, size.ffn, size.dim)):
        a = torch.randn(m, k, device=device).to(dtype)
        b = torch.randn(k, n, device=device).to(dtype)
        w = b.t().contiguous()
        for matmul in (lambda: a @ b, lambda: torch.nn.functional.linear(a, w)):
            matmul()  # warm-up: kernel choice, page faults
            reps, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                matmul()
                reps += 1
            if device == "cuda":
                torch.cuda.synchronize()
            best = max(best, 2 * m * k * n * reps / (time.perf_counter() - start) / 1e9)
    return best


def variants(size: Size) -> Dict[str, List[str]]:
    """The systems compared: fairseq's RoBERTa masked LM, METRO (generator + RTD), METRO + CLM + SCL."""
    metro = ["--task", "metro_pretraining", "--criterion", "metro", "--arch", "metro",
             "--generator-layers", str(size.generator_layers)]
    return {
        "roberta (fairseq masked_lm)": ["--task", "masked_lm", "--criterion", "masked_lm", "--arch", "roberta"],
        "metro: generator + RTD": metro,
        "metro: + CLM + SCL (crop)": metro + ["--clm", "--scl-view", "crop"],
    }


class Bench:
    """A fairseq Trainer plus a fixed list of batches to train on."""

    def __init__(self, argv: List[str], num_batches: int = 8):
        from fairseq import options, tasks, utils
        from fairseq.dataclass.utils import convert_namespace_to_omegaconf
        from fairseq.trainer import Trainer

        parser = options.get_training_parser()
        cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(parser, argv))
        utils.import_user_module(cfg.common)
        torch.manual_seed(1)
        self.task = tasks.setup_task(cfg.task)
        self.task.load_dataset("train", combine=False, epoch=1)
        model = self.task.build_model(cfg.model)
        criterion = self.task.build_criterion(cfg.criterion)
        self.trainer = Trainer(cfg, self.task, model, criterion)
        self.num_params = sum(p.numel() for p in model.parameters())
        itr = self.task.get_batch_iterator(
            dataset=self.task.dataset("train"), max_sentences=cfg.dataset.batch_size, seed=1,
            required_batch_size_multiple=1,
        ).next_epoch_itr(shuffle=True)
        self.batches = []
        for sample in itr:
            if sample["net_input"]["src_tokens"].size(0) == cfg.dataset.batch_size:
                self.batches.append(sample)
            if len(self.batches) == num_batches:
                break
        self.step = 0
        self.cuda = not cfg.common.cpu

    def train_steps(self, n: int) -> float:
        """Seconds for n full updates (forward, backward, optimizer step, fairseq's logging)."""
        if self.cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(n):
            self.trainer.train_step([self.batches[self.step % len(self.batches)]])
            self.step += 1
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start


def interleaved_timings(benches: Dict[str, Bench], repeats: int, steps: int, warmup: int = 2) -> Dict[str, List[float]]:
    """Seconds per update for each system; the systems take turns so drift hits them all alike."""
    for bench in benches.values():
        bench.train_steps(warmup)
    times = {name: [] for name in benches}
    for _ in range(repeats):
        for name, bench in benches.items():
            times[name].append(bench.train_steps(steps) / steps)
    return times


def _vm_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def peak_training_memory_mb(argv: List[str], steps: int = 3) -> float:
    """Peak memory of model, optimizer state and activations: on GPU torch's peak allocation, on CPU
    the peak resident set size above the process's size before the model is built (Linux)."""
    from fairseq import options, tasks, utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.trainer import Trainer

    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), argv))
    utils.import_user_module(cfg.common)
    task = tasks.setup_task(cfg.task)
    task.load_dataset("train", combine=False, epoch=1)
    itr = task.get_batch_iterator(dataset=task.dataset("train"), max_sentences=cfg.dataset.batch_size, seed=1,
                                  required_batch_size_multiple=1).next_epoch_itr(shuffle=False)
    batch = next(itr)
    if not cfg.common.cpu:
        torch.cuda.reset_peak_memory_stats()
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the peak RSS (VmHWM) to the current RSS
    before = _vm_kb("VmRSS")
    trainer = Trainer(cfg, task, task.build_model(cfg.model), task.build_criterion(cfg.criterion))
    for _ in range(steps):
        trainer.train_step([batch])
    if not cfg.common.cpu:
        return torch.cuda.max_memory_allocated() / 2**20
    return (_vm_kb("VmHWM") - before) / 1024


def memory_in_subprocess(argv: List[str]) -> float:
    """Each measurement in a fresh process, so one system's allocator cache does not count for another."""
    code = (
        "import json, sys; sys.path.insert(0, %r); import harness; "
        "print('PEAK_MB', harness.peak_training_memory_mb(json.loads(sys.argv[1])))" % os.path.dirname(__file__)
    )
    out = subprocess.run([sys.executable, "-c", code, json.dumps(argv)], capture_output=True, text=True, check=True)
    return float([ln for ln in out.stdout.splitlines() if ln.startswith("PEAK_MB")][-1].split()[1])


# ---- analytic FLOPs (multiply-add = 2 FLOPs; backward = 2 x forward) ----

def layer_flops(tokens: int, dim: int, ffn: int) -> float:
    """One Transformer layer over one sequence: Q/K/V/output projections, scores and weighted sum, FFN."""
    return 8 * tokens * dim * dim + 4 * tokens * tokens * dim + 4 * tokens * dim * ffn


def training_flops(system: str, size: Size, vocab: int, mask_prob: float = 0.15, crop_tokens: Optional[int] = None) -> float:
    """Matmul FLOPs of one update (forward + backward) for one of ``variants()``'s systems; ``mask_prob``
    is the fraction of tokens that get an MLM prediction, ``crop_tokens`` the SCL view's length."""
    t, d = size.tokens_per_sample, size.dim
    masked = mask_prob * t
    main = size.layers * layer_flops(t, d, size.ffn)
    lm_head = masked * (2 * d * d + 2 * d * vocab)  # dense + tied projection, on masked tokens only
    if system.startswith("roberta"):
        forward = main + lm_head
    else:
        generator = size.generator_layers * layer_flops(t, d, size.ffn) + lm_head
        rtd_head = t * (2 * d * d + 2 * d)
        forward = generator + main + rtd_head
        if "CLM" in system:
            forward += masked * 2 * d * vocab  # tied projection on the masked positions
        if "SCL" in system:
            crop = crop_tokens if crop_tokens is not None else int(0.9 * t)
            forward += size.layers * layer_flops(crop, d, size.ffn) + 2 * 2 * d * d  # second view + head on <s>
    return 3 * forward * size.batch


def disentangled_extra_flops(size: Size, buckets: int = 256) -> float:
    """Matmul FLOPs disentangled attention adds to one update (forward + backward), main model and
    generator: per layer the relative table's query/key projections (once per batch; R rows, the
    ones a length-T batch reads) and, per sequence, the c2p and p2c products against the table."""
    t, d = size.tokens_per_sample, size.dim
    rows = min(2 * buckets, 2 * t - 1)
    per_layer = 2 * rows * d * 2 * d + size.batch * 2 * (2 * t * rows * d)
    return 3 * per_layer * (size.layers + size.generator_layers)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads){gpu}, "
            f"Python {platform.python_version()}")


def subplots(*args, **kwargs):
    """matplotlib's subplots on the file-only backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_plot(fig, path: str):
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"\nplot: {os.path.relpath(path, REPO)}")


def median(values):
    return statistics.median(values)


def profile_step(bench: Bench, steps: int = 3, rows: int = 12) -> str:
    """Where one system's update spends its time: torch.profiler's top operators by self time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if bench.cuda else [])
    with profile(activities=activities) as prof:
        bench.train_steps(steps)
    key = "self_cuda_time_total" if bench.cuda else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


@contextlib.contextmanager
def quiet():
    """fairseq prints its config at INFO; keep the benchmark output to the tables."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.setLevel(level)


def wiki_corpus() -> str:
    """The demo corpus as raw text (train.txt / valid.txt), fetched once into data/bench-corpus."""
    corpus = os.path.join(REPO, "data", "bench-corpus")
    if not os.path.exists(os.path.join(corpus, "valid.txt")):
        subprocess.run([sys.executable, os.path.join(REPO, "scripts", "fetch_wiki_corpus.py"), "--outdir", corpus,
                        "--cache-dir", os.path.join(REPO, "data", "download")], check=True)
    return corpus


def prepare(corpus: str, dest: str) -> str:
    """``corpus/{train,valid}.txt`` binarized into ``dest`` (vocabulary 8000), once."""
    if not os.path.exists(os.path.join(dest, "train.bin")):
        subprocess.run([sys.executable, os.path.join(REPO, "scripts", "prepare_corpus.py"), "--train",
                        os.path.join(corpus, "train.txt"), "--valid", os.path.join(corpus, "valid.txt"),
                        "--destdir", dest, "--vocab-size", "8000"], check=True)
    return dest


def composed_preset(config_dir: str, name: str):
    """A preset as fairseq-hydra-train composes it (``defaults:`` variants included), as an OmegaConf."""
    from omegaconf import OmegaConf

    out = subprocess.run([sys.executable, "-m", "fairseq_cli.hydra_train", "--config-dir", config_dir,
                          "--config-name", name, "--cfg", "job"], cwd=REPO, capture_output=True, text=True, check=True)
    return OmegaConf.create(out.stdout)


def data_bin(path: Optional[str]) -> str:
    """The demo corpus binarized (vocabulary 8000), prepared once into data/bench-bin if not given."""
    return path or prepare(wiki_corpus(), os.path.join(REPO, "data", "bench-bin"))
