"""The root of ppt's disk caches: synthetic datasets (:func:`ppt.engine.builders.cache_root`) and
text-embedding tables (:func:`ppt.text.default_cache_dir`, its ``text/`` folder) share it."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "PPT_CACHE"
"""Environment variable naming the cache root."""


def default_cache_root() -> Path:
    """``$PPT_CACHE``, else ``$XDG_CACHE_HOME/ppt``, else ``~/.cache/ppt``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "ppt"
