"""metro_fairseq: METRO-style pretraining as a fairseq user directory (``--user-dir metro_fairseq``).

Importing the package registers its tasks, models and criterions with fairseq (fairseq auto-imports
only ``models/`` and ``tasks/`` of a user dir, and only through ``--user-dir``) and installs the
plugin's small patches on fairseq, all listed in ``fairseq_patches/__init__.py``.
"""
from . import fairseq_patches

fairseq_patches.install()

from . import criterions, models, tasks  # noqa: E402,F401  (fairseq's registries)
