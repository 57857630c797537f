"""How the command-line tools speak: ``[tool] message`` for progress, ``tool: error: message`` (one line
on stderr, exit status 1) for a problem the user can fix. ``tool`` is the tool's historical script name
(``prepare_corpus``, ...), which the messages and the tests keep."""
import functools
import sys
from typing import NoReturn

from ..errors import MetroError


def fail(tool: str, message) -> NoReturn:
    sys.exit(f"{tool}: error: {message}")


def log(tool: str, message) -> None:
    print(f"[{tool}] {message}", flush=True)


def one_line_errors(tool: str):
    """Decorator for a tool's ``main(argv=None)``: a ``MetroError`` raised anywhere below it ends the
    tool with ``fail(tool, error)``."""

    def decorate(main):
        @functools.wraps(main)
        def main_with_one_line_errors(argv=None):
            try:
                return main(argv)
            except MetroError as e:
                fail(tool, e)

        return main_with_one_line_errors

    return decorate
