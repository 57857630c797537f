"""metro_fairseq: METRO-style pretraining as a fairseq user directory (``--user-dir metro_fairseq``).

Importing the package does nothing by itself: fairseq's ``--user-dir`` loads the plugin through
``metro_fairseq.tasks``, and code that drives fairseq in-process calls ``metro_fairseq.plugin.install()``
(the patches on fairseq, listed in ``fairseq_patches/__init__.py``, and the registries).
"""
