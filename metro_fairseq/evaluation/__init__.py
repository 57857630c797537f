"""Evaluation helpers that need no training: labelled subsets for learning curves, a frozen-feature
linear probe of a checkpoint (scripts/probe_checkpoint.py, benchmarks/), and the cross-lingual
evaluation on LibreOffice Help (module classification, translation retrieval; benchmarks/cross_lingual.py)."""
