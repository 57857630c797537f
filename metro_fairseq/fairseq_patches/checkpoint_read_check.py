"""Patch: every checkpoint fairseq loads is checked by ``read_checkpoint`` first.

Wraps: ``fairseq.checkpoint_utils.load_checkpoint_to_cpu`` (resume, ``--restore-file``,
``--finetune-from-model``, the plugin's tools).
Why: fairseq reports a truncated, foreign or code-carrying file as a deep unpickling traceback, and
older torch would run the code; ``read_checkpoint`` refuses it weights-only with one line naming the
file and the fix, so fairseq's own load only ever sees a file proven to hold no code.
Tested by: tests/test_crash_consistency.py, tests/test_hostile_inputs.py, tests/test_finetuning.py
(``test_missing_or_mismatched_checkpoint_fails``).
"""
import os

from fairseq import checkpoint_utils

from ..checkpoint_reader import read_checkpoint

_fairseq_load_checkpoint_to_cpu = checkpoint_utils.load_checkpoint_to_cpu


def load_checkpoint_to_cpu(path, arg_overrides=None, load_on_all_ranks=False):
    if os.path.isfile(path):  # remote paths are fetched by fairseq itself
        read_checkpoint(path)
    return _fairseq_load_checkpoint_to_cpu(path, arg_overrides, load_on_all_ranks)


def install() -> None:
    if checkpoint_utils.load_checkpoint_to_cpu is load_checkpoint_to_cpu:
        return
    checkpoint_utils.load_checkpoint_to_cpu = load_checkpoint_to_cpu
