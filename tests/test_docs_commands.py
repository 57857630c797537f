"""Every shell command of README.md and docs/**/*.md is one that works: its program exists, and its flags
parse (the project's scripts and entry points with their own argparse parsers, fairseq-train & co. with
fairseq's, fairseq-hydra-train by composing the config with the overrides); nothing is trained or read.
How the docs are read: tests/doc_shell.py; how each kind of command is checked: tests/doc_commands.py.
One test per doc line; the self-tests below feed made-up docs to the same checker and expect it to fail them."""
import os
import runpy
import textwrap

import pytest

import doc_commands
import doc_shell
from doc_commands import check, entry_points, standin
from doc_shell import REPO, commands_in_markdown, doc_files, untagged_commands

DOC_COMMANDS = doc_shell.doc_commands(standin)


def failures(commands):
    found = []
    for command in commands:
        error = check(command)
        if error:
            notes = "".join(f"\n      ({note})" for note in command.notes)
            found.append(f"{command.where}: `{command.text}`{notes}\n    -> {error}")
    return found


def test_docs_are_found():
    docs = doc_files()
    assert "README.md" in docs and all(d == "README.md" or d.startswith("docs" + os.sep) for d in docs)
    assert DOC_COMMANDS, "no shell command in the docs: is the fence parsing broken?"


@pytest.mark.parametrize("where", sorted(DOC_COMMANDS, key=lambda w: (w.split(":")[0], int(w.split(":")[1]))))
def test_doc_command(where):
    found = failures(DOC_COMMANDS[where])
    if found:
        pytest.fail("\n".join(found), pytrace=False)


@pytest.mark.parametrize("doc", doc_files())
def test_untagged_blocks_hold_no_commands(doc):
    with open(os.path.join(REPO, doc), encoding="utf-8") as f:
        found = untagged_commands(f.read(), doc, entry_points())
    assert not found, "a command in an untagged block (tag it ```bash, or ```text if it is output):\n" + \
        "\n".join(found)


# ------------------------------------------------------------------------------------------- self-tests


def snippet_failures(shell: str, tag: str = "bash"):
    text = f"Some text.\n\n```{tag}\n{textwrap.dedent(shell).strip()}\n```\n"
    commands = commands_in_markdown(text, "made-up.md", standin)
    assert commands, "the made-up doc has no command"
    return failures(commands)


TRAIN = "fairseq-train data-bin/x --user-dir metro_fairseq --task metro_pretraining --criterion metro --arch metro_tiny"
HYDRA = "fairseq-hydra-train --config-dir metro_fairseq/config/pretraining --config-name metro_base task.data=x"
MULTIRUN = HYDRA.replace("fairseq-hydra-train", "fairseq-hydra-train -m")


@pytest.mark.parametrize("good,bad,error", [
    ("python scripts/prepare_corpus.py --train a --valid b --destdir c --vocab-size 8000",  # a project script's flag
     "python scripts/prepare_corpus.py --train a --valid b --destdir c --vocab-sise 8000",
     "unrecognized arguments: --vocab-sise"),
    ("python scripts/prepare_corpus.py --train a --valid b --destdir c --vocab-size 8000",  # its value type
     "python scripts/prepare_corpus.py --train a --valid b --destdir c --vocab-size many", "invalid int value"),
    ("python benchmarks/sample_efficiency.py --arms metro --no-finetune",  # a benchmark's choices
     "python benchmarks/sample_efficiency.py --arms metro electro", "invalid choice: 'electro'"),
    ("metro-export --show-args x.pt", "metro-export --show-arg x.pt --formt hydra", "unrecognized arguments"),
    ("python -m metro_fairseq.cli.glue_results runs/", "python -m metro_fairseq.cli.glue_results", "required"),
    (TRAIN, TRAIN + " --no-such-flag", "unrecognized arguments: --no-such-flag"),
    (TRAIN + " --rtd-weight 50", "fairseq-train d --user-dir metro_fairseq --task masked_lm --criterion masked_lm "
     "--arch roberta_base --rtd-weight 50", "unrecognized arguments: --rtd-weight"),  # criterion-specific flag
    (TRAIN, TRAIN.replace("metro_tiny", "metro_tiyn"), "invalid choice: 'metro_tiyn'"),
    (TRAIN + " --user-dir metro_fairseq", TRAIN + " --user-dir metro_fairseqq", "FileNotFoundError"),
    ("fairseq-preprocess --only-source --trainpref t --destdir d --workers 2",
     "fairseq-preprocess --only-source --trainpref t --destdir d --wokers 2", "unrecognized arguments: --wokers"),
    (HYDRA + " checkpoint.save_dir=y", HYDRA + " checkpoint.sav_dir=y", "Could not override 'checkpoint.sav_dir'"),
    (HYDRA + " common.seed=3", HYDRA + " common.seed=three", "common.seed"),  # a typed value
    (HYDRA, HYDRA.replace("metro_base", "metro_bsae"), "no metro_bsae.yaml"),
    (HYDRA, HYDRA.replace("pretraining", "pretrainig"), "no such directory"),
    (HYDRA, HYDRA + " --config-nmae metro_base", "unrecognized arguments"),
    (HYDRA + " ++task.clm=true", HYDRA + " ++task.clmm=true", "clmm"),  # fairseq's add_defaults: the task's schema
    (MULTIRUN + " +run_config=slurm_2 hydra.launcher.partition=p optimization.lr='[1e-4]','[2e-4]'",
     MULTIRUN + " +run_config=slurm_2 hydra.launcher.partiton=p optimization.lr='[1e-4]','[2e-4]'",
     "hydra.launcher.partiton"),
    (MULTIRUN + " +run_config=local optimization.lr='[1e-4]','[2e-4]'",
     MULTIRUN + " +run_config=local optimization.lr='[1e-4]','oops'", "optimization.lr"),  # each sweep job composed
    (HYDRA + " +run_config=local", HYDRA + " +run_config=slurm_3", "run_config"),
    (HYDRA, HYDRA + " hydra.launcher.partition=p", "hydra.launcher.partition"),  # no SLURM launcher here
    ("bash scripts/test.sh", "bash scripts/tset.sh", "no such script: scripts/tset.sh"),
    ("python scripts/sweep.py x.yaml --dry-run", "python scripts/sweeep.py x.yaml", "no such script"),
    ("python -m venv .venv", "python -m venvv .venv", "no such module"),
    ("nvidia-smi", "frobnicate --all", "unknown program `frobnicate`"),
    ("metro-prepare-corpus --train a --valid b --destdir c", "metro-prepare-corpuss --train a --valid b --destdir c",
     "no console entry point `metro-prepare-corpuss`"),
    ("python scripts/prepare_corpus.py --train a --valid b --destdir c --workers $(nproc)",  # run for real
     "python scripts/prepare_corpus.py --train a --valid b --destdir c --workers $(ls)", "dropped"),
    ("echo hi", "cat <<EOF\nx\nEOF", "here-documents"),  # what the checker cannot read fails too
])
def test_checker_fails_what_is_wrong(good, bad, error):
    assert snippet_failures(good) == []
    found = snippet_failures(bad)
    assert found and error in "\n".join(found), found
    assert "made-up.md:" in found[0]


@pytest.mark.parametrize("good", [
    "python scripts/export_main_model.py --help",  # exits 0 in the parser: fine
    MULTIRUN + " hydra/launcher=submitit_local",
    MULTIRUN.replace(" -m ", " --multirun ") + " +run_config=slurm_1 hydra.launcher.partition=p common.seed=1,2,3",
    "fairseq-hydra-train --config-dir metro_fairseq/config/finetuning --config-name rte task.data=x "
    "checkpoint.finetune_from_model=m.pt --cfg job",
    "OMP_NUM_THREADS=1 time python -m metro_fairseq.cli.sweep spec.yaml --dry-run > log.txt 2>&1",
    ".venv/bin/python scripts/glue_results.py runs/ | tee results.md",
])
def test_checker_passes_documented_styles(good):
    assert snippet_failures(good) == []


def test_checker_refuses_work_before_parsing(tmp_path):
    """The sandbox python scripts run in (doc_commands.check_python): work before the parse is refused, a
    script that never parses is reported, and nothing after the parse runs."""
    stray = os.path.join(REPO, "doc_commands_selftest.tmp")
    scripts = {
        "spawns.py": "import subprocess, argparse\nsubprocess.run(['true'])\nargparse.ArgumentParser().parse_args()\n",
        "writes.py": f"import argparse\nopen({stray!r}, 'w')\nargparse.ArgumentParser().parse_args()\n",
        "never_parses.py": "import sys\nprint(sys.argv)\n",
        "parses.py": "import argparse, sys\np = argparse.ArgumentParser()\np.add_argument('--n', type=int)\n"
                     "p.parse_args()\nsys.exit('ran past the parse')\n",
    }

    def outcome(name, *args):
        path = tmp_path / name
        path.write_text(scripts[name])
        return doc_commands._run_until_parsed(str(path), list(args), {},
                                              lambda: runpy.run_path(str(path), run_name="__main__"))

    try:
        assert "does work before parsing its arguments: starts a process" in outcome("spawns.py")
        assert f"does work before parsing its arguments: writes {stray}" in outcome("writes.py")
        assert not os.path.exists(stray)
    finally:
        if os.path.exists(stray):
            os.remove(stray)
    assert "ends without calling ArgumentParser.parse_args" in outcome("never_parses.py")
    assert outcome("parses.py", "--n", "3") is None
    assert "invalid int value: 'three'" in outcome("parses.py", "--n", "three")


def test_shell_reading():
    text = textwrap.dedent("""\
        ```bash
        # a comment
        OMP_NUM_THREADS=2 python scripts/x.py --a 1 \\
            --b "two words" --c '(0.9,0.98)'  # trailing comment
        cd somewhere && ls | grep x; echo done 2>&1 > log.txt
        for seed in 7 8; do
          fairseq-hydra-train common.seed=$seed dir=$OUT/s$seed "$OUT/x" ... ${HOME:-h}
        done
        ```
        ```console
        $ metro-export --show-args \\
            m.pt
        --arch metro_base ...
        ```
        ```
        python scripts/untagged.py
        ```
        ```yaml
        python: not a command
        ```
        """)
    commands = commands_in_markdown(text, "d.md", standin)
    got = [(c.line, c.env, c.argv, c.piped) for c in commands]
    assert got == [
        (3, {"OMP_NUM_THREADS": "2"}, ["python", "scripts/x.py", "--a", "1", "--b", "two words", "--c", "(0.9,0.98)"],
         False),
        (5, {}, ["cd", "somewhere"], False), (5, {}, ["ls"], False), (5, {}, ["grep", "x"], True),
        (5, {}, ["echo", "done"], False),
        # the loop's first value; unset variables stay placeholders (the reader's environment is not used)
        (7, {}, ["fairseq-hydra-train", "common.seed=7", "dir=$OUT/s7", "$OUT/x", "h"], False),
        (11, {}, ["metro-export", "--show-args", "m.pt"], False),
    ]
    assert untagged_commands(text, "d.md", entry_points()) == ["d.md:16: python scripts/untagged.py"]
