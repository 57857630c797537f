"""Patch: a ``MetroError`` (a problem the user can fix) ends fairseq-train with one line.

Wraps: ``fairseq.distributed.utils.call_main``, which runs fairseq-train's and fairseq-hydra-train's
main in this process (one GPU or CPU; spawned workers keep their tracebacks).
Why: fairseq's ``Trainer.load_checkpoint`` re-raises anything raised while loading weights as
"Cannot load model parameters ...; please ensure that the architectures match", which hides the cause
(a wrong dictionary, other architecture options); the plugin's errors travel as its context instead.
The run stops with ``metro_fairseq: error: MESSAGE`` (exit status 1) as the last line.
Tested by: tests/test_end_to_end.py (``test_resume_with_other_dictionary_is_refused``),
tests/test_finetuning.py (``test_missing_or_mismatched_checkpoint_fails``).
"""
import functools
from typing import Optional

from fairseq.distributed import utils as distributed_utils

from ..errors import MetroError


def metro_error_in_chain(error: BaseException) -> Optional[MetroError]:
    """The first MetroError among ``error``, its cause and the exceptions it was raised while handling."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, MetroError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def install() -> None:
    call_main = distributed_utils.call_main
    if getattr(call_main, "_metro_one_line_errors", False):
        return

    @functools.wraps(call_main)
    def call_main_with_one_line_errors(cfg, main, **kwargs):
        try:
            return call_main(cfg, main, **kwargs)
        except Exception as e:  # noqa: BLE001  (anything fairseq wrapped around a MetroError)
            found = metro_error_in_chain(e)
            if found is None:
                raise
            raise SystemExit(f"metro_fairseq: error: {found}") from None

    call_main_with_one_line_errors._metro_one_line_errors = True
    distributed_utils.call_main = call_main_with_one_line_errors
