"""Import transformers in the project's venv.

fairseq pulls in torchaudio, whose newest wheel is built for an older torch than the one we pin, so
``import torchaudio`` fails; transformers imports it whenever it is installed and then fails too.
Text models never need it: mark it absent (``None`` in ``sys.modules``) when it cannot be imported.
"""
import sys


def import_transformers():
    if "torchaudio" not in sys.modules:
        try:
            import torchaudio  # noqa: F401
        except (ImportError, OSError):
            sys.modules["torchaudio"] = None
    import transformers

    return transformers
