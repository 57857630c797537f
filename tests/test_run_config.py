"""Hydra launcher configs: +run_config=local really runs a multirun; slurm_N compose for SLURM."""
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


@pytest.mark.parametrize("config_dir,config_name,nodes", [
    ("pretraining", "metro_base", 1), ("pretraining", "metro_large", 2), ("pretraining", "cocolm_base", 4),
    ("pretraining", "electra_base", 8), ("finetuning", "rte", 1),
])
def test_slurm_run_config_composes(config_dir, config_name, nodes):
    result = run(HYDRA_TRAIN + [
        "--config-dir", f"metro_fairseq/config/{config_dir}", "--config-name", config_name,
        f"+run_config=slurm_{nodes}", "task.data=somewhere", "checkpoint.finetune_from_model=x.pt",
        "hydra.launcher.partition=learnlab", "--cfg", "all",
    ], cwd=REPO)
    cfg = yaml.safe_load(result.stdout)
    launcher = cfg["hydra"]["launcher"]
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert launcher["nodes"] == nodes and launcher["tasks_per_node"] == launcher["gpus_per_node"] == 8
    assert launcher["partition"] == "learnlab" and launcher["max_num_timeout"] > 0
    assert cfg["hydra"]["job"]["chdir"] is False
    assert cfg["distributed_training"]["distributed_world_size"] == 8 * nodes
    assert cfg["distributed_training"]["distributed_port"] > 0
