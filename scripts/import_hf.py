#!/usr/bin/env python
"""``metro-import-hf`` run from a checkout, without installing the package."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's metro_fairseq
from metro_fairseq.hf.import_hf import main  # noqa: E402

if __name__ == "__main__":
    main()
