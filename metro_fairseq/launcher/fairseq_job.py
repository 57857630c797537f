"""One fairseq run as a submitit job that survives preemption.

On SLURM (and submitit's local executor) a job that is preempted or reaches its time limit gets
a signal first; submitit then calls ``checkpoint``, which stops fairseq and hands back the same
job to requeue. fairseq's resume logic (``checkpoint_last.pt`` in the save dir, or the newest
readable checkpoint there if that file is unusable: ``metro_fairseq/fairseq_patches/resume_recovery.py``)
continues the run, so a requeued job repeats no update saved before the signal.
"""
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import List, Optional

import submitit

CHECKPOINTS = ("checkpoint_last.pt", "checkpoint_best.pt")


def finished_checkpoint(run_dir: str) -> Optional[str]:
    """The checkpoint of a finished run: the log says 'done training' and the checkpoint loads."""
    log = os.path.join(run_dir, "train.log")
    if not os.path.exists(log):
        return None
    with open(log, encoding="utf-8", errors="replace") as f:
        if "done training" not in f.read():
            return None
    from metro_fairseq.checkpoint_reader import CheckpointError, read_checkpoint

    for name in CHECKPOINTS:
        path = os.path.join(run_dir, name)
        if not os.path.exists(path):
            continue
        try:
            read_checkpoint(path)
        except CheckpointError:  # a truncated or foreign file: the run must be redone
            return None
        return path
    return None


def resolve_executable(command: List[str]) -> List[str]:
    """fairseq-train & co. from this interpreter's environment, even when it is not on PATH."""
    local = os.path.join(os.path.dirname(sys.executable), command[0])
    if os.sep not in command[0] and not shutil.which(command[0]) and os.path.exists(local):
        return [local] + command[1:]
    return command


class FairseqJob(submitit.helpers.Checkpointable):
    def __init__(self, command: List[str], run_dir: str, workdir: str):
        self.command = command
        self.run_dir = run_dir
        self.workdir = workdir
        self._process = None

    def __call__(self) -> str:
        os.makedirs(os.path.join(self.workdir, self.run_dir), exist_ok=True)
        print("running:", " ".join(self.command), flush=True)
        self._process = subprocess.Popen(resolve_executable(self.command), cwd=self.workdir)
        try:
            # poll instead of wait(): the requeue signal handler must be able to reap fairseq,
            # and Popen.wait holds a lock that the handler's own wait would spin on
            while self._process.poll() is None:
                time.sleep(1)
            code = self._process.returncode
        finally:  # a cancelled job must not leave fairseq running
            if self._process.poll() is None:
                self._process.kill()
        if code != 0:
            raise RuntimeError(f"{self.command[0]} exited with status {code}; see {self.run_dir}/train.log")
        return self.run_dir

    def checkpoint(self, *args, **kwargs):
        # fairseq saved a checkpoint at its last --save-interval-updates; stop it and requeue (SIGTERM
        # kills it at once, mid-write too: checkpoint files are atomic, fairseq_patches/atomic_checkpoint_writes.py)
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._process.kill()
        print(f"requeueing {self.run_dir}: it resumes from its newest readable checkpoint", flush=True)
        return submitit.helpers.DelayedSubmission(FairseqJob(self.command, self.run_dir, self.workdir))

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_process"] = None
        return state
