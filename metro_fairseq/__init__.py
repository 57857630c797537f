"""metro_fairseq: METRO-style pretraining as a fairseq user directory (``--user-dir metro_fairseq``).

fairseq auto-imports only ``models/`` and ``tasks/`` of a user dir and only through
``--user-dir``; importing everything here registers the plugin on a plain ``import metro_fairseq`` too.
Importing it also installs small shims on fairseq (README, "Crash consistency"): atomic checkpoint
writes, safe checkpoint reading, resume recovery, input checks for ``sentence_prediction``,
``--bf16`` without fairseq's forced ``--tpu`` (``bf16_without_tpu.py``), and fp32 master weights in
``--bf16`` / ``--fp16`` checkpoints (``master_weights_checkpoint.py``).
"""
from .checkpoint_compat import register_checkpoint_safe_globals

register_checkpoint_safe_globals()

from . import (  # noqa: E402
    atomic_checkpoint, bf16_without_tpu, checkpoint_file, checkpoint_recovery, master_weights_checkpoint,
)

atomic_checkpoint.install()
bf16_without_tpu.install()
checkpoint_file.install()
checkpoint_recovery.install()
master_weights_checkpoint.install()

from . import criterions  # noqa: E402,F401
from .models import metro  # noqa: E402,F401
from .tasks import metro_pretraining, sentence_prediction_checks, sentence_prediction_lp_ft, squad  # noqa: E402,F401

sentence_prediction_checks.install()
