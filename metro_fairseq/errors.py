"""The plugin's error for problems a user can fix: its message is one line naming the problem and
the fix. The command-line tools print it as ``metro_fairseq: error: MESSAGE`` and exit 1
(``fairseq_patches/one_line_errors.py`` for fairseq-train; ``cli/`` for the plugin's own tools)."""


class MetroError(Exception):
    """A problem with the user's input, worded as one line naming the problem and the fix."""
