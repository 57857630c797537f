"""The plugin, installed by one call: the patches on fairseq (``fairseq_patches/``) and fairseq's
registries (the plugin's tasks, models and criterions).

``fairseq-train --user-dir metro_fairseq`` (and ``common.user_dir`` under fairseq-hydra-train) imports
``metro_fairseq.tasks``, whose ``__init__`` calls ``install()``. Code that drives fairseq in-process (the
tools, the benchmarks, the tests, a user's own script) calls it before its first parse; installing twice
is harmless. Nothing else in the package changes fairseq on import, so its other modules (data
preparation, log reading, evaluation) import without fairseq's start-up cost.
"""
import logging
import warnings


def install() -> None:
    # importing fairseq prints what no user can act on (fairscale's FutureWarnings about torch.cuda.amp,
    # text_to_speech's "Please install tensorboardX"): the tools keep stderr to their own lines
    logging.getLogger("fairseq.tasks.text_to_speech").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="fairscale")
        from . import fairseq_patches

        fairseq_patches.install()

        from . import criterions, models, tasks  # noqa: F401  (fairseq's registries)
