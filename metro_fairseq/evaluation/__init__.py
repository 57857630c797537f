"""Evaluation helpers that need no training: labelled subsets for learning curves, and a frozen-feature
linear probe of a checkpoint (``metro-probe``, benchmarks/)."""
