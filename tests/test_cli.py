"""The console entry points of setup.py (metro-prepare-corpus, ...): each target imports and is callable, and
each has its thin caller scripts/<tool>.py that runs the same main from a checkout."""
import ast
import importlib
import inspect
import os
import runpy
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

# entry point -> the script that runs it from a checkout (README and tests call these)
SCRIPTS = {
    "metro-prepare-corpus": "prepare_corpus",
    "metro-prepare-multilingual-corpus": "prepare_multilingual_corpus",
    "metro-prepare-glue": "prepare_glue",
    "metro-prepare-squad": "prepare_squad",
    "metro-prepare-token-classification": "prepare_token_classification",
    "metro-export": "export_main_model",
    "metro-export-hf": "export_hf",
    "metro-import-hf": "import_hf",
    "metro-probe": "probe_checkpoint",
    "metro-squad-eval": "squad_eval",
    "metro-sweep": "sweep",
    "metro-train-composite": "train_composite",
    "metro-training-report": "training_report",
    "metro-glue-results": "glue_results",
}


def console_scripts():
    """{name: "module:function"} from the setup() call in setup.py, read without running it."""
    with open(os.path.join(REPO, "setup.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "setup")
    entry_points = ast.literal_eval(next(k.value for k in call.keywords if k.arg == "entry_points"))
    return dict(tuple(part.strip() for part in line.split("=")) for line in entry_points["console_scripts"])


def resolve(target):
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


def test_every_entry_point_has_its_script():
    assert set(console_scripts()) == set(SCRIPTS)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_entry_point_and_thin_caller_run_the_same_main(name):
    target = console_scripts()[name]
    assert target.startswith("metro_fairseq.") and target.endswith(":main"), target
    main = resolve(target)
    assert callable(main)
    # the console script runs sys.exit(main()): a returned object would be printed and exit with status 1
    source = ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(main))))
    assert not [n for n in ast.walk(source) if isinstance(n, ast.Return) and n.value is not None], target
    script = os.path.join(REPO, "scripts", SCRIPTS[name] + ".py")
    assert runpy.run_path(script, run_name="thin_caller")["main"] is main


def test_thin_caller_runs_from_another_folder(tmp_path):
    """The script finds its checkout's metro_fairseq wherever it is started, and the tool's errors stay one line."""
    r = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "prepare_corpus.py"), "--train", "missing.txt",
                        "--valid", "missing.txt", "--destdir", str(tmp_path)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and r.stderr == "prepare_corpus: error: training file missing.txt does not exist\n", r.stderr


def test_shared_checks_report_under_the_calling_tool(tmp_path):
    """check_text (cli/prepare_corpus.py) raises MetroError; each tool's main prints it under its own name."""
    from metro_fairseq.cli import prepare_multilingual_corpus

    with pytest.raises(SystemExit) as e:
        prepare_multilingual_corpus.main(["--train", "en=missing.txt", "--valid", "en=missing.txt",
                                          "--destdir", str(tmp_path)])
    assert str(e.value) == "prepare_multilingual_corpus: error: en training file missing.txt does not exist"


def test_data_tools_start_without_fairseq():
    """Only the plugin (plugin.install(), or --user-dir through tasks/) changes fairseq: the data preparation
    and log tools import neither fairseq nor torch, and importing the package alone patches nothing."""
    code = ("import sys, metro_fairseq, metro_fairseq.data.squad_windows, metro_fairseq.fairseq_log\n"
            "import metro_fairseq.cli.prepare_corpus, metro_fairseq.cli.prepare_multilingual_corpus\n"
            "import metro_fairseq.cli.prepare_glue, metro_fairseq.cli.prepare_squad, metro_fairseq.cli.sweep\n"
            "import metro_fairseq.cli.training_report, metro_fairseq.cli.glue_results\n"
            "print(sorted(m for m in ('fairseq', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_plugin_install_registers_and_patches():
    code = ("from metro_fairseq import plugin\nplugin.install()\n"
            "from fairseq import checkpoint_utils\nfrom fairseq.criterions import CRITERION_REGISTRY\n"
            "from fairseq.models import ARCH_MODEL_REGISTRY\nfrom fairseq.tasks import TASK_REGISTRY\n"
            "print({'metro_pretraining', 'squad', 'sentence_prediction_lp_ft'} <= set(TASK_REGISTRY),\n"
            "      {'metro', 'squad_span'} <= set(CRITERION_REGISTRY), 'metro_base' in ARCH_MODEL_REGISTRY,\n"
            "      checkpoint_utils.load_checkpoint_to_cpu.__module__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    patched = "metro_fairseq.fairseq_patches.checkpoint_read_check"
    assert out.stdout.split() == ["True", "True", "True", patched], out.stdout
