#!/usr/bin/env python
"""Export a metro checkpoint to a Hugging Face transformers folder, verified to 1e-4 after reload.

    python scripts/export_hf.py checkpoints/metro_base/checkpoint_best.pt hf/metro_base
    python scripts/export_hf.py glue-ckpt/RTE/checkpoint_best.pt hf/metro_base-rte \
        --spm-model data-bin/corpus/spm.model

Implementation and checks: metro_fairseq/hf/export.py.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from metro_fairseq.hf.export import main  # noqa: E402

if __name__ == "__main__":
    main()
