# fairseq's --user-dir imports this package (and models/): the plugin's install call, patches and registries
from .. import plugin

plugin.install()

from . import metro_pretraining, sentence_prediction_lp_ft, squad, token_classification  # noqa: E402,F401  (registers the tasks)
