"""Sweeps of fairseq runs on SLURM (or this machine) through submitit; see scripts/sweep.py."""
