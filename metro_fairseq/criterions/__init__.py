from . import adversarial_sentence_prediction, metro, span_qa, token_classification  # noqa: F401  (registers the criteria)
