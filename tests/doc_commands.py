"""The shell commands of the documentation (README.md, docs/**/*.md), read and checked without running them.

Reading (``commands_in_markdown``): fenced code blocks tagged ``bash``, ``sh``, ``shell`` or ``console`` hold
commands; in a ``console`` block only the lines after a ``$ `` prompt (and their ``\\`` continuations) are
commands, the rest is output; a ``bash``/``sh``/``shell`` line may start with a ``$ `` prompt too.
Untagged blocks are not commands (output, trees, formulas, tool-call descriptions), but one with a line that
starts like a project command fails ``untagged_commands``: tag it ``bash``, or ``text`` if it is output.
Any other tag (yaml, python, text, ...) is not a command.

The shell is read the way bash reads it, to the extent the docs need: ``\\`` continuations, comments, quotes,
``&&``/``||``/``;``/``|``/``&``/newlines between commands, redirections (dropped), ``for NAME in A B ...;
do ... done`` (NAME is A for the body), ``if``/``while`` keywords, ``VAR=value`` (a shell variable, or
the environment of the command it precedes), ``$VAR``/``${VAR}`` (its value when the block set it,
otherwise left as the placeholder text ``$VAR``: argument parsing does not look at paths), and ``$(...)``:
the inner command is checked like any other, and the substitution becomes what it prints where the
checker knows it (``STANDINS``: the project's ``--show-args`` export, as it prints for metro_base's
defaults; text tools in ``FILTERS``, run for real), else it is dropped from the outer command (the failure
message then says so). A bare ``...`` argument is the docs' "and so on": dropped.
Here-documents, ``case``, ``function``, ``<(...)`` and ``$((...))`` are refused (a checker limitation,
reported as such: the test fails rather than pass what it did not read).

Checking (``check``): every command is taken as run from the repository root; nothing is trained, no data
is read or written:
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
"""
import argparse
import contextlib
import copy
import dataclasses
import functools
import glob
import importlib.metadata
import importlib.util
import io
import logging
import os
import re
import runpy
import shlex
import subprocess
import sys
import tempfile
import warnings
from typing import Dict, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC_GLOBS = ("README.md", "docs/**/*.md")
SHELL_TAGS = {"bash", "sh", "shell", "console"}

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
KEYWORDS = {"do", "done", "then", "else", "elif", "fi", "if", "while", "until", "{", "}", "!"}
UNSUPPORTED = {"case", "esac", "function", "select"}
ELLIPSIS = {"...", "…"}
SCRIPT_DIRS = {os.path.join(REPO, "scripts"), os.path.join(REPO, "benchmarks")}


class ShellSyntaxError(Exception):
    """A construct the checker does not read (or broken shell)."""


# ---------------------------------------------------------------------------------------------- markdown


@dataclasses.dataclass
class Block:
    doc: str  # relative to REPO
    line: int  # of the opening fence
    tag: str
    lines: List[str]  # content lines; the first is on line + 1


FENCE = re.compile(r"^( {0,3}|\s*(?:[-*+]|\d+[.)])?\s*)(`{3,}|~{3,})\s*([^\s`{]*)")


def blocks_in_markdown(text: str, doc: str) -> List[Block]:
    found, open_block = [], None
    for number, line in enumerate(text.split("\n"), 1):
        if open_block is None:
            m = FENCE.match(line)
            if m:
                indent, fence, tag = len(m.group(1)), m.group(2), m.group(3).lower()
                open_block = (Block(doc, number, tag, []), fence, indent)
            continue
        block, fence, indent = open_block
        stripped = line.strip()
        if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
            found.append(block)
            open_block = None
            continue
        block.lines.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
    if open_block is not None:
        found.append(open_block[0])  # unclosed: runs to the end of the file, as CommonMark has it
    return found


def doc_files() -> List[str]:
    paths = set()
    for pattern in DOC_GLOBS:
        paths.update(glob.glob(os.path.join(REPO, pattern), recursive=True))
    return sorted(os.path.relpath(p, REPO) for p in paths)


# ------------------------------------------------------------------------------------------------- shell


@dataclasses.dataclass
class Command:
    doc: str
    line: int
    argv: List[str]
    env: Dict[str, str]
    text: str  # the source, continuations joined
    notes: List[str] = dataclasses.field(default_factory=list)
    piped: bool = False  # its stdin is the previous command's stdout
    substitution: bool = False  # the command inside a $(...)
    error: Optional[str] = None  # the checker could not read it

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


class _Lexer:
    """bash's tokens: words (as parts: literal text, $VAR, $(...)) and operators, each with its line."""

    OPS = ("&&", "||", ";;", "|&", "<<<", "<<", ">>", ">&", "&>", "<&", ">|", "<>", ";", "|", "&", "(", ")",
           "<", ">")

    def __init__(self, text: str, line: int):
        self.text, self.pos, self.line = text, 0, line

    def _peek(self, n=0):
        i = self.pos + n
        return self.text[i] if i < len(self.text) else ""

    def _advance(self, n=1):
        chunk = self.text[self.pos:self.pos + n]
        self.line += chunk.count("\n")
        self.pos += n
        return chunk

    def tokens(self):
        out = []
        while self.pos < len(self.text):
            c = self._peek()
            if c in " \t\r":
                self._advance()
            elif c == "\\" and self._peek(1) == "\n":
                self._advance(2)
            elif c == "#":
                while self.pos < len(self.text) and self._peek() != "\n":
                    self._advance()
            elif c == "\n":
                out.append(("op", "\n", self.line))
                self._advance()
            else:
                op = next((o for o in self.OPS if self.text.startswith(o, self.pos)), None)
                if op is not None:
                    if op in ("<<", "<<<"):
                        raise ShellSyntaxError("here-documents/strings are not read by the checker")
                    if op in ("<", ">") and self._peek(1) == "(":
                        raise ShellSyntaxError("process substitution <(...) is not read by the checker")
                    out.append(("op", op, self.line))
                    self._advance(len(op))
                else:
                    line = self.line
                    parts = self._word()
                    nxt = self._peek()
                    if nxt in "<>" and nxt and len(parts) == 1 and parts[0][0] == "lit" and parts[0][1].isdigit():
                        continue  # the fd of a redirection (2>&1): the redirection drops its target
                    out.append(("word", parts, line))
        return out

    def _word(self):
        parts = []

        def lit(s, quoted):
            if parts and parts[-1][0] == "lit" and parts[-1][2] == quoted:
                parts[-1] = ("lit", parts[-1][1] + s, quoted)
            else:
                parts.append(("lit", s, quoted))

        while self.pos < len(self.text):
            c = self._peek()
            if c in " \t\r\n;&|()<>":
                break
            if c == "\\":
                if self._peek(1) == "\n":
                    self._advance(2)
                else:
                    self._advance()
                    lit(self._advance(), True)
            elif c == "'":
                end = self.text.find("'", self.pos + 1)
                if end < 0:
                    raise ShellSyntaxError("unterminated ' quote")
                lit(self._advance(end - self.pos + 1)[1:-1], True)
            elif c == '"':
                self._advance()
                lit("", True)
                while True:
                    d = self._peek()
                    if d == "":
                        raise ShellSyntaxError('unterminated " quote')
                    if d == '"':
                        self._advance()
                        break
                    if d == "\\" and self._peek(1) in '$`"\\\n':
                        self._advance()
                        e = self._advance()
                        if e != "\n":
                            lit(e, True)
                    elif d in "$`":
                        parts.append(self._expansion(quoted=True) or ("lit", self._advance(), True))
                    else:
                        lit(self._advance(), True)
            elif c in "$`":
                parts.append(self._expansion(quoted=False) or ("lit", self._advance(), False))
            else:
                lit(self._advance(), False)
        return parts

    def _expansion(self, quoted):
        line = self.line
        if self._peek() == "`":
            end = self.text.find("`", self.pos + 1)
            if end < 0:
                raise ShellSyntaxError("unterminated ` quote")
            inner = self._advance(end - self.pos + 1)[1:-1]
            return ("sub", inner, line, quoted)
        nxt = self._peek(1)
        if nxt == "(":
            if self._peek(2) == "(":
                raise ShellSyntaxError("arithmetic $((...)) is not read by the checker")
            start = self.pos + 2
            end = _matching_paren(self.text, start)
            inner = self.text[start:end]
            self._advance(end + 1 - self.pos)
            return ("sub", inner, line, quoted)
        if nxt == "{":
            end = self.text.find("}", self.pos)
            if end < 0:
                raise ShellSyntaxError("unterminated ${")
            body = self._advance(end + 1 - self.pos)[2:-1]
            name, _, default = body.partition(":-")
            return ("var", name, default if _ else None, quoted, "${" + body + "}")
        m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-]").match(self.text, self.pos + 1)
        if not m:
            return None
        self._advance(1 + len(m.group()))
        return ("var", m.group(), None, quoted, "$" + m.group())


def _matching_paren(text, start):
    depth, i, quote = 1, start, None
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = None
        elif c == "\\":
            i += 1
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ShellSyntaxError("unterminated $(")


class _Reader:
    """Tokens -> simple commands, with the block's shell variables (assignments, for-loop variables)."""

    SEPARATORS = {"\n", ";", "&&", "||", "|", "|&", "&", "(", ")", ";;"}
    REDIRECTIONS = {"<", ">", ">>", ">&", "&>", "<&", ">|", "<>"}

    def __init__(self, doc, variables, standin):
        self.doc, self.vars, self.standin = doc, variables, standin

    def read(self, text, line, substitution=False) -> List[Command]:
        try:
            tokens = _Lexer(text, line).tokens()
        except ShellSyntaxError as e:
            return [Command(self.doc, line, [], {}, text.strip(), substitution=substitution, error=str(e))]
        commands, current, piped = [], [], False
        for token in tokens + [("op", "\n", None)]:
            kind, value, _ = token
            if kind == "op" and value in self.SEPARATORS:
                if current:
                    commands += self._simple(current, text, piped, substitution)
                current, piped = [], value in ("|", "|&")
                continue
            current.append(token)
        return commands

    def _simple(self, tokens, text, piped, substitution):
        """One simple command: redirections dropped, keywords and assignments taken off the front."""
        words, inner, line = [], [], tokens[0][2]
        skip = False
        for kind, value, token_line in tokens:
            if skip:
                skip = False
                continue
            if kind == "op":
                if value in self.REDIRECTIONS:
                    skip = True
                continue
            words.append((value, token_line))
        source = _source_of(text, tokens)
        while words and _plain(words[0][0]) in KEYWORDS:
            words.pop(0)
        if not words:
            return []
        line = words[0][1]
        first = _plain(words[0][0])
        if first in UNSUPPORTED:
            return [Command(self.doc, line, [], {}, source, substitution=substitution,
                            error=f"`{first}` is not read by the checker")]
        if first == "for":
            names = [_plain(w) for w, _ in words[1:3]]
            if len(names) == 2 and names[1] == "in":
                values, _ = self._expand([w for w, _ in words[3:]], line, [])
                self.vars[names[0]] = values[0] if values else ""
            return []
        env = {}
        while words and re.match(r"[A-Za-z_][A-Za-z0-9_]*=", _plain_prefix(words[0][0])):
            value, _ = self._expand([words.pop(0)[0]], line, inner, split=False)
            name, _, val = value[0].partition("=")
            env[name] = val
        if not words:  # VAR=value: a shell variable for the rest of the block
            self.vars.update(env)
            return inner
        argv, notes = self._expand([w for w, _ in words], line, inner)
        if argv and argv[0] == "export":
            for arg in argv[1:]:
                name, eq, val = arg.partition("=")
                if eq:
                    self.vars[name] = val
        command = Command(self.doc, line, argv, env, source, notes, piped=piped, substitution=substitution)
        return inner + [command]

    def _expand(self, words, line, inner, split=True):
        """Words -> argv; the commands of $(...) go to ``inner``."""
        argv, notes = [], []
        for parts in words:
            pieces, whole_split = [], None
            for part in parts:
                if part[0] == "lit":
                    pieces.append(part[1])
                elif part[0] == "var":
                    _, name, default, quoted, raw = part
                    value = self.vars.get(name, default if default is not None else raw)
                    if name in self.vars and f"{raw} read as {value!r}" not in notes:
                        notes.append(f"{raw} read as {value!r}")
                    if split and len(parts) == 1 and not quoted and name in self.vars:
                        whole_split = value.split()
                    pieces.append(value)
                else:
                    _, body, sub_line, quoted = part
                    commands = self.read(body, sub_line, substitution=True)
                    inner.extend(commands)
                    printed = self.standin(commands)
                    if split and len(parts) == 1 and not quoted:
                        if printed is None:
                            whole_split = []
                            notes.append(f"$({' '.join(body.split())}) dropped (what it prints is not known here)")
                        else:
                            whole_split = printed.split()
                            notes.append(f"$({' '.join(body.split())}) read as: {' '.join(printed.split())}")
                    pieces.append(printed.strip() if printed is not None else f"$({body})")
            if whole_split is not None:
                argv.extend(whole_split)
            else:
                argv.append("".join(pieces))
        dropped = [a for a in argv if a in ELLIPSIS]
        if dropped:
            notes.append("`...` dropped")
        return [a for a in argv if a not in ELLIPSIS], notes


def _plain(parts) -> str:
    """The word's text when it is all literal (keywords are only keywords unquoted), else ''."""
    return "".join(p[1] for p in parts) if all(p[0] == "lit" and not p[2] for p in parts) else ""


def _plain_prefix(parts) -> str:
    return parts[0][1] if parts and parts[0][0] == "lit" and not parts[0][2] else ""


def _source_of(text, tokens):
    return " ".join(_word_text(v) if k == "word" else v for k, v, _ in tokens)


def _word_text(parts):
    out = []
    for p in parts:
        if p[0] == "lit":
            out.append(shlex.quote(p[1]) if p[2] or re.search(r"[\s'\"$\\]", p[1]) else p[1])
        elif p[0] == "var":
            out.append(p[4])
        else:
            out.append(f"$({p[1].strip()})")
    return "".join(out)


def _block_shell_text(block: Block) -> str:
    """The block's shell text, line for line: console output blanked, prompts dropped."""
    out, in_command = [], False
    for line in block.lines:
        if block.tag == "console":
            if line.startswith("$ ") or line == "$":
                line, in_command = line[2:], True
            elif not in_command:
                line = ""
            in_command = in_command and line.rstrip().endswith("\\")  # the next line continues it
        elif line.startswith("$ "):
            line = line[2:]
        out.append(line)
    return "\n".join(out)


def commands_in_markdown(text: str, doc: str) -> List[Command]:
    """Every command of the shell blocks of one markdown text, in order (inner $(...) before its user)."""
    commands = []
    for block in blocks_in_markdown(text, doc):
        if block.tag in SHELL_TAGS:
            commands += _Reader(doc, {}, standin).read(_block_shell_text(block), block.line + 1)
    return commands


def doc_commands() -> Dict[str, List[Command]]:
    """"doc:line" -> the commands that start on that line, for every doc."""
    by_line = {}
    for doc in doc_files():
        with open(os.path.join(REPO, doc), encoding="utf-8") as f:
            for command in commands_in_markdown(f.read(), doc):
                by_line.setdefault(command.where, []).append(command)
    return by_line


def untagged_commands(text: str, doc: str) -> List[str]:
    """"doc:line: text" of each line of an untagged block that starts like a project command."""
    starts = re.compile(r"(\$ )?([A-Z_]+=\S+ )*((python3?|\.venv/bin/python) (scripts|benchmarks)/|"
                        r"(python3?|\.venv/bin/python) -m (metro_fairseq|fairseq_cli)|bash scripts/|"
                        r"fairseq-|" + "|".join(re.escape(n) + r"\b" for n in entry_points()) + ")")
    found = []
    for block in blocks_in_markdown(text, doc):
        if block.tag == "":
            for offset, line in enumerate(block.lines, 1):
                if starts.match(line.strip()):
                    found.append(f"{doc}:{block.line + offset}: {line.strip()}")
    return found


# -------------------------------------------------------------------------------------------- sandboxing


class _Parsed(BaseException):
    """The checked script's first parse_args returned: stop it (BaseException: not caught as an Exception)."""


class _Refused(BaseException):
    """The checked script did work before parsing its arguments."""


class _Guard:
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
            result = original(self, args, namespace)
        except SystemExit as e:
            if e.code in (0, None):  # --help, --version: the flags are fine
                raise _Parsed(None)
            raise
        _Guard.active = False
        raise _Parsed(result)

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


def check_fairseq_parser(name: str, args: List[str], env=None) -> Optional[str]:
    install_plugin()
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    with _sandbox(name, args, env or {}, patch_parse=False) as (out, _):
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


@contextlib.contextmanager
def _fairseq_config_store(name):
    """fairseq_cli.hydra_train's hydra_init(name), undone afterwards (each real run is a new process)."""
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


MAX_SWEEP_JOBS = 8  # a multirun's jobs composed: all up to this many, else the first and the last


def check_hydra_train(args: List[str], env=None) -> Optional[str]:
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

    with _sandbox("fairseq-hydra-train", args, env or {}, patch_parse=False) as (out, _):
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
            with _fairseq_config_store(name):
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
        return f"cannot read the command: {command.error} (simplify the doc, or teach tests/doc_commands.py)"
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
    base = os.path.basename(program)
    if "/" in program and os.path.basename(os.path.dirname(program)) == "bin":
        program = base  # .venv/bin/python, .venv/bin/pip, .venv/bin/fairseq-train
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
