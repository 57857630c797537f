"""The set-up's venv holds no broken package (issue 29): in a fresh interpreter of this venv, plain
`from transformers import ...` and `import fairseq` work, and torchaudio (a declared dependency of
fairseq that its text tasks never import) is either absent or importable. A torchaudio wheel built for
another torch fails to load its _torchaudio.so, and transformers imports torchaudio whenever it is
installed, so every model class import then fails with OSError; scripts/setup_env.sh removes such a
torchaudio."""
import importlib.util
import subprocess
import sys

import pytest

FIX = "scripts/setup_env.sh removes a torchaudio that does not load; run it again"


def fresh(code, cwd):
    # a new interpreter of the venv under test (sys.executable): nothing this process imported helps it
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600)


def failure(result):
    return f"exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"


def test_torchaudio_is_absent_or_importable(tmp_path):
    result = fresh(
        "import importlib.util\n"
        "if importlib.util.find_spec('torchaudio') is None:\n"
        "    print('absent')\n"
        "else:\n"
        "    import torchaudio\n"
        "    print('importable', torchaudio.__version__)\n",
        tmp_path,
    )
    assert result.returncode == 0, f"torchaudio is installed but does not import ({FIX}):\n{failure(result)}"
    assert result.stdout.split()[0] in ("absent", "importable"), failure(result)


def test_plain_transformers_and_fairseq_imports(tmp_path):
    if importlib.util.find_spec("transformers") is None:  # the [hf] extra (scripts/setup_env.sh installs it)
        pytest.skip("transformers is not installed")
    result = fresh(
        "from transformers import pipeline, DebertaV2Model, BertModel\n"
        "import fairseq\n"
        "import fairseq.tasks.sentence_prediction\n"
        "print('ok', DebertaV2Model.__name__, BertModel.__name__, callable(pipeline))\n",
        tmp_path,
    )
    assert result.returncode == 0, f"plain imports fail in this venv ({FIX} if torchaudio is named):\n{failure(result)}"
    assert result.stdout.split() == ["ok", "DebertaV2Model", "BertModel", "True"], failure(result)
