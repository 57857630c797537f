from . import metro, span_qa  # noqa: F401  (registers the criteria)
