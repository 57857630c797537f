#!/usr/bin/env python
"""Compile fairseq's two Cython modules in place in a folder that holds fairseq's source (the offline
GPU path, scripts/gpu_offline_install.sh): ``fairseq.data.data_utils_fast`` (batching) and
``fairseq.data.token_block_utils_fast`` (TokenBlockDataset), as fairseq's own setup.py builds them.

fairseq's other extensions are left out: libbleu (BLEU scoring), libnat (non-autoregressive models)
and libbase (BASE layers) are imported only inside the functions that use them, and pretraining and
fine-tuning here call none of those.

    python scripts/build_fairseq_cython.py SITE
"""
import os
import sys
import sysconfig
import tempfile

MODULES = ("fairseq.data.data_utils_fast", "fairseq.data.token_block_utils_fast")


def main():
    if len(sys.argv) != 2 or not os.path.isdir(os.path.join(sys.argv[1], "fairseq", "data")):
        sys.exit("build_fairseq_cython: error: give the folder that holds fairseq/ (its source, e.g. extracted "
                 "from the sdist)")
    headers = sysconfig.get_paths()["include"]
    if not os.path.exists(os.path.join(headers, "Python.h")):
        sys.exit(f"build_fairseq_cython: error: no Python.h in {headers}: install this Python's development headers "
                 f"(e.g. python{sysconfig.get_python_version()}-dev), or use an environment with fairseq installed")
    import numpy
    from Cython.Build import cythonize
    from setuptools import Distribution, Extension

    os.chdir(sys.argv[1])
    extensions = [Extension(name, [name.replace(".", "/") + ".pyx"], include_dirs=[numpy.get_include()],
                            language="c++", extra_compile_args=["-std=c++11", "-O3"]) for name in MODULES]
    with tempfile.TemporaryDirectory() as build_temp:
        dist = Distribution({"ext_modules": cythonize(extensions, quiet=True),
                             "script_args": ["build_ext", "--inplace", "--parallel", "2", "--build-temp", build_temp]})
        dist.parse_command_line()
        dist.run_commands()


if __name__ == "__main__":
    main()
