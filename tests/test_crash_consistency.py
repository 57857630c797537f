"""Crash consistency: atomic checkpoint files, recovery from an unreadable checkpoint_last.pt, and a
soak test that SIGKILLs a tiny METRO run at seeded random moments (at least one inside a checkpoint
write) and still ends where an uninterrupted run ends, directly and through scripts/sweep.py's requeue."""
import glob
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch
from fairseq import checkpoint_utils

from conftest import REPO, run
from test_end_to_end import train_cmd, train_logs
from metro_fairseq.checkpoint_reader import CheckpointError, checkpoint_updates, read_checkpoint
from metro_fairseq.fairseq_log import read_log
from metro_fairseq.fairseq_patches.atomic_checkpoint_writes import TEST_HOOK_HOLD_ENV, atomic_write
from metro_fairseq.fairseq_patches.resume_recovery import resume_checkpoint

SOAK_UPDATES = 24
HOLDING = re.compile(r"metro_fairseq test hook: holding (\S+) before renaming it to (\S+)")


def soak_cmd(data, save_dir):
    return train_cmd(data, save_dir, SOAK_UPDATES, "--save-interval-updates", "3", "--keep-interval-updates", "2",
                     "--log-interval", "1", "--max-valid-steps", "1")


def fake_checkpoint(path, updates):
    torch.save({"model": {"w": torch.full((2,), float(updates))}, "optimizer_history": [{"num_updates": updates}]}, path)


# -- atomic writes ---------------------------------------------------------------------------------

HELD_WRITE = """
import os, sys, torch
from metro_fairseq import plugin
plugin.install()
from fairseq import checkpoint_utils
from metro_fairseq.fairseq_patches.atomic_checkpoint_writes import atomic_write
mode, dst, src = sys.argv[1:]
if mode == "save":
    checkpoint_utils.torch_persistent_save({"model": {"w": torch.ones(1000)}}, dst)
elif mode == "copy":
    checkpoint_utils.PathManager.copy(src, dst, overwrite=True)
else:  # killed halfway through writing the bytes
    def half(f):
        f.write(b"x" * 5000)
        f.flush()
        os.kill(os.getpid(), 9)
    atomic_write(dst, half)
"""


@pytest.mark.parametrize("mode", ["save", "copy", "mid-write"])
def test_kill_during_a_checkpoint_write_leaves_the_old_file_intact(mode, tmp_path):
    dst, src, trigger = tmp_path / "checkpoint_last.pt", tmp_path / "checkpoint_1_9.pt", tmp_path / "hold"
    fake_checkpoint(dst, 6)
    fake_checkpoint(src, 9)
    old = dst.read_bytes()
    trigger.write_text("checkpoint_last.pt")
    proc = subprocess.Popen([sys.executable, "-c", HELD_WRITE, mode, str(dst), str(src)], cwd=REPO,
                            env={**os.environ, TEST_HOOK_HOLD_ENV: str(trigger)}, stderr=subprocess.PIPE, text=True)
    if mode != "mid-write":
        line = proc.stderr.readline()  # the hook's line: fsynced, not yet renamed
        while line and "test hook" not in line:
            line = proc.stderr.readline()
        assert HOLDING.search(line), line
        proc.kill()
    assert proc.wait(timeout=120) == -signal.SIGKILL
    assert dst.read_bytes() == old  # the old checkpoint is untouched
    tmp = tmp_path / "checkpoint_last.pt.tmp"
    if mode == "mid-write":
        assert tmp.stat().st_size == 5000
    else:  # the new one is complete in its temporary file
        assert checkpoint_updates(read_checkpoint(str(tmp))) == (9 if mode == "copy" else 0)


def test_failed_write_leaves_no_temporary_file(tmp_path):
    dst = tmp_path / "checkpoint_last.pt"
    dst.write_bytes(b"old")

    def fail(f):
        f.write(b"new")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(str(dst), fail)
    assert dst.read_bytes() == b"old" and os.listdir(tmp_path) == ["checkpoint_last.pt"]


def test_fairseq_checkpoint_writes_go_through_the_shim(tmp_path):
    import metro_fairseq.fairseq_patches.atomic_checkpoint_writes as shim

    assert checkpoint_utils.torch_persistent_save is shim.torch_persistent_save
    assert checkpoint_utils.PathManager.copy is shim.AtomicPathManager.copy
    fake_checkpoint(tmp_path / "a.pt", 3)
    assert checkpoint_utils.PathManager.copy(str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), overwrite=True)
    assert (tmp_path / "b.pt").read_bytes() == (tmp_path / "a.pt").read_bytes()


# -- recovery --------------------------------------------------------------------------------------

def test_recovery_picks_the_readable_checkpoint_with_most_updates(tmp_path, caplog):
    fake_checkpoint(tmp_path / "checkpoint_1_6.pt", 6)
    fake_checkpoint(tmp_path / "checkpoint_best.pt", 6)
    fake_checkpoint(tmp_path / "checkpoint_1_3.pt", 3)  # newer file, fewer updates
    (tmp_path / "checkpoint_1_9.pt").write_bytes(b"PK\x03\x04 cut")
    (tmp_path / "checkpoint_last.pt").write_bytes((tmp_path / "checkpoint_1_6.pt").read_bytes()[:999])
    (tmp_path / "checkpoint_1_12.pt.tmp").write_bytes(b"partial")
    assert resume_checkpoint(str(tmp_path)) == "checkpoint_1_6.pt"
    (line,) = [r.getMessage() for r in caplog.records if "resuming from" in r.getMessage()]
    assert f"skipping {tmp_path}/checkpoint_last.pt (it is truncated" in line
    assert f"resuming from {tmp_path}/checkpoint_1_6.pt (update 6)" in line and "also unreadable: checkpoint_1_9.pt" in line
    assert not (tmp_path / "checkpoint_1_12.pt.tmp").exists()


def test_recovery_keeps_a_readable_last_and_refuses_to_start_over(tmp_path):
    assert resume_checkpoint(str(tmp_path)) is None  # a first start
    fake_checkpoint(tmp_path / "checkpoint_last.pt", 3)
    fake_checkpoint(tmp_path / "checkpoint_1_6.pt", 6)
    assert resume_checkpoint(str(tmp_path)) is None  # fairseq's rule: a readable checkpoint_last wins
    (tmp_path / "checkpoint_last.pt").write_bytes(b"junk")
    (tmp_path / "checkpoint_1_6.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="holds checkpoints but none is readable.*move .* away to start over"):
        resume_checkpoint(str(tmp_path))


def test_recovery_only_replaces_the_default_restore_file(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from fairseq.dataclass.configs import CheckpointConfig
    import metro_fairseq.fairseq_patches.resume_recovery as recovery

    assert checkpoint_utils.load_checkpoint is recovery.load_checkpoint
    seen = []
    monkeypatch.setattr(recovery, "_fairseq_load_checkpoint",
                        lambda cfg, trainer, **kw: seen.append((cfg.restore_file, cfg.finetune_from_model)))
    fake_checkpoint(tmp_path / "checkpoint_1_6.pt", 6)  # checkpoint_last.pt never got written
    cfg = CheckpointConfig(save_dir=str(tmp_path), finetune_from_model="pretrained.pt")
    trainer = SimpleNamespace(checkpoint_suffix="")
    recovery.load_checkpoint(cfg, trainer)  # resumed, not re-initialised from the pretrained model
    assert seen[-1] == (str(tmp_path / "checkpoint_1_6.pt"), None)
    assert (cfg.restore_file, cfg.finetune_from_model) == ("checkpoint_last.pt", "pretrained.pt")  # put back
    cfg.no_last_checkpoints = True  # the fine-tuning configs: never resume
    recovery.load_checkpoint(cfg, trainer)
    cfg.no_last_checkpoints, cfg.restore_file = False, "other.pt"
    recovery.load_checkpoint(cfg, trainer)
    assert seen[1:] == [("checkpoint_last.pt", "pretrained.pt"), ("other.pt", "pretrained.pt")]


# -- soak ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def uninterrupted(wiki_bin, tmp_path_factory):
    save = tmp_path_factory.mktemp("uninterrupted")
    r = run(soak_cmd(wiki_bin, save))
    return train_logs(r.stdout + r.stderr), model_state(save / "checkpoint_last.pt")


def model_state(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def assert_same_end(logs, save_dir, uninterrupted):
    straight_logs, straight_model = uninterrupted
    assert SOAK_UPDATES in logs
    for step, stats in logs.items():  # every update any segment logged, the last included
        assert stats["loss"] == straight_logs[step]["loss"], step
    model = model_state(save_dir / "checkpoint_last.pt")
    assert model.keys() == straight_model.keys()
    worst = max((model[k].double() - straight_model[k].double()).abs().max().item() for k in model)
    assert worst <= 1e-6, worst
    return worst


def logged_updates(lines):
    """How many training intervals (--log-interval 1: updates) fairseq logged in ``lines``."""
    return len(read_log(lines).train_inner())


class Segment:
    """One fairseq-train process, its merged output read on a thread."""

    def __init__(self, cmd, env):
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines, self.updates, self.held = [], 0, None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            self.updates += logged_updates([line])
            self.held = self.held or HOLDING.search(line)

    def text(self):
        return "".join(self.lines)

    def wait_for(self, done, timeout=300):
        deadline = time.time() + timeout
        while not done():
            assert self.proc.poll() is None and time.time() < deadline, f"segment ended early:\n{self.text()[-3000:]}"
            time.sleep(0.01)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=300) == -signal.SIGKILL
        self.reader.join()


def kill_plan(rng, kills):
    """(kind, target): 'write' holds the next write of target ('' = any); 'update' kills k updates in."""
    plan = [("write", "checkpoint_last.pt"), ("write", rng.choice(["", "checkpoint_last.pt"]))]
    plan += [("update", rng.randint(1, 5)) for _ in range(kills - len(plan))]
    rng.shuffle(plan)
    return plan


def snapshot(save_dir):
    return {p.name: p.read_bytes() for p in save_dir.glob("checkpoint*.pt")} if save_dir.exists() else {}


def check_held_write(tmp, dst, before):
    """The kill hit a write: the new file is whole under its temporary name, the destination untouched."""
    assert "model" in read_checkpoint(tmp)
    name = os.path.basename(dst)
    if name in before:
        assert open(dst, "rb").read() == before[name], f"{dst} changed"
    else:
        assert not os.path.exists(dst), f"{dst} appeared"
    return name


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_soak_sigkill_at_random_moments_ends_like_an_uninterrupted_run(wiki_bin, uninterrupted, tmp_path):
    rng = random.Random(15)
    save, trigger = tmp_path / "save", tmp_path / "hold"
    cmd, env = soak_cmd(wiki_bin, save), {**os.environ, TEST_HOOK_HOLD_ENV: str(trigger)}
    texts, kills, hit_writes, truncated = [], [], 0, False
    started = time.time()
    for kind, target in kill_plan(rng, 4):
        before = snapshot(save)
        segment = Segment(cmd, env)
        if kind == "write":
            trigger.write_text(target)
            segment.wait_for(lambda: segment.held)
        else:
            segment.wait_for(lambda: segment.updates >= target)
            time.sleep(rng.uniform(0, 0.3))
        segment.kill()
        texts.append(segment.text())
        hit = bool(glob.glob(str(save / "*.pt.tmp")))
        hit_writes += hit
        what = check_held_write(*segment.held.groups(), before) if kind == "write" else f"{target} updates in"
        kills.append(f"{kind} ({what}){' during a write' if hit else ''}")
        if kind == "update" and not truncated and (save / "checkpoint_last.pt").exists():
            truncate(save / "checkpoint_last.pt")  # what a kill inside fairseq's own, non-atomic copy leaves
            truncated = True
    if not truncated:
        truncate(save / "checkpoint_last.pt")
    final = Segment(cmd, env)
    assert final.proc.wait(timeout=300) == 0, final.text()[-3000:]
    final.reader.join()
    texts.append(final.text())
    logs = {}
    for text in texts:  # a later segment's log of an update replaces an earlier one's
        logs.update(train_logs(text))
    assert hit_writes >= 2
    assert any(f"skipping {save}/checkpoint_last.pt (it is truncated" in t for t in texts)
    worst = assert_same_end(logs, save, uninterrupted)
    print(f"soak: {len(kills)} kills: {'; '.join(kills)}; {hit_writes} hit a write; "
          f"max |param diff| {worst}; {time.time() - started:.0f}s")


def test_soak_through_the_sweep_requeue_path(wiki_bin, uninterrupted, tmp_path, monkeypatch):
    from test_sweep import sweep, task_pid, write_spec

    rng = random.Random(16)
    trigger = tmp_path / "hold"
    monkeypatch.setenv(TEST_HOOK_HOLD_ENV, str(trigger))  # the submitit controller, its tasks and fairseq inherit it
    command = shlex.join(soak_cmd(wiki_bin, tmp_path / "unused"))  # the sweep appends its own --save-dir
    spec = write_spec(tmp_path, name="soak", command=command, grid={"--seed": ["7"]})
    (job,) = sweep.launch([spec, "--cluster", "local", "--output-root", str(tmp_path)])
    run_dir = tmp_path / "soak" / "seed_7"
    log = run_dir / "train.log"

    def wait(done, what):
        deadline = time.time() + 300
        while not done():
            assert time.time() < deadline and job.get_info()["jobState"] == "RUNNING", f"{what}: {job.stdout()}"
            time.sleep(0.05)

    def stdout():
        return job.stdout() or ""

    def output():  # fairseq's stderr, where the hook writes, may go to either file
        return (job.stdout() or "") + (job.stderr() or "")

    started, kills, truncated = time.time(), [], False
    for i, (kind, target) in enumerate(kill_plan(rng, 3)):
        before = snapshot(run_dir)  # the previous fairseq is dead, this one has not saved yet
        wait(lambda: stdout().count("running:") == i + 1, "segment start")
        offset = len(log.read_text()) if log.exists() else 0
        if kind == "write":
            holds = output().count("test hook: holding")
            trigger.write_text(target)
            wait(lambda: output().count("test hook: holding") > holds, "held write")
        else:
            wait(lambda: log.exists() and logged_updates(log.read_text()[offset:].splitlines()) >= target, "updates")
            time.sleep(rng.uniform(0, 0.3))
        os.kill(task_pid(job._process.pid), signal.SIGUSR2)  # preemption: the job SIGTERMs fairseq, requeues
        wait(lambda: stdout().count("requeueing") == i + 1, "requeue")
        what = check_held_write(*HOLDING.findall(output())[-1], before) if kind == "write" else f"{target} updates in"
        kills.append(f"{kind} ({what})")
        if kind == "update" and not truncated and (run_dir / "checkpoint_last.pt").exists():
            truncate(run_dir / "checkpoint_last.pt")  # the requeued fairseq is still importing: seconds away
            truncated = True
    job.result()
    text = log.read_text()
    assert "done training" in text and stdout().count("running:") == 4
    assert truncated and f"skipping {run_dir}/checkpoint_last.pt (it is truncated" in output()
    worst = assert_same_end(train_logs(text), run_dir, uninterrupted)
    print(f"sweep soak: {len(kills)} preemptions: {'; '.join(kills)}; max |param diff| {worst}; "
          f"{time.time() - started:.0f}s")
