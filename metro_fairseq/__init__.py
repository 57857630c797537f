"""metro_fairseq: METRO-style pretraining as a fairseq user directory (``--user-dir metro_fairseq``).

fairseq auto-imports only ``models/`` and ``tasks/`` of a user dir and only through
``--user-dir``; importing everything here registers the plugin on a plain ``import metro_fairseq`` too.
"""
from .checkpoint_compat import register_checkpoint_safe_globals

register_checkpoint_safe_globals()

from . import criterions  # noqa: E402,F401
from .models import metro  # noqa: E402,F401
from .tasks import metro_pretraining, squad  # noqa: E402,F401
