"""Datasets and input checks of the plugin's tasks, and data preparation helpers (one module each)."""
