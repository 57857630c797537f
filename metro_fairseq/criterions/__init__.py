from . import adversarial_sentence_prediction, metro, span_qa  # noqa: F401  (registers the criteria)
