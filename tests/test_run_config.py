"""Hydra launcher configs: +run_config=local really runs a multirun; slurm_N compose for SLURM."""
import os
import re
import sys

import pytest
import yaml

from conftest import REPO, run
from metro_fairseq.fairseq_log import read_log
from test_presets import TINY

HYDRA_TRAIN = [sys.executable, "-m", "fairseq_cli.hydra_train"]


def test_local_run_config_runs_each_sweep_job(wiki_bin, tmp_path):
    sweep_dir = tmp_path / "sweep"
    run(HYDRA_TRAIN + [
        "-m", "--config-dir", "metro_fairseq/config/pretraining", "--config-name", "metro_base", "+run_config=local",
        f"task.data={wiki_bin}", *TINY, "common.cpu=true", "common.fp16=false", "task.tokens_per_sample=64",
        "dataset.batch_size=8", "dataset.num_workers=0", "dataset.disable_validation=true",
        "optimization.update_freq=[1]", "optimization.max_update=10", "lr_scheduler.warmup_updates=3",
        "lr_scheduler.total_num_update=10", "checkpoint.save_interval_updates=0", "dataset.data_buffer_size=0",
        "optimization.lr=[0.001],[0.002]", f"hydra.sweep.dir={sweep_dir}", "hydra.sweep.subdir=job${hydra.job.num}",
        "common.log_format=json",
    ])
    for job, lr in (("job0", 0.001), ("job1", 0.002)):
        log = (sweep_dir / job / "train.log").read_text()
        assert "done training" in log and read_log(log.splitlines()).train()[-1].num_updates == 10
        assert (sweep_dir / job / "checkpoint_last.pt").exists()
        config = yaml.safe_load((sweep_dir / job / ".hydra" / "config.yaml").read_text())
        assert config["optimization"]["lr"] == [lr]


def sbatch_text(launcher: dict, folder, monkeypatch) -> str:
    """The sbatch file submitit writes for these launcher settings, mapped as hydra-submitit-launcher
    maps them (its SlurmLauncher.launch): base queue keys as they are, the rest prefixed slurm_."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    # submitit refuses to build a SLURM executor where srun is missing; the file it writes is the same
    monkeypatch.setattr(submitit.slurm.slurm.SlurmExecutor, "affinity", classmethod(lambda cls: 1))

    init_keys = {"submitit_folder", "max_num_timeout", "_target_"}
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor = submitit.AutoExecutor(folder=str(folder), cluster="slurm", slurm_max_num_timeout=launcher["max_num_timeout"])
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in launcher.items()
                                  if k not in init_keys and v is not None})
    return executor._executor._make_submission_file_text("python -m job", "0")


def slurm_ranks(distributed: dict, nodes: int, tasks_per_node: int, tmp_path, monkeypatch):
    """(rank, device id, world size, init method) that fairseq infers in each SLURM task of the job."""
    from fairseq.dataclass.configs import DistributedTrainingConfig
    from fairseq.distributed.utils import _infer_slurm_init
    from omegaconf import OmegaConf

    scontrol = tmp_path / "bin" / "scontrol"  # `scontrol show hostnames` of the allocation
    scontrol.parent.mkdir()
    scontrol.write_text("#!/bin/sh\n" + "".join(f"echo node{i}\n" for i in range(nodes)))
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{scontrol.parent}:{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_NODELIST", f"node[0-{nodes - 1}]")
    monkeypatch.setenv("SLURM_NNODES", str(nodes))
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", str(tasks_per_node))
    inferred = []
    for node in range(nodes):
        for local in range(tasks_per_node):
            monkeypatch.setenv("SLURM_NODEID", str(node))
            monkeypatch.setenv("SLURM_LOCALID", str(local))
            monkeypatch.setenv("SLURM_PROCID", str(node * tasks_per_node + local))
            cfg = OmegaConf.merge(OmegaConf.structured(DistributedTrainingConfig), distributed)
            assert _infer_slurm_init(cfg, None)
            inferred.append((cfg.distributed_rank, cfg.device_id, cfg.distributed_world_size,
                             cfg.distributed_init_method))
    return inferred


@pytest.mark.parametrize("config_dir,config_name,nodes", [
    ("pretraining", "metro_base", 1), ("pretraining", "metro_large", 2), ("pretraining", "cocolm_base", 4),
    ("pretraining", "electra_base", 8), ("finetuning", "rte", 1),
])
def test_slurm_run_config_gives_every_gpu_one_rank(config_dir, config_name, nodes, tmp_path, monkeypatch):
    """From the composed config to what SLURM and fairseq do with it: the sbatch file submitit writes
    asks for N nodes of one task per GPU, and fairseq, reading each task's SLURM environment, gives
    every task its own rank and GPU of one world whose size is the config's."""
    result = run(HYDRA_TRAIN + [
        "--config-dir", f"metro_fairseq/config/{config_dir}", "--config-name", config_name,
        f"+run_config=slurm_{nodes}", "task.data=somewhere", "checkpoint.finetune_from_model=x.pt",
        "hydra.launcher.partition=learnlab", "--cfg", "all",
    ], cwd=REPO)
    cfg = yaml.safe_load(result.stdout)
    launcher = cfg["hydra"]["launcher"]
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    sbatch = sbatch_text(launcher, tmp_path / "submitit", monkeypatch)
    assert f"#SBATCH --nodes={nodes}\n" in sbatch and "#SBATCH --partition=learnlab\n" in sbatch
    tasks = int(re.search(r"#SBATCH --ntasks-per-node=(\d+)", sbatch).group(1))
    gpus = int(re.search(r"#SBATCH --gpus-per-node=(\d+)", sbatch).group(1))
    assert tasks == gpus and re.search(r"#SBATCH --signal=USR2@\d+", sbatch)  # one task per GPU; requeue signal
    inferred = slurm_ranks(cfg["distributed_training"], nodes, tasks, tmp_path, monkeypatch)
    world = cfg["distributed_training"]["distributed_world_size"]
    port = cfg["distributed_training"]["distributed_port"]
    assert sorted(rank for rank, *_ in inferred) == list(range(world)) == list(range(nodes * gpus))
    assert {device for _, device, *_ in inferred} == set(range(gpus))
    assert {(w, init) for *_, w, init in inferred} == {(world, f"tcp://node0:{port}")}
    assert launcher["max_num_timeout"] > 0 and cfg["hydra"]["job"]["chdir"] is False
