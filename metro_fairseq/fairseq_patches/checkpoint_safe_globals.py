"""Patch: torch's weights-only loader accepts fairseq checkpoints.

Wraps: nothing of fairseq; registers ``argparse.Namespace`` with ``torch.serialization.add_safe_globals``.
Why: fairseq checkpoints hold the training arguments as an ``argparse.Namespace`` (their only
non-tensor global); without it torch >= 2.6's weights-only default refuses every fairseq checkpoint
for resume and fine-tuning, and the only alternative is unrestricted pickle loading.
Tested by: every resume and fine-tuning test (tests/test_end_to_end.py, tests/test_finetuning.py) and
tests/test_crash_consistency.py (``read_checkpoint``).
"""
import argparse

import torch


def install() -> bool:
    add_safe_globals = getattr(torch.serialization, "add_safe_globals", None)
    if add_safe_globals is None:  # torch < 2.4 loads without restrictions anyway
        return False
    add_safe_globals([argparse.Namespace])
    return True
