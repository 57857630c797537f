"""``metro-sweep``: launch a sweep of fairseq runs (pretraining or fine-tuning grids) with submitit.

    metro-sweep sweeps/glue.yaml --dry-run                 # print commands + SLURM settings
    metro-sweep sweeps/glue.yaml --partition learnlab      # submit to SLURM
    metro-sweep sweeps/glue.yaml --cluster local --wait    # same jobs on this machine

Every run gets <output-root>/<spec name>/<run name>; finished runs (log says 'done training' and
the checkpoint loads) are skipped, others (re)start and resume from their checkpoint_last.pt.
Preempted or timed-out SLURM jobs are requeued (up to --max-num-timeout times).
"""
import argparse
import logging
import os
import shlex
import zlib

import submitit

from ..launcher.fairseq_job import FairseqJob, finished_checkpoint
from ..launcher.sweep_spec import SpecError, expand, load_spec
from .messages import fail, one_line_errors

TOOL = "sweep"

# option -> (default, help); a spec's `slurm:` block overrides the default, the command line both
SLURM_OPTIONS = {
    "partition": (None, "SLURM partition (sbatch --partition); required to submit to SLURM"),
    "nodes": (1, "nodes per run; fairseq reads the SLURM environment to set ranks"),
    "gpus_per_node": (8, "GPUs per node; one SLURM task (fairseq process) per GPU"),
    "cpus_per_task": (10, "CPU cores per task, for data loading workers"),
    "mem_gb": (0, "memory per node in GB (0 = SLURM's default: all of the node's memory with --exclusive setups)"),
    "time_min": (4320, "time limit per job in minutes; the job is requeued and resumes when it expires"),
    "constraint": (None, "node features (sbatch --constraint), e.g. volta32gb"),
    "account": (None, "account to charge (sbatch --account)"),
    "max_num_timeout": (20, "how many times a run may be requeued after preemption or time limit"),
    "array_parallelism": (64, "how many runs of the sweep may run at once"),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", help="sweep spec (YAML: name, command, grid, optional slurm defaults)")
    p.add_argument("--cluster", choices=["slurm", "local"], default="slurm",
                   help="slurm: sbatch through submitit; local: submitit's local executor on this machine")
    p.add_argument("--output-root", default="sweeps", help="runs go to OUTPUT_ROOT/<spec name>/<run name>")
    p.add_argument("--dry-run", action="store_true", help="print the runs and SLURM settings, submit nothing")
    p.add_argument("--wait", action="store_true", help="wait for the jobs and report how each ended")
    p.add_argument("--signal-delay-s", type=int, default=120,
                   help="seconds before the time limit at which the job is told to stop and requeue")
    for name, (default, help_text) in SLURM_OPTIONS.items():
        p.add_argument("--" + name.replace("_", "-"), type=type(default) if default is not None else str,
                       default=argparse.SUPPRESS, help=f"{help_text} (default: {default})")
    return p.parse_args(argv)


def slurm_settings(args, spec):
    settings = {name: default for name, (default, _) in SLURM_OPTIONS.items()}
    unknown = set(spec.slurm) - set(settings)
    if unknown:
        raise SpecError(f"unknown slurm option(s) {sorted(unknown)} in the spec; known: {sorted(settings)}")
    settings.update(spec.slurm)
    settings.update({k: v for k, v in vars(args).items() if k in settings})
    return settings


def distributed_args(run, settings, hydra_style):
    """A fixed per-run port for multi-GPU jobs: fairseq builds its tcp:// init method from SLURM's node list."""
    if settings["nodes"] * settings["gpus_per_node"] <= 1:
        return []
    port = 10000 + zlib.crc32(run.run_dir.encode()) % 20000
    return [f"distributed_training.distributed_port={port}"] if hydra_style else ["--distributed-port", str(port)]


def make_executor(args, spec, settings):
    folder = os.path.join(args.output_root, spec.name, ".submitit")
    executor = submitit.AutoExecutor(
        folder=folder, cluster=args.cluster, **{f"{args.cluster}_max_num_timeout": settings["max_num_timeout"]}
    )
    params = dict(
        name=spec.name, timeout_min=settings["time_min"], nodes=settings["nodes"],
        tasks_per_node=max(1, settings["gpus_per_node"]), gpus_per_node=settings["gpus_per_node"],
        cpus_per_task=settings["cpus_per_task"], slurm_signal_delay_s=args.signal_delay_s,
        slurm_array_parallelism=settings["array_parallelism"],
    )
    if args.cluster == "local":  # one process per run here, whatever the GPU count asks for
        params.update(tasks_per_node=1, gpus_per_node=0)
    if settings["mem_gb"]:
        params["mem_gb"] = settings["mem_gb"]
    for name in ("partition", "constraint", "account"):
        if settings[name]:
            params[f"slurm_{name}"] = settings[name]
    executor.update_parameters(**params)
    return executor


@one_line_errors(TOOL)
def launch(argv=None) -> list:
    """The sweep as a function: the submitit jobs launched (none for --dry-run or when all runs are finished)."""
    args = parse_args(argv)
    logging.getLogger("fairseq").setLevel(logging.WARNING)  # fairseq's INFO lines stay out of the report
    try:
        spec = load_spec(args.spec)
        settings = slurm_settings(args, spec)
        runs = expand(spec, args.output_root)
    except (SpecError, OSError) as e:
        fail(TOOL, e)
    if args.cluster == "slurm" and not settings["partition"] and not args.dry_run:
        fail(TOOL, "no SLURM partition; pass --partition NAME (or --cluster local to run here)")

    todo = []
    for run in runs:
        done = finished_checkpoint(run.run_dir)
        if done:
            print(f"[skip] {run.name}: finished ({done})")
            continue
        todo.append((run, run.command + distributed_args(run, settings, spec.hydra_style)))
    print(f"{len(runs)} runs in sweep '{spec.name}', {len(todo)} to launch, {len(runs) - len(todo)} finished")
    if args.dry_run:
        print("settings: " + " ".join(f"{k}={v}" for k, v in settings.items()) + f" cluster={args.cluster}")
        for run, command in todo:
            print(f"[run] {run.name}\n  {shlex.join(command)}")
        return []
    if not todo:
        return []

    executor = make_executor(args, spec, settings)
    workdir = os.getcwd()
    with executor.batch():
        jobs = [executor.submit(FairseqJob(command, run.run_dir, workdir)) for run, command in todo]
    for (run, _), job in zip(todo, jobs):
        print(f"[submitted] {run.name}: job {job.job_id}, logs {job.paths.stdout}")
    if args.wait:
        failed = 0
        for (run, _), job in zip(todo, jobs):
            try:
                job.result()
                print(f"[done] {run.name}")
            except Exception as e:  # report every run, then fail once
                failed += 1
                print(f"[failed] {run.name}: {str(e).strip().splitlines()[-1]}")
        if failed:
            fail(TOOL, f"{failed} of {len(jobs)} runs failed")
    return jobs


def main(argv=None) -> None:
    launch(argv)


if __name__ == "__main__":
    main()
