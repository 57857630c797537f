"""The plugin's command-line tools, installed as console entry points (setup.py) and callable as
``python scripts/<tool>.py`` from a checkout. Each module has ``main(argv=None)``; they speak through
``messages``: progress as ``[tool] ...`` on stdout, a problem the user can fix as one line
``tool: error: ...`` on stderr with exit status 1."""
