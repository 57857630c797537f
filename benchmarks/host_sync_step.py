"""One real pretraining step with every objective on, checked for host synchronisation on CUDA.

The step is the task's own ``train_step`` (forward, criterion ``metro``, backward through fairseq's
optimizer wrapper; no optimizer step) on a fairseq Trainer built from flags, with CLM, the cropped
SCL view and the temperature release schedule on. A warm-up step runs first, outside the check
(first calls set up cuBLAS and the allocator); the second runs under
``torch.cuda.set_sync_debug_mode("error")``, where the first call that makes the CPU wait for the
GPU raises. On CPU the step runs unchecked: tests/test_host_sync.py records its operators there.
"""
import math
import os
import traceback
from dataclasses import dataclass
from typing import List, Optional

import torch

import harness
from precision_throughput import METRO

OBJECTIVES = ["--clm", "--scl-view", "crop", "--sampling-temperature-start", "3.0",
              "--sampling-temperature-release-bits", "0.5", "--sampling-temperature-anneal-updates", "10"]


def step_flags(data: str, size: harness.Size, precision: str, cuda: bool) -> List[str]:
    device = "cuda" if cuda else "cpu"
    return harness.common_flags(data, size, device, precision) + harness.variants(size)[METRO] + OBJECTIVES


@dataclass
class StepResult:
    loss: float
    sync_call: Optional[str]  # the first synchronising call ("file:line in function: code"), None if none


def checked_step(bench: harness.Bench) -> StepResult:
    trainer = bench.trainer
    sample, _ = trainer._prepare_sample(bench.batches[0])  # to the device, as train_step would
    optimizer = trainer.optimizer  # fairseq builds it on first use: here, outside the check

    def step(update: int):
        return trainer.task.train_step(sample, trainer.model, trainer.criterion, optimizer, update)[0]

    step(1)
    trainer.zero_grad()
    if not bench.cuda:
        return StepResult(float(step(2)), None)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss = step(2)
    except RuntimeError as error:
        if "synchronizing" not in str(error):
            raise
        return StepResult(math.nan, first_frame_outside_torch(error))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return StepResult(float(loss), None)


def first_frame_outside_torch(error: BaseException) -> str:
    """The innermost traceback line in fairseq, the plugin or the check: the call that synchronised
    (a sync inside backward surfaces at the ``backward`` call, autograd's engine hides the op)."""
    torch_dir = os.path.dirname(torch.__file__)
    frames = [f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith(torch_dir)]
    frame = frames[-1]
    return f"{short_path(frame.filename)}:{frame.lineno} in {frame.name}: {frame.line}"


def short_path(path: str) -> str:
    if path.startswith(harness.REPO + os.sep):
        return os.path.relpath(path, harness.REPO)
    parts = path.split(os.sep)
    return os.sep.join(parts[parts.index("fairseq"):]) if "fairseq" in parts else path
