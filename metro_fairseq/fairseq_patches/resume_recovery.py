"""Patch: resume from the newest readable checkpoint when ``checkpoint_last.pt`` is unreadable or missing.

Wraps: ``fairseq.checkpoint_utils.load_checkpoint``.
Tested by: tests/test_crash_consistency.py.

fairseq resumes only from ``SAVE_DIR/checkpoint_last.pt``: a truncated one (a kill while an older
fairseq copied it, a full disk) stops every restart, and a missing one (a kill between the first
numbered save and its copy) silently restarts from scratch. With the default ``--restore-file`` (and
without ``--no-last-checkpoints``, which means a run never resumes), it checks
``checkpoint_last.pt`` and, if that cannot be used, resumes from the readable checkpoint of the
save directory with the most updates, logging one line naming the file skipped and the one used.
If checkpoints exist but none is readable it stops instead of starting over. It also removes
``*.pt.tmp`` files that a kill left behind (``atomic_checkpoint_writes``).
"""
import contextlib
import logging
import os
import re

from fairseq import checkpoint_utils
from omegaconf import OmegaConf, open_dict

from ..checkpoint_reader import CheckpointError, checkpoint_updates, read_checkpoint
from .atomic_checkpoint_writes import TMP_SUFFIX, is_local

logger = logging.getLogger(__name__)

DEFAULT_RESTORE = "checkpoint_last.pt"


def remove_stale_temporaries(save_dir: str) -> None:
    stale = [f for f in os.listdir(save_dir) if f.startswith("checkpoint") and f.endswith(".pt" + TMP_SUFFIX)]
    for name in stale:
        with contextlib.suppress(FileNotFoundError):  # another rank may have removed it
            os.remove(os.path.join(save_dir, name))
    if stale:
        logger.info(f"removed {len(stale)} partial checkpoint write(s) left by a killed run: {', '.join(sorted(stale))}")


def resume_checkpoint(save_dir: str, suffix: str = ""):
    """The checkpoint name (without ``suffix``) to resume from instead of checkpoint_last, or None to keep it."""
    if not is_local(save_dir) or not os.path.isdir(save_dir):
        return None
    remove_stale_temporaries(save_dir)
    last_name = f"checkpoint_last{suffix}.pt"
    last = os.path.join(save_dir, last_name)
    if not os.path.exists(last):
        problem = "is missing"
    else:
        try:
            read_checkpoint(last)
            return None
        except CheckpointError as e:
            problem = e.problem
    pattern = re.compile(r"checkpoint(\d+|_\d+_\d+|_best|\.best_.+)" + re.escape(suffix) + r"\.pt")
    names = sorted(f for f in os.listdir(save_dir) if pattern.fullmatch(f))
    if not names and not os.path.exists(last):
        return None  # a first start
    readable, unreadable = [], []
    for name in names:
        path = os.path.join(save_dir, name)
        try:
            # on a tie, the numbered file fairseq wrote over the best/last copies made from it
            original = "best" not in name
            readable.append((checkpoint_updates(read_checkpoint(path)), original, os.path.getmtime(path), name))
        except CheckpointError:
            unreadable.append(name)
    if not readable:
        raise CheckpointError(
            save_dir, f"holds checkpoints but none is readable ({last_name} {problem}"
            + (f"; also unreadable: {', '.join(unreadable)})" if unreadable else ")"),
            f"resume with --restore-file GOOD.pt, or move {save_dir} away to start over",
        )
    updates, _, _, name = max(readable)
    also = f" (also unreadable: {', '.join(unreadable)})" if unreadable else ""
    logger.warning(f"skipping {last} (it {problem}); resuming from {os.path.join(save_dir, name)} (update {updates}), "
                   f"the newest readable checkpoint in {save_dir}{also}")
    return name[: -len(suffix + ".pt")] + ".pt" if suffix else name


@contextlib.contextmanager
def _overridden(cfg, **values):
    """``cfg`` with ``values`` set for the duration (fields this fairseq lacks are left out)."""
    values = {k: v for k, v in values.items() if hasattr(cfg, k)}
    saved = {k: getattr(cfg, k) for k in values}

    def assign(items):
        with open_dict(cfg) if OmegaConf.is_config(cfg) else contextlib.nullcontext():
            for k, v in items.items():
                setattr(cfg, k, v)

    assign(values)
    try:
        yield cfg
    finally:
        assign(saved)


_fairseq_load_checkpoint = checkpoint_utils.load_checkpoint


def load_checkpoint(cfg, trainer, **passthrough_args):
    chosen = None
    # --no-last-checkpoints (the fine-tuning configs) means "never resume": fairseq's rule stands
    if cfg.restore_file == DEFAULT_RESTORE and not getattr(cfg, "no_last_checkpoints", False):
        chosen = resume_checkpoint(cfg.save_dir, trainer.checkpoint_suffix or "")
    if chosen is None:
        return _fairseq_load_checkpoint(cfg, trainer, **passthrough_args)
    # a run that saved checkpoints is resumed, never re-initialised from --finetune-from-model
    with _overridden(cfg, restore_file=os.path.join(cfg.save_dir, chosen), finetune_from_model=None, continue_once=None):
        return _fairseq_load_checkpoint(cfg, trainer, **passthrough_args)


def install() -> None:
    checkpoint_utils.load_checkpoint = load_checkpoint
