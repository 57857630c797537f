from . import metro, metro_architectures  # noqa: F401  (registers the model and its presets)
