"""Throughput of METRO against fairseq's own RoBERTa masked LM of the same shape, per precision:
seconds per update (interleaved rounds), tokens/s, achieved TFLOP/s from harness.training_flops'
analytic matmul count, and peak GPU memory, each system's in a fresh Trainer of its own."""
import gc
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch

import harness

ROBERTA, METRO = "roberta (fairseq masked_lm)", "metro: generator + RTD"  # harness.variants' names




@dataclass
class Throughput:
    system: str
    precision: str
    params: int
    seconds: List[float]  # per update, one per interleaved round
    tokens: int  # per update
    flops: float  # per update, analytic
    peak_memory_mb: Optional[float]  # CUDA only

    @property
    def median(self) -> float:
        return harness.median(self.seconds)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.median

    @property
    def tflops(self) -> float:
        return self.flops / self.median / 1e12


def peak_memory_mb(argv: List[str]) -> float:
    """harness.peak_training_memory_mb in this process, less what earlier Trainers left allocated."""
    gc.collect()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated() / 2**20
    peak = harness.peak_training_memory_mb(argv)
    gc.collect()
    return peak - before


def measure(data: str, size: harness.Size, precisions: List[str], cuda: bool, repeats: int, steps: int,
            warmup: int) -> List[Throughput]:
    variants = harness.variants(size)
    argvs: Dict[tuple, List[str]] = {
        (system, precision): harness.common_flags(data, size, "cuda" if cuda else "cpu", precision) + variants[system]
        for precision in precisions for system in (ROBERTA, METRO)}
    with harness.quiet():
        memory = {key: peak_memory_mb(argv) for key, argv in argvs.items()} if cuda else {}
        benches = {key: harness.Bench(argv) for key, argv in argvs.items()}
        times = harness.interleaved_timings(benches, repeats, steps, warmup)
    vocab = len(next(iter(benches.values())).task.source_dictionary)
    return [Throughput(system, precision, bench.num_params, times[system, precision],
                       size.batch * size.tokens_per_sample, harness.training_flops(system, size, vocab),
                       memory.get((system, precision)))
            for (system, precision), bench in benches.items()]
