"""feature_cache imports its public names on first use: its torch-free modules load without torch (the service
reads the split names and archive suffixes there), and ``extract`` stays the function."""
from __future__ import annotations

import subprocess
import sys

import feature_cache


def test_the_torch_free_modules_load_without_torch():
    code = ("import sys, feature_cache.datasets, feature_cache.archives, feature_cache.options, app.commands.extract, "
            "app.datasets, app.routes.dashboard; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_every_public_name_resolves_and_extract_is_the_function():
    import feature_cache.extract as module  # the submodule of that name, imported first, binds nothing over it

    assert all(getattr(feature_cache, name) is not None for name in feature_cache.__all__)
    from feature_cache import extract

    assert callable(extract) and extract is sys.modules["feature_cache.extract"].extract and module is extract
