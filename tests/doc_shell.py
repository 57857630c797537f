"""The shell commands of the documentation (README.md, docs/**/*.md), read from its Markdown code blocks
(tests/doc_commands.py checks them).

Fenced code blocks tagged ``bash``, ``sh``, ``shell`` or ``console`` hold commands; in a ``console`` block
only the lines after a ``$ `` prompt (and their ``\\`` continuations) are commands, the rest is output; a
``bash``/``sh``/``shell`` line may start with a ``$ `` prompt too.
Untagged blocks are not commands (output, trees, formulas, tool-call descriptions), but one with a line that
starts like a project command fails ``untagged_commands``: tag it ``bash``, or ``text`` if it is output.
Any other tag (yaml, python, text, ...) is not a command.

The shell is read the way bash reads it, to the extent the docs need: ``\\`` continuations, comments, quotes,
``&&``/``||``/``;``/``|``/``&``/newlines between commands, redirections (dropped), ``for NAME in A B ...;
do ... done`` (NAME is A for the body), ``if``/``while`` keywords, ``VAR=value`` (a shell variable, or
the environment of the command it precedes), ``$VAR``/``${VAR}`` (its value when the block set it,
otherwise left as the placeholder text ``$VAR``: argument parsing does not look at paths), and ``$(...)``:
the inner command is read like any other, and the substitution becomes what it prints where the caller's
``standin`` knows it, else it is dropped from the outer command (a note on the command says so).
A bare ``...`` argument is the docs' "and so on": dropped.
Here-documents, ``case``, ``function``, ``<(...)`` and ``$((...))`` are refused (a checker limitation,
reported as such: the test fails rather than pass what it did not read).
"""
import dataclasses
import glob
import os
import re
import shlex
from typing import Callable, Dict, Iterable, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC_GLOBS = ("README.md", "docs/**/*.md")
SHELL_TAGS = {"bash", "sh", "shell", "console"}
KEYWORDS = {"do", "done", "then", "else", "elif", "fi", "if", "while", "until", "{", "}", "!"}
UNSUPPORTED = {"case", "esac", "function", "select"}
ELLIPSIS = {"...", "…"}


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
    notes: List[str] = dataclasses.field(default_factory=list)  # how variables and $(...) were read
    piped: bool = False  # its stdin is the previous command's stdout
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

    def __init__(self, doc, standin):
        self.doc, self.vars, self.standin = doc, {}, standin

    def read(self, text, line) -> List[Command]:
        try:
            tokens = _Lexer(text, line).tokens()
        except ShellSyntaxError as e:
            return [Command(self.doc, line, [], {}, text.strip(), error=str(e))]
        commands, current, piped = [], [], False
        for token in tokens + [("op", "\n", None)]:
            kind, value, _ = token
            if kind == "op" and value in self.SEPARATORS:
                if current:
                    commands += self._simple(current, piped)
                current, piped = [], value in ("|", "|&")
                continue
            current.append(token)
        return commands

    def _simple(self, tokens, piped):
        """One simple command: redirections dropped, keywords and assignments taken off the front."""
        words, inner, skip = [], [], False
        for kind, value, token_line in tokens:
            if skip:
                skip = False
                continue
            if kind == "op":
                if value in self.REDIRECTIONS:
                    skip = True
                continue
            words.append((value, token_line))
        source = _source_of(tokens)
        while words and _plain(words[0][0]) in KEYWORDS:
            words.pop(0)
        if not words:
            return []
        line = words[0][1]
        first = _plain(words[0][0])
        if first in UNSUPPORTED:
            return [Command(self.doc, line, [], {}, source, error=f"`{first}` is not read by the checker")]
        if first == "for":
            names = [_plain(w) for w, _ in words[1:3]]
            if len(names) == 2 and names[1] == "in":
                values, _ = self._expand([w for w, _ in words[3:]], [])
                self.vars[names[0]] = values[0] if values else ""
            return []
        env = {}
        while words and re.match(r"[A-Za-z_][A-Za-z0-9_]*=", _plain_prefix(words[0][0])):
            value, _ = self._expand([words.pop(0)[0]], inner, split=False)
            name, _, val = value[0].partition("=")
            env[name] = val
        if not words:  # VAR=value: a shell variable for the rest of the block
            self.vars.update(env)
            return inner
        argv, notes = self._expand([w for w, _ in words], inner)
        if argv and argv[0] == "export":
            for arg in argv[1:]:
                name, eq, val = arg.partition("=")
                if eq:
                    self.vars[name] = val
        return inner + [Command(self.doc, line, argv, env, source, notes, piped=piped)]

    def _expand(self, words, inner, split=True):
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
                    commands = self.read(body, sub_line)
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
        if any(a in ELLIPSIS for a in argv):
            notes.append("`...` dropped")
        return [a for a in argv if a not in ELLIPSIS], notes


def _plain(parts) -> str:
    """The word's text when it is all literal (keywords are only keywords unquoted), else ''."""
    return "".join(p[1] for p in parts) if all(p[0] == "lit" and not p[2] for p in parts) else ""


def _plain_prefix(parts) -> str:
    return parts[0][1] if parts and parts[0][0] == "lit" and not parts[0][2] else ""


def _source_of(tokens):
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


Standin = Callable[[List[Command]], Optional[str]]  # what a $(...)'s commands print, None where not known


def commands_in_markdown(text: str, doc: str, standin: Standin) -> List[Command]:
    """Every command of the shell blocks of one markdown text, in order (inner $(...) before its user)."""
    commands = []
    for block in blocks_in_markdown(text, doc):
        if block.tag in SHELL_TAGS:
            commands += _Reader(doc, standin).read(_block_shell_text(block), block.line + 1)
    return commands


def doc_commands(standin: Standin) -> Dict[str, List[Command]]:
    """"doc:line" -> the commands that start on that line, for every doc."""
    by_line = {}
    for doc in doc_files():
        with open(os.path.join(REPO, doc), encoding="utf-8") as f:
            for command in commands_in_markdown(f.read(), doc, standin):
                by_line.setdefault(command.where, []).append(command)
    return by_line


def untagged_commands(text: str, doc: str, programs: Iterable[str]) -> List[str]:
    """"doc:line: text" of each line of an untagged block that starts like a project command (a fairseq one, a
    script of the repository, one of ``programs``)."""
    starts = re.compile(r"(\$ )?([A-Z_]+=\S+ )*((python3?|\.venv/bin/python) (scripts|benchmarks)/|"
                        r"(python3?|\.venv/bin/python) -m (metro_fairseq|fairseq_cli)|bash scripts/|"
                        r"fairseq-|" + "|".join(re.escape(n) + r"\b" for n in programs) + ")")
    found = []
    for block in blocks_in_markdown(text, doc):
        if block.tag == "":
            for offset, line in enumerate(block.lines, 1):
                if starts.match(line.strip()):
                    found.append(f"{doc}:{block.line + offset}: {line.strip()}")
    return found

