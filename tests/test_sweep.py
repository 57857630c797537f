"""metro-sweep (cli/sweep.py): spec parsing, run naming, skip-finished, dry run, real local jobs (requeue: tests/test_crash_consistency.py)."""
import functools
import glob
import os
import re
import sys

import pytest
import yaml

from conftest import REPO, USER_DIR
from metro_fairseq.cli import glue_results, prepare_corpus, prepare_glue, sweep
from metro_fairseq.fairseq_log import read_log
from metro_fairseq.launcher.fairseq_job import finished_checkpoint
from metro_fairseq.launcher.sweep_spec import SpecError, expand, load_spec


def write_spec(tmp_path, **spec):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(path)


def pretrain_command(data, max_update, save_every):
    return (
        f"{sys.executable} -m fairseq_cli.train {data} --user-dir {USER_DIR} --task metro_pretraining "
        "--criterion metro --arch metro_tiny --tokens-per-sample 64 --batch-size 8 --optimizer adam "
        f"--lr-scheduler polynomial_decay --warmup-updates 5 --total-num-update {max_update} "
        f"--max-update {max_update} --save-interval-updates {save_every} --no-epoch-checkpoints "
        "--keep-interval-updates 1 --log-interval 5 --log-format json --cpu --num-workers 0 --data-buffer-size 0"
    )


def test_spec_expands_grid_into_named_runs(tmp_path):
    spec = load_spec(write_spec(
        tmp_path, name="glue",
        command="fairseq-hydra-train --config-dir cfg --config-name {task} task.data=bin/{task}",
        grid={"task": ["rte", "mrpc"], "optimization.lr": ["[1e-5]", "[2e-5]"], "common.seed": [1, 2, 3]},
    ))
    runs = expand(spec, "out")
    assert len(runs) == 12 and len({r.run_dir for r in runs}) == 12
    first = runs[0]
    assert first.name == "task_rte.lr_1e-5.seed_1"
    assert first.run_dir == "out/glue/task_rte.lr_1e-5.seed_1"
    assert first.command[:6] == ["fairseq-hydra-train", "--config-dir", "cfg", "--config-name", "rte", "task.data=bin/rte"]
    assert "optimization.lr=[1e-5]" in first.command and "common.seed=1" in first.command
    assert f"checkpoint.save_dir={first.run_dir}" in first.command
    assert "hydra.job.chdir=false" in first.command and "task=rte" not in " ".join(first.command)


def test_spec_cli_flags_and_errors(tmp_path):
    spec = load_spec(write_spec(tmp_path, name="pre", command="fairseq-train data", grid={"--lr": [1e-4], "--fp16": [True]}))
    (run,) = expand(spec, "o")
    assert run.command == ["fairseq-train", "data", "--lr", "0.0001", "--fp16", "--save-dir", "o/pre/lr_0.0001.fp16_true",
                           "--log-file", "o/pre/lr_0.0001.fp16_true/train.log"]
    with pytest.raises(SpecError, match="unknown key"):
        load_spec(write_spec(tmp_path, name="x", command="c", grids={}))
    with pytest.raises(SpecError, match="non-empty list"):
        load_spec(write_spec(tmp_path, name="x", command="c", grid={"--lr": 1e-4}))
    with pytest.raises(SpecError, match=r"uses \{task\}"):
        expand(load_spec(write_spec(tmp_path, name="x", command="c {task}", grid={"--lr": [1]})), "o")
    with pytest.raises(SpecError, match="same name"):
        expand(load_spec(write_spec(tmp_path, name="x", command="c", grid={"a.lr": [1], "b.lr": [1]})), "o")


def test_mapping_grid_values_fill_fields_and_name_runs(tmp_path):
    spec = load_spec(write_spec(
        tmp_path, name="glue",
        command="fairseq-hydra-train --config-dir cfg --config-name {task[config]} task.data=glue-bin/{task[data]}",
        grid={"task": [{"config": "sst_2", "data": "SST-2"}, {"config": "rte", "data": "RTE"}], "common.seed": [3]},
    ))
    first, second = expand(spec, "out")
    assert first.name == "task_sst_2.seed_3" and second.name == "task_rte.seed_3"  # named by the first field
    assert first.command[:6] == ["fairseq-hydra-train", "--config-dir", "cfg", "--config-name", "sst_2", "task.data=glue-bin/SST-2"]
    assert "common.seed=3" in first.command and not any(c.startswith("task=") for c in first.command)
    assert first.overrides["task"] == {"config": "sst_2", "data": "SST-2"}
    assert glue_results.task_of(first.run_dir) == "SST-2" and glue_results.task_of(second.run_dir) == "RTE"


@pytest.mark.parametrize("command,grid,error", [
    ("c --config-name {task[config]} d={task[folder]}", {"task": [{"config": "rte", "data": "RTE"}]},
     r"^command uses \{task\[folder\]\} but the value \{config: rte, data: RTE\} of 'task' has no field 'folder' "
     r"\(its fields: config, data\)$"),
    ("c", {"task": [{"config": "rte"}], "--lr": [1]},
     r"^grid key 'task' has mapping values but the command has no \{task\[field\]\} placeholder"),
    ("c {task}", {"task": [{"config": "rte"}]}, r"^command uses \{task\} but the values of 'task' are mappings"),
    ("c {task[config]}", {"task": [{"config": "rte"}, "mrpc"]}, r"^command uses \{task\[config\]\} but the value 'mrpc' .* not a mapping"),
    ("c {task[config]}", {"task": [{}]}, r"empty mapping"),
    ("c {task[config]}", {"task": [{"config": ["rte"]}]}, r"must be a plain value"),
])
def test_mapping_grid_value_errors_are_one_line(tmp_path, command, grid, error):
    spec = load_spec(write_spec(tmp_path, name="x", command=command, grid=grid))
    with pytest.raises(SpecError, match=error) as e:
        expand(spec, "o")
    assert "\n" not in str(e.value)
    cli_error = "^sweep: error: " + (error[1:] if error.startswith("^") else ".*" + error)
    with pytest.raises(SystemExit, match=cli_error):  # and the CLI says it in one line
        sweep.main([write_spec(tmp_path, name="x", command=command, grid=grid), "--dry-run"])


def option_value(command, option):
    """The value of ``option`` (``--config-name``) or of the hydra override ``option=`` in an expanded command."""
    if option.startswith("--"):
        return command[command.index(option) + 1] if option in command else None
    return next((c.split("=", 1)[1] for c in command if c.startswith(option + "=")), None)


@functools.lru_cache(maxsize=None)
def config_task(config_dir, name):
    """task._name of a config file, or of the first config its hydra defaults list composes that sets it."""
    with open(os.path.join(config_dir, f"{name}.yaml"), encoding="utf-8") as f:
        config = yaml.safe_load(f) or {}
    if "_name" in (config.get("task") or {}):
        return config["task"]["_name"]
    for entry in config.get("defaults") or []:
        if isinstance(entry, str) and entry != "_self_":
            found = config_task(config_dir, entry.lstrip("/"))
            if found:
                return found
    return None


def documented_destdir(module):
    """The --destdir a data preparation tool's usage (its module docstring) writes to."""
    return re.search(r"--destdir (\S+)", module.__doc__).group(1)


SWEEP_SPECS = sorted(glob.glob(os.path.join(REPO, "metro_fairseq", "config", "sweeps", "*.yaml")))


@pytest.mark.parametrize("path", SWEEP_SPECS, ids=[os.path.basename(p) for p in SWEEP_SPECS])
def test_example_specs_point_at_configs_and_prepared_data(path):
    """Each run's --config-name exists and its task.data is a folder the data preparation tools write:
    <prepare_glue --destdir>/<prepare_glue task folder> for GLUE configs (sentence_prediction), matching the
    config (sst_2 <-> SST-2) and glue_results' task of the run name; prepare_corpus's destdir for pretraining."""
    glue_folders = set(prepare_glue.TASKS) & set(glue_results.TASKS)  # the folders prepare_glue writes, GLUE tasks only
    assert len(glue_folders) == 9
    runs = expand(load_spec(path), "sweeps")
    for run in runs:
        config_dir, config = option_value(run.command, "--config-dir"), option_value(run.command, "--config-name")
        config_path = os.path.join(REPO, config_dir, f"{config}.yaml")
        assert os.path.exists(config_path), f"{run.name}: no config {config_path}"
        task = config_task(os.path.join(REPO, config_dir), config)
        data = option_value(run.command, "task.data")
        assert data, f"{run.name}: no task.data override"
        if task == "sentence_prediction":
            root, folder = os.path.split(data)
            assert root == documented_destdir(prepare_glue), f"{run.name}: {data} is not under prepare_glue's destdir"
            assert folder in glue_folders, f"{run.name}: prepare_glue writes no folder {folder!r} ({sorted(glue_folders)})"
            assert folder.lower().replace("-", "_") == config, f"{run.name}: config {config} reads the data of {folder}"
            assert glue_results.task_of(run.run_dir) == folder, f"glue_results does not find {folder} in {run.run_dir}"
        elif task == "metro_pretraining":
            assert data == documented_destdir(prepare_corpus), f"{run.name}: {data} is not prepare_corpus's destdir"
        else:
            pytest.fail(f"{run.name}: no data check for task {task!r}; add one to this test")


def test_bad_spec_and_missing_partition_exit_with_one_line(tmp_path, capsys):
    bad = write_spec(tmp_path, name="x", command="c", grid={"--lr": 1})
    with pytest.raises(SystemExit, match="^sweep: .*non-empty list"):
        sweep.main([bad])
    good = write_spec(tmp_path, name="x", command="c", grid={"--lr": [1]})
    with pytest.raises(SystemExit, match="--partition"):
        sweep.main([good, "--output-root", str(tmp_path)])


def test_dry_run_prints_commands_and_slurm_settings(tmp_path, capsys):
    spec = write_spec(tmp_path, name="pre", command="fairseq-train data --arch metro_base",
                      grid={"--lr": ["2e-4", "4e-4"]}, slurm={"partition": "learnlab", "gpus_per_node": 8})
    assert sweep.launch([spec, "--dry-run", "--nodes", "2", "--time-min", "600", "--output-root", str(tmp_path)]) == []
    out = capsys.readouterr().out
    assert "2 runs in sweep 'pre', 2 to launch, 0 finished" in out
    assert "partition=learnlab nodes=2 gpus_per_node=8" in out and "time_min=600" in out
    commands = re.findall(r"^  (fairseq-train .*)$", out, re.M)
    assert len(commands) == 2
    assert all("--distributed-port" in c for c in commands)  # 16 GPUs: fairseq's SLURM init needs a port
    assert not (tmp_path / "pre").exists()  # nothing submitted


def test_finished_checkpoint_needs_log_and_loadable_checkpoint(tmp_path):
    assert finished_checkpoint(str(tmp_path)) is None
    (tmp_path / "train.log").write_text("epoch 001 | loss 3.2\n")
    (tmp_path / "checkpoint_last.pt").write_bytes(b"truncated")
    assert finished_checkpoint(str(tmp_path)) is None
    (tmp_path / "train.log").write_text("done training in 3.0 seconds\n")
    assert finished_checkpoint(str(tmp_path)) is None  # the checkpoint does not load


@pytest.fixture(scope="module")
def local_sweep(wiki_bin, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    spec = write_spec(out, name="tiny", command=pretrain_command(wiki_bin, 20, 10), grid={"--lr": ["1e-3", "2e-3"]})
    jobs = sweep.launch([spec, "--cluster", "local", "--wait", "--output-root", str(out)])
    return spec, out, jobs


def test_local_sweep_trains_both_runs_then_skips_them(local_sweep, capsys):
    spec, out, jobs = local_sweep
    assert len(jobs) == 2
    for lr in ("1e-3", "2e-3"):
        run_dir = out / "tiny" / f"lr_{lr}"
        log = (run_dir / "train.log").read_text()
        assert "done training" in log and read_log(log.splitlines()).train()[-1].num_updates == 20
        assert finished_checkpoint(str(run_dir)) == str(run_dir / "checkpoint_last.pt")
    capsys.readouterr()
    assert sweep.launch([spec, "--cluster", "local", "--output-root", str(out)]) == []
    assert "2 runs in sweep 'tiny', 0 to launch, 2 finished" in capsys.readouterr().out


def task_pid(controller_pid):
    """The submitit task process started by the local controller (what SLURM signals on preemption)."""
    with open(f"/proc/{controller_pid}/task/{controller_pid}/children") as f:
        children = f.read().split()
    return int(children[0]) if children else None


@pytest.mark.parametrize("spec_name,runs,config_dir", [("pretrain_base", 4, "pretraining"), ("glue_base", 120, "finetuning")])
def test_example_specs_expand_to_existing_configs(spec_name, runs, config_dir):
    spec = load_spec(os.path.join(REPO, "metro_fairseq", "config", "sweeps", f"{spec_name}.yaml"))
    expanded = expand(spec, "sweeps")
    assert len(expanded) == runs
    for run in expanded:
        config = run.command[run.command.index("--config-name") + 1]
        assert os.path.exists(os.path.join(REPO, "metro_fairseq", "config", config_dir, f"{config}.yaml")), config
