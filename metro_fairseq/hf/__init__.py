"""Export to Hugging Face transformers (``scripts/export_hf.py``); needs the ``[hf]`` extra.

Nothing here is imported by the plugin (``metro_fairseq/plugin.py``): fairseq training never needs transformers.
``configuration_metro.py`` and ``modeling_metro.py`` are copied into every export that needs them
(``trust_remote_code=True``), so they import only torch and transformers.
"""
