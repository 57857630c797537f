"""The plugin's error for problems a user can fix: its message is one line naming the problem and
the fix. The command-line tools print it as one line and exit 1: fairseq-train as
``metro_fairseq: error: MESSAGE`` (``fairseq_patches/one_line_errors.py``), the plugin's own tools as
``TOOL: error: MESSAGE`` (``cli/messages.py``)."""


class MetroError(Exception):
    """A problem with the user's input, worded as one line naming the problem and the fix."""
