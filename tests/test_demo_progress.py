"""scripts/follow_training.sh, the demo's progress display (scripts/demo.sh runs the trainer in the background
and watches its console log), against a trainer stand-in that is slow to create its log."""
import subprocess
import time

from conftest import REPO

WATCH = f"{REPO}/scripts/follow_training.sh"
INNER = '[2026-12-07 05:43:30,001][train_inner][INFO] - {{"epoch": 1, "update": 0.{n}, "loss": "3{n}.1", "num_updates": "{n}0"}}'
VALID = '[2026-12-07 05:43:40,001][valid][INFO] - {"epoch": 1, "valid_loss": "29.7", "valid_num_updates": "30"}'
NOISE = "[2026-12-07 05:43:31,001][fairseq.trainer][INFO] - begin training epoch 1"


def watch(tmp_path, trainer, timeout=30):
    """As scripts/demo.sh does it: the trainer a background job of the shell, the watcher in the foreground
    (the shell reaps the trainer when it exits, which is what ends tail --pid), then the trainer's status."""
    log = tmp_path / "console.log"
    script = f'({trainer}) & pid=$!\n"{WATCH}" "{log}" "$pid"\nwait "$pid"; echo "trainer exit $?"\n'
    start = time.monotonic()
    r = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=timeout)
    return r, time.monotonic() - start


def test_log_created_late(tmp_path):
    # the trainer's log appears only after 1.5 s (a busy machine starting python), then grows, then it exits
    lines = [INNER.format(n=1), NOISE, INNER.format(n=2), VALID, INNER.format(n=3) + " " + "x" * 300,
             "[2026-12-07 05:43:50,001][fairseq_cli.train][INFO] - done training in 20.0 seconds"]
    writes = "; ".join(f"echo '{line}' >> console.log; sleep 0.3" for line in lines)
    r, took = watch(tmp_path, f"sleep 1.5; {writes}; exit 3")
    assert "tail:" not in r.stderr and r.stderr == "", r.stderr
    expected = [INNER.format(n=1), INNER.format(n=2), VALID, (INNER.format(n=3) + " " + "x" * 300)[:240], lines[-1],
                "trainer exit 3"]
    assert r.stdout.splitlines() == expected
    assert took < 15, took  # returned when the trainer exited, not at the timeout


def test_trainer_exits_without_log(tmp_path):
    r, took = watch(tmp_path, "sleep 0.5; exit 1")
    assert (r.stdout, r.stderr) == ("trainer exit 1\n", "")
    assert took < 10, took


def test_log_already_there(tmp_path):
    # a log the caller created (scripts/demo.sh creates it empty before starting the trainer) is shown from line 1
    (tmp_path / "console.log").write_text(INNER.format(n=1) + "\n")
    r, _ = watch(tmp_path, f"sleep 0.5; echo '{VALID}' >> console.log; sleep 0.5")
    assert r.stdout.splitlines() == [INNER.format(n=1), VALID, "trainer exit 0"] and r.stderr == ""
