"""The shell commands of the documentation (read by tests/doc_shell.py), checked without running them.

``check``: every command is taken as run from the repository root; nothing is trained, no data is read or
written:
- ``python scripts/x.py ...`` / ``python benchmarks/x.py ...`` / ``python -m metro_fairseq...`` and the
  project's console entry points (read from the installed distribution, importlib.metadata) run in this
  process with ``sys.argv`` set, until their first ``ArgumentParser.parse_args``, which parses with the
  original and then stops the script (``_Parsed``): an argparse error fails with its message (checks a
  script makes after parse_args, like its own ``p.error``, are not reached). ``parse_known_args`` is left
  alone: parse_args calls it, and fairseq's parse_args_and_arch uses it for its first passes before its
  final parse_args. Until the parse an audit hook refuses work (processes, network, writes outside the
  temp/cache folders), reported as "does work before parsing its arguments"; a script that never calls
  ``parse_args`` is reported too (its flags cannot be checked).
- ``fairseq-train``/``-validate``/``-generate``/``-interactive``/``-eval-lm``: fairseq's own parser through
  ``options.parse_args_and_arch`` (imports ``--user-dir``; task-, arch- and criterion-specific flags) and
  ``convert_namespace_to_omegaconf``; ``fairseq-preprocess``: ``get_preprocessing_parser().parse_args``;
  another fairseq entry point runs like a project tool.
- ``fairseq-hydra-train``: hydra's own command-line parser, the config name must be a file of the config
  directory, then the config is composed as fairseq_cli/hydra_train.py composes it (its search path,
  ``--config-dir`` prepended, fairseq's ``hydra_init`` schema), each multirun job (``-m``, sweeps split as
  hydra's basic sweeper splits them) composed as the launcher composes it, resolved, and fairseq's
  ``add_defaults`` applied.
- ``bash scripts/x.sh`` / ``source`` / ``./x.sh``: the file exists and ``bash -n`` passes.
- ``python -m other``: the module is importable; ``python -c CODE``: it compiles.
- anything else must be in ``ALLOWED_PROGRAMS``.

``standin``: what a ``$(...)`` prints, where the checker knows it: the project's ``--show-args`` export as it
prints for metro_base's defaults (``STANDINS``), and text tools in ``FILTERS`` (after it or alone), run for
real.
"""
import argparse
import contextlib
import copy
import functools
import importlib.metadata
import importlib.util
import io
import logging
import os
import re
import runpy
import subprocess
import sys
import tempfile
import warnings
from typing import Dict, List, Optional

from conftest import fairseq_config_store
from doc_shell import REPO, Command

# programs a doc may name that the checker does not read (besides python, bash/sh and the entry points);
# a doc that needs another one: add it here (if it is what a user runs as is) or fix the doc
ALLOWED_PROGRAMS = {
    "cd", "pushd", "popd", "mkdir", "ls", "cat", "echo", "printf", "head", "tail", "less", "grep", "sed", "awk",
    "tr", "cut", "sort", "uniq", "wc", "tee", "xargs", "find", "du", "df", "cp", "mv", "rm", "ln", "touch",
    "chmod", "tar", "unzip", "zip", "gzip", "gunzip", "wget", "curl", "md5sum", "sha256sum", "diff", "watch",
    "sleep", "kill", "ps", "top", "htop", "nproc", "free", "which", "true", "false", "test", "[", "set",
    "export", "unset", "source", ".",
    "pip", "pip3", "git", "conda", "apt-get", "apt", "dpkg-deb",
    "sbatch", "squeue", "scancel", "sinfo", "sacct", "srun", "salloc", "scontrol",
    "nvidia-smi", "tensorboard", "wandb", "pytest",
}
# prefixes that run the rest of the command line
WRAPPERS = {"time", "nohup", "exec", "command", "env", "sudo"}
# programs a $(...) pipeline runs for real (they only print or filter text), after a STANDINS command or alone
FILTERS = {"tr", "grep", "sed", "cut", "head", "tail", "sort", "uniq", "echo", "printf", "nproc", "date", "seq",
           "basename", "dirname", "whoami", "hostname"}
PYTHON = re.compile(r"python(\d(\.\d+)?)?$")
SHELLS = {"bash", "sh"}
SCRIPT_DIRS = {os.path.join(REPO, "scripts"), os.path.join(REPO, "benchmarks")}


# -------------------------------------------------------------------------------------------- sandboxing


class _Parsed(BaseException):
    """The checked script's first parse_args returned: stop it (BaseException: not caught as an Exception)."""


class _Refused(BaseException):
    """The checked script did work before parsing its arguments."""


class _Guard:
    """An audit hook (it cannot be removed, so it is installed once): while ``active``, work raises _Refused."""

    active = False
    refused: List[str] = []
    installed = False
    allowed = ()

    @classmethod
    def install(cls):
        if not cls.installed:
            cls.allowed = tuple(os.path.realpath(os.path.expanduser(p)) for p in (
                tempfile.gettempdir(), "~/.cache", "~/.config", os.environ.get("XDG_CACHE_HOME", "~/.cache"),
                os.environ.get("MPLCONFIGDIR", "~/.config"), os.devnull))
            sys.addaudithook(cls.hook)
            cls.installed = True

    @classmethod
    def _writable(cls, path):
        if isinstance(path, int) or path is None:
            return True
        path = os.path.realpath(os.fsdecode(path))
        if "__pycache__" in path.split(os.sep):  # an import's bytecode: not the script's work
            return True
        if _inside_repo(path):  # never, even when the checkout itself lies in a temp folder (CI's clone)
            return False
        return any(path == p or path.startswith(p + os.sep) for p in cls.allowed)

    @classmethod
    def hook(cls, event, args):
        if not cls.active:
            return
        what = None
        if event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                     "os.forkpty", "pty.spawn"):
            what = f"starts a process ({event} {args[0] if args else ''})"
        elif event in ("socket.connect", "socket.getaddrinfo", "urllib.Request", "http.client.connect"):
            what = f"uses the network ({event} {args[:2]})"
        elif event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            writes = (any(c in mode for c in "wax+") if isinstance(mode, str) else
                      isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC))
            if writes and not cls._writable(path):
                what = f"writes {path}"
        elif event in ("os.mkdir", "os.remove", "os.rmdir", "os.rename", "os.truncate", "os.chmod", "os.link",
                       "os.symlink", "shutil.rmtree", "shutil.move", "shutil.copyfile", "shutil.copytree"):
            paths = [a for a in args if isinstance(a, (str, bytes, os.PathLike))]
            target = paths[-1] if event in ("os.rename", "shutil.move", "shutil.copyfile", "os.link",
                                            "shutil.copytree", "os.symlink") and paths else (paths or [None])[0]
            if not cls._writable(target):
                what = f"changes the file system ({event} {target})"
        if what:
            cls.refused.append(what)
            cls.active = False
            raise _Refused(what)


@contextlib.contextmanager
def _sandbox(argv0, args, env, patch_parse):
    """sys.argv, the environment and the working directory as the command has them, output captured,
    work refused; with ``patch_parse`` the first parse_args ends the run. Yields (the captured output, state).
    Everything a script may change on import is put back: sys.argv, sys.path, os.environ, the working
    directory, warning filters, logger levels and root handlers, its scripts/ and benchmarks/ modules."""
    _Guard.install()
    original = argparse.ArgumentParser.parse_args
    state = {"parsing": False}

    def parse_args(self, args=None, namespace=None):
        state["parsing"] = True
        try:
            original(self, args, namespace)
        except SystemExit as e:
            if e.code in (0, None):  # --help, --version: the flags are fine
                raise _Parsed
            raise
        _Guard.active = False
        raise _Parsed

    saved = (list(sys.argv), list(sys.path), dict(os.environ), os.getcwd(), sys.dont_write_bytecode, set(sys.modules))
    loggers = {name: (lg.level, lg.disabled) for name, lg in logging.Logger.manager.loggerDict.items()
               if isinstance(lg, logging.Logger)}
    root = (logging.root.level, list(logging.root.handlers))
    out = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            sys.argv = [argv0, *args]
            os.environ.update(env)
            os.chdir(REPO)
            sys.dont_write_bytecode = True
            if patch_parse:
                argparse.ArgumentParser.parse_args = parse_args
            _Guard.refused, _Guard.active = [], True
            yield out, state
    finally:
        _Guard.active = False
        argparse.ArgumentParser.parse_args = original
        for name, (level, disabled) in loggers.items():
            logging.getLogger(name).setLevel(level)
            logging.getLogger(name).disabled = disabled
        logging.root.setLevel(root[0])
        logging.root.handlers[:] = root[1]
        for name in set(sys.modules) - saved[5]:  # scripts/ and benchmarks/ helpers imported by their folder name
            if os.path.dirname(getattr(sys.modules[name], "__file__", None) or "") in SCRIPT_DIRS:
                del sys.modules[name]
        sys.argv[:], sys.path[:] = saved[0], saved[1]
        os.environ.clear()
        os.environ.update(saved[2])
        os.chdir(saved[3])
        sys.dont_write_bytecode = saved[4]


def _tail(text, n=600):
    """argparse's error line(s) of the captured output (long ones cut in the middle), else its last lines."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if ": error:" in line]
    lines = [line if len(line) <= 400 else f"{line[:300]} ... {line[-80:]}" for line in (errors[-3:] or lines[-6:])]
    return "\n".join(lines)[-n:]


def _explain(e: BaseException, args: List[str]) -> str:
    text = f"{type(e).__name__}: {e}".strip()
    if isinstance(e, RuntimeError) and not str(e) and not {"--arch", "-a"} & set(args) and \
            not any(a.startswith("--arch=") for a in args):
        text += " (fairseq's parse_args_and_arch raises this without --arch)"
    return text


def _run_until_parsed(argv0, args, env, run) -> Optional[str]:
    """None when ``run`` reached its first parse_args and the arguments parsed; else what went wrong."""
    with _sandbox(argv0, args, env, patch_parse=True) as (out, state):
        try:
            run()
        except _Parsed:
            return None
        except _Refused as e:
            return f"does work before parsing its arguments: {e}"
        except SystemExit as e:
            if state["parsing"]:
                return f"argument error: {_tail(out.getvalue())}"
            return f"exits ({e.code!r}) before parsing its arguments: {_tail(out.getvalue())}"
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: B902 (a broken script: report it, whatever it is)
            refused = f" (refused: {_Guard.refused[0]})" if _Guard.refused else ""
            return f"raises {_explain(e, args)}{refused} before parsing its arguments"
    if _Guard.refused:
        return f"does work before parsing its arguments: {_Guard.refused[0]}"
    return "ends without calling ArgumentParser.parse_args: its flags cannot be checked"


# -------------------------------------------------------------------------------------------------- checks


@functools.lru_cache(maxsize=None)
def entry_points() -> Dict[str, importlib.metadata.EntryPoint]:
    """Console entry points of this project and of fairseq (the others are programs like any other)."""
    found = {}
    for ep in importlib.metadata.entry_points(group="console_scripts"):
        if ep.value.split(".")[0].split(":")[0] in ("metro_fairseq", "fairseq", "fairseq_cli"):
            found[ep.name] = ep
    return found


FAIRSEQ_ARCH_PARSERS = {  # entry point -> fairseq.options parser read through parse_args_and_arch
    "fairseq-train": "get_training_parser", "fairseq-validate": "get_validation_parser",
    "fairseq-generate": "get_generation_parser", "fairseq-interactive": "get_interactive_generation_parser",
    "fairseq-eval-lm": "get_eval_lm_parser",
}


@functools.lru_cache(maxsize=None)
def install_plugin():
    """What --user-dir metro_fairseq does to fairseq (the package may be imported already, and then fairseq's
    import_user_module would not import it again: tests/conftest.py does the same)."""
    from metro_fairseq import plugin

    plugin.install()


def check_fairseq_parser(name: str, args: List[str], env) -> Optional[str]:
    install_plugin()
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    with _sandbox(name, args, env, patch_parse=False) as (out, _):
        try:
            if name == "fairseq-preprocess":
                options.get_preprocessing_parser().parse_args(args)
            else:
                parsed = options.parse_args_and_arch(getattr(options, FAIRSEQ_ARCH_PARSERS[name])(), input_args=args)
                convert_namespace_to_omegaconf(parsed)
        except SystemExit as e:
            if e.code in (0, None):
                return None
            return f"{name} argument error: {_tail(out.getvalue())}"
        except _Refused as e:
            return f"{name} does work while parsing: {e}"
        except Exception as e:
            return f"{name} rejects its arguments: {_explain(e, args)} {_tail(out.getvalue(), 300)}".strip()
    return None


MAX_SWEEP_JOBS = 8  # a multirun's jobs composed: all up to this many, else the first and the last


def check_hydra_train(args: List[str], env) -> Optional[str]:
    install_plugin()
    import fairseq_cli.hydra_train
    from fairseq.dataclass.initialize import add_defaults
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_automatic_config_search_path, get_args_parser
    from hydra.core.config_search_path import SearchPathQuery
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode
    from omegaconf import OmegaConf, open_dict

    with _sandbox("fairseq-hydra-train", args, env, patch_parse=False) as (out, _):
        try:
            parsed = get_args_parser().parse_args(args)
        except SystemExit as e:
            return None if e.code in (0, None) else f"fairseq-hydra-train argument error: {_tail(out.getvalue())}"
        name = parsed.config_name or "config"
        config_path = parsed.config_path or os.path.join("..", "fairseq", "config")
        search_path = create_automatic_config_search_path(fairseq_cli.hydra_train.__file__, None, config_path)
        if parsed.config_dir is not None:
            config_dir = os.path.abspath(parsed.config_dir)
            if not os.path.isdir(config_dir):
                return f"--config-dir {parsed.config_dir}: no such directory"
            search_path.prepend(provider="command-line", path=f"file://{config_dir}",
                                anchor=SearchPathQuery(provider="schema"))
        dirs = [p.path[len("file://"):] for p in search_path.get_path() if p.path.startswith("file://")]
        if not any(os.path.isfile(os.path.join(d, f"{name}.yaml")) for d in dirs):
            return f"--config-name {name}: no {name}.yaml in {', '.join(os.path.relpath(d, REPO) for d in dirs)}"
        mode = RunMode.MULTIRUN if parsed.multirun else RunMode.RUN
        GlobalHydra.instance().clear()
        try:
            with fairseq_config_store(name):
                hydra = Hydra.create_main_hydra2(task_name="hydra_train", config_search_path=search_path)
                master = hydra.compose_config(name, list(parsed.overrides), run_mode=mode,
                                              with_log_configuration=False)
                if mode == RunMode.MULTIRUN:
                    task_overrides = OmegaConf.to_container(master.hydra.overrides.task, resolve=False)
                    batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(task_overrides),
                                                           None)
                    jobs = [job for batch in batches for job in batch]
                    if len(jobs) > MAX_SWEEP_JOBS:
                        jobs = [jobs[0], jobs[-1]]
                    configs = []
                    for number, job in enumerate(jobs):
                        cfg = hydra.config_loader.load_sweep_config(master, list(job))
                        with open_dict(cfg):
                            cfg.hydra.job.id = cfg.hydra.job.num = number
                        configs.append(cfg)
                else:
                    configs = [master]
                for cfg in configs:
                    HydraConfig.instance().set_config(cfg)
                    task_cfg = copy.deepcopy(cfg)
                    with open_dict(task_cfg):
                        del task_cfg["hydra"]
                    add_defaults(task_cfg)  # fairseq_cli/hydra_train.py's _hydra_main
                    OmegaConf.to_container(task_cfg, resolve=True, enum_to_str=True)
        except _Refused as e:
            return f"fairseq-hydra-train does work while composing: {e}"
        except Exception as e:
            return f"fairseq-hydra-train config does not compose: {type(e).__name__}: {e}".strip()
        finally:
            GlobalHydra.instance().clear()
    return None


def check_bash_script(path: str) -> Optional[str]:
    full = os.path.join(REPO, path)
    if not os.path.isfile(full):
        return f"no such script: {path}"
    r = subprocess.run(["bash", "-n", full], capture_output=True, text=True)
    return f"bash -n {path}: {r.stderr.strip()}" if r.returncode else None


def _inside_repo(path: str) -> bool:
    full = os.path.realpath(os.path.join(REPO, path))
    return full == REPO or full.startswith(REPO + os.sep)


def check_python(args: List[str], env) -> Optional[str]:
    options_with_value = {"-W", "-X", "-Q"}
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] not in ("-m", "-c", "-"):
        i += 2 if args[i] in options_with_value else 1
    if i >= len(args) or args[i] == "-":
        return None  # the REPL, or a script on stdin
    if args[i] == "-c":
        if i + 1 >= len(args):
            return "python -c: no code"
        try:
            compile(args[i + 1], "<python -c>", "exec")
        except SyntaxError as e:
            return f"python -c: {e}"
        return None
    if args[i] == "-m":
        if i + 1 >= len(args):
            return "python -m: no module"
        module, rest = args[i + 1], args[i + 2:]
        if module.split(".")[0] in ("metro_fairseq", "benchmarks", "scripts"):
            if importlib.util.find_spec(module) is None:
                return f"python -m {module}: no such module"

            def run():
                with warnings.catch_warnings():  # "found in sys.modules after import of package": it is
                    warnings.simplefilter("ignore", RuntimeWarning)
                    runpy.run_module(module, run_name="__main__", alter_sys=True)

            return _run_until_parsed(module, rest, env, run)
        try:
            found = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            found = None
        return None if found is not None else f"python -m {module}: no such module in this environment"
    script, rest = args[i], args[i + 1:]
    full = os.path.join(REPO, script)
    if not _inside_repo(script):
        return f"python {script}: not a script of this repository"
    if not os.path.isfile(full):
        return f"no such script: {script}"

    def run():
        sys.path.insert(0, os.path.dirname(os.path.abspath(full)))  # as `python script` has it
        runpy.run_path(full, run_name="__main__")

    return _run_until_parsed(full, rest, env, run)


def check_entry_point(name: str, args: List[str], env) -> Optional[str]:
    if name == "fairseq-hydra-train":
        return check_hydra_train(args, env)
    if name in FAIRSEQ_ARCH_PARSERS or name == "fairseq-preprocess":
        return check_fairseq_parser(name, args, env)
    ep = entry_points()[name]
    return _run_until_parsed(name, args, env, lambda: ep.load()())


def check(command: Command) -> Optional[str]:
    """None if the command is fine, else what is wrong with it (one line or a few)."""
    if command.error:
        return f"cannot read the command: {command.error} (simplify the doc, or teach tests/doc_shell.py)"
    argv, env = list(command.argv), dict(command.env)
    while argv and argv[0] in WRAPPERS:
        argv.pop(0)
        while argv and (argv[0].startswith("-") or re.match(r"[A-Za-z_]\w*=", argv[0])):
            name, eq, value = argv.pop(0).partition("=")
            if eq:
                env[name] = value
    if not argv:
        return None
    program, args = argv[0], argv[1:]
    if "/" in program and os.path.basename(os.path.dirname(program)) == "bin":
        program = os.path.basename(program)  # .venv/bin/python, .venv/bin/pip, .venv/bin/fairseq-train
    if PYTHON.match(program):
        return check_python(args, env)
    if program in SHELLS:
        flags = [a for a in args if a.startswith("-")]
        rest = [a for a in args if not a.startswith("-")]
        if "-c" in flags:
            code = rest[0] if rest else ""
            r = subprocess.run(["bash", "-n", "-c", code], capture_output=True, text=True)
            return f"bash -c: {r.stderr.strip()}" if r.returncode else None
        if not rest:
            return None
        if not _inside_repo(rest[0]):
            return f"{program} {rest[0]}: not a script of this repository"
        return check_bash_script(rest[0])
    if program in ("source", "."):
        target = args[0] if args else ""
        if target.endswith(".sh") or target.startswith("scripts/"):
            return check_bash_script(target)
        return None
    if "/" in program:
        if not _inside_repo(program) or not os.path.isfile(os.path.join(REPO, program)):
            return f"no such program: {program}"
        if program.endswith(".py"):
            return check_python([program, *args], env)
        return check_bash_script(program)
    if program in entry_points():
        return check_entry_point(program, args, env)
    if program in ALLOWED_PROGRAMS:
        return None
    if re.match(r"(metro|fairseq)-", program):
        return (f"no console entry point `{program}` in the installed distributions (setup.py's entry_points: "
                f"{', '.join(sorted(n for n in entry_points() if n.startswith('metro-')))})")
    return (f"unknown program `{program}`: add it to ALLOWED_PROGRAMS in tests/doc_commands.py if users run it "
            f"as is, or fix the doc (a project script is run as `python scripts/x.py`)")


# ------------------------------------------------------------------------------------------ stand-ins


@functools.lru_cache(maxsize=None)
def _show_args(style: str) -> str:
    """What `metro-export --show-args [--format hydra]` prints for a metro_base checkpoint."""
    install_plugin()
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    from metro_fairseq.cli.export_main_model import fine_tuning_args

    with _sandbox("fairseq-train", [], {}, patch_parse=False):
        args = options.parse_args_and_arch(options.get_training_parser(), input_args=[
            "data", "--user-dir", os.path.join(REPO, "metro_fairseq"), "--task", "metro_pretraining",
            "--criterion", "metro", "--arch", "metro_base"])
        model_cfg = convert_namespace_to_omegaconf(args).model
    return fine_tuning_args(model_cfg, style)


def _is_export_show_args(argv: List[str]) -> bool:
    while argv and PYTHON.match(os.path.basename(argv[0])):
        argv = argv[1:]
        if argv[:1] == ["-m"]:
            argv = [argv[1].replace(".", "/") + ".py", *argv[2:]] if len(argv) > 1 else []
    return bool(argv) and os.path.basename(argv[0]) in ("export_main_model.py", "metro-export") and \
        "--show-args" in argv


STANDINS = [  # (does this $(...) command match, what it prints)
    (_is_export_show_args, lambda argv: _show_args("hydra" if "hydra" in argv[argv.index("--format") + 1:][:1]
                                                   else "flags") if "--format" in argv else _show_args("flags")),
]


def standin(commands: List[Command]) -> Optional[str]:
    """What a $(...) pipeline prints, where the checker knows: a STANDINS command or a FILTERS one first, then
    FILTERS run for real; None for anything else."""
    if not commands or any(c.error or not c.argv for c in commands) or any(not c.piped for c in commands[1:]):
        return None
    first = next((make for match, make in STANDINS if match(commands[0].argv)), None)
    try:
        text = first(commands[0].argv) if first is not None else None
    except Exception:  # noqa: B902 (the stand-in is broken: the substitution is dropped, the note says so)
        return None
    for command in commands[0 if text is None else 1:]:
        if command.argv[0] not in FILTERS:
            return None
        r = subprocess.run(command.argv, input=text or "", capture_output=True, text=True, cwd=REPO)
        text = r.stdout
    return text
