"""metro_fairseq: METRO-style pretraining as a fairseq user directory (``--user-dir metro_fairseq``).

Importing the package registers its tasks, models and criterions with fairseq (fairseq auto-imports
only ``models/`` and ``tasks/`` of a user dir, and only through ``--user-dir``) and installs the
plugin's small patches on fairseq, all listed in ``fairseq_patches/__init__.py``.
"""
import logging
import warnings

# importing fairseq prints what no user can act on (fairscale's FutureWarnings about torch.cuda.amp,
# text_to_speech's "Please install tensorboardX"): the plugin's tools (cli/) keep stderr to their own lines
logging.getLogger("fairseq.tasks.text_to_speech").setLevel(logging.WARNING)
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=FutureWarning, module="fairscale")
    from . import fairseq_patches

    fairseq_patches.install()

    from . import criterions, models, tasks  # noqa: F401  (fairseq's registries)
