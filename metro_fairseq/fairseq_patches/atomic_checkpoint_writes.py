"""Patch: every checkpoint a run writes appears whole or not at all.

Wraps: ``fairseq.checkpoint_utils.torch_persistent_save`` and ``checkpoint_utils.PathManager.copy``.
Tested by: tests/test_crash_consistency.py (kills mid-write, then resumes).

fairseq 0.12 saves ``checkpoint_E_U.pt`` through ``checkpoint_utils.torch_persistent_save`` (a
``.tmp`` file renamed, but never fsynced) and then *copies* it onto ``checkpoint_last.pt`` and
``checkpoint_best.pt`` with ``PathManager.copy``, straight into the destination: a kill during the
copy leaves a truncated ``checkpoint_last.pt`` that fairseq refuses to resume from.

``install()`` sends both through ``atomic_write``: the bytes go to
``DEST.tmp`` in the destination's directory, are flushed and fsynced, and the file is renamed over
``DEST`` (then the directory is fsynced, so the rename itself survives a power cut).

Covered: local files that fairseq's ``checkpoint_utils`` writes (numbered, epoch, best, ``.best_*``
and last checkpoints, ``torch_persistent_save`` callers). Not covered: remote paths handled by
iopath, ``--write-checkpoints-asynchronously`` (fairseq then skips the copies), and files written by
other code. A kill can leave ``DEST.tmp`` behind; ``resume_recovery`` removes it on the next start.
"""
import os
import shutil
import sys
import time

import torch
from fairseq import checkpoint_utils
from fairseq.file_io import PathManager

TMP_SUFFIX = ".tmp"
# test hook (tests/test_crash_consistency.py), one environment lookup per checkpoint write when unused:
# the path of a trigger file; while it exists, the next write naming its content (or any write, if
# empty) deletes it and waits, fsynced but not renamed, to be killed
TEST_HOOK_HOLD_ENV = "METRO_TEST_HOLD_CHECKPOINT_WRITE"


def is_local(path: str) -> bool:
    return not PathManager.path_requires_pathmanager(path)


def atomic_write(path: str, write) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, make it durable, then rename it over ``path``."""
    tmp = path + TMP_SUFFIX
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _test_hook_hold_before_rename(tmp, path)
        os.replace(tmp, path)
    except BaseException:
        # an error (not a kill) must not leave a half-written file
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def atomic_copy(src: str, dst: str) -> None:
    with open(src, "rb") as f:
        atomic_write(dst, lambda out: shutil.copyfileobj(f, out, 16 << 20))


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a directory; the rename is still atomic
        pass
    finally:
        os.close(fd)


def _test_hook_hold_before_rename(tmp: str, dst: str) -> None:
    trigger = os.environ.get(TEST_HOOK_HOLD_ENV)
    if not trigger or not os.path.exists(trigger):
        return
    with open(trigger, encoding="utf-8") as f:
        wanted = f.read().strip()
    if wanted and wanted != os.path.basename(dst):
        return
    os.remove(trigger)
    print(f"metro_fairseq test hook: holding {tmp} before renaming it to {dst}", file=sys.stderr, flush=True)
    while True:
        time.sleep(60)


_fairseq_torch_persistent_save = checkpoint_utils.torch_persistent_save


def torch_persistent_save(obj, filename, async_write: bool = False):
    if async_write or not is_local(filename):
        return _fairseq_torch_persistent_save(obj, filename, async_write)
    # torch.save once: fairseq's retry loop would append a second copy to a half-written file
    atomic_write(filename, lambda f: torch.save(obj, f))


class AtomicPathManager(PathManager):
    """fairseq's PathManager with an atomic ``copy`` for local files (used by checkpoint_utils only)."""

    @staticmethod
    def copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
        if not (is_local(src_path) and is_local(dst_path)) or (not overwrite and os.path.exists(dst_path)):
            return PathManager.copy(src_path, dst_path, overwrite)
        atomic_copy(src_path, dst_path)
        return True


def install() -> None:
    """Route checkpoint_utils' saves and copies through ``atomic_write`` (idempotent)."""
    checkpoint_utils.torch_persistent_save = torch_persistent_save
    checkpoint_utils.PathManager = AtomicPathManager
