from . import metro  # noqa: F401  (registers the criterion)
