"""Where shared artifacts (the embedded tiny model, built data, SFT policy) are cached.

`REFORGE_HOME` overrides the default `~/.cache/reforge`, so a Ray job whose working
directory is a temporary copy still finds what earlier runs built.
"""
from __future__ import annotations

import os
from pathlib import Path


def reforge_home() -> Path:
    return Path(os.environ.get("REFORGE_HOME", Path.home() / ".cache" / "reforge"))


def runs_root() -> Path:
    return Path(os.environ.get("REFORGE_RUNS", "runs"))
