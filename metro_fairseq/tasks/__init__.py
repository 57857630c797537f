from . import metro_pretraining, sentence_prediction_lp_ft, squad  # noqa: F401  (registers the tasks)
