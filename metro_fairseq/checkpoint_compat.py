"""Compatibility shim: let torch >= 2.6's weights-only loader open fairseq checkpoints.

fairseq checkpoints hold the training arguments as an ``argparse.Namespace`` (the only non-tensor
global in them); registering it as a safe global keeps the secure loader working for resume and
fine-tuning instead of falling back to unrestricted pickle loading.
"""
import argparse

import torch


def register_checkpoint_safe_globals() -> bool:
    add_safe_globals = getattr(torch.serialization, "add_safe_globals", None)
    if add_safe_globals is None:  # torch < 2.4 loads without restrictions anyway
        return False
    add_safe_globals([argparse.Namespace])
    return True
