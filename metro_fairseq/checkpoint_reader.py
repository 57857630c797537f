"""What a checkpoint file holds, read safely: refuse truncated files, foreign files and pickled code
with one line naming the file and the fix.

``read_checkpoint`` always loads weights-only (explicitly, so neither an old torch default nor
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` can turn code execution back on) and memory-maps the tensors,
so checking a multi-GB checkpoint reads only its small pickle. fairseq's own loads run it first
(``fairseq_patches/checkpoint_read_check.py``).
"""
import os
import pickle
import re
import zipfile

import torch
from .errors import MetroError
from .fairseq_patches import checkpoint_safe_globals

USE_A_CHECKPOINT = "give a checkpoint written by fairseq-train (checkpoint_*.pt) or scripts/export_main_model.py"


class CheckpointError(MetroError, ValueError):
    def __init__(self, path: str, problem: str, fix: str = USE_A_CHECKPOINT):
        super().__init__(f"{path} {problem}: {fix}")
        self.path, self.problem, self.fix = path, problem, fix

    def __reduce__(self):  # picklable across worker processes
        return type(self), (self.path, self.problem, self.fix)


def read_checkpoint(path: str) -> dict:
    """The fairseq checkpoint at ``path`` (tensors memory-mapped where the format allows), or CheckpointError."""
    checkpoint_safe_globals.install()
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise CheckpointError(path, f"cannot be read ({e.strerror})") from None
    if size == 0:
        raise CheckpointError(path, "is empty (0 bytes)")
    try:
        # the zip central directory is at the end: a truncated file fails here, whatever is cut
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as e:
        if "Weights only load failed" in str(e):
            found = re.search(r"GLOBAL (\S+)", str(e))
            what = f"it calls {found.group(1)}" if found else "it holds objects other than tensors and plain data"
            raise CheckpointError(
                path, f"was refused by the weights-only loader ({what}; nothing in it was run): it is not a "
                "fairseq checkpoint and may carry code",
                f"{USE_A_CHECKPOINT}; never load this file with weights_only=False unless you trust its source",
            ) from None
        raise CheckpointError(path, f"is not a PyTorch file ({e})") from None
    except Exception as e:  # noqa: BLE001  (torch raises RuntimeError, EOFError, KeyError, ... for a broken file)
        reason = f"{type(e).__name__}: {str(e).split('. ')[0][:120]}"
        raise CheckpointError(path, f"is truncated or not a PyTorch checkpoint ({size} bytes; {reason})") from None
    if not isinstance(state, dict) or "model" not in state:
        held = f"keys {sorted(map(str, state))[:5]}" if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(path, f"is not a fairseq checkpoint (it holds {held}, no 'model')")
    return state


def checkpoint_updates(state: dict) -> int:
    history = state.get("optimizer_history") or [{}]
    return int(history[-1].get("num_updates", 0))
