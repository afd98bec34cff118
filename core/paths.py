"""Where shared artifacts (the embedded tiny model, built data, SFT policy) and runs live.

`REFORGE_HOME` overrides the default `~/.cache/reforge`, so a Ray job whose working
directory is a temporary copy still finds what earlier runs built.
"""
from __future__ import annotations

import os
from pathlib import Path


def reforge_home() -> Path:
    return Path(os.environ.get("REFORGE_HOME", Path.home() / ".cache" / "reforge"))


def runs_root() -> Path:
    """`REFORGE_RUNS`, else `./runs` — except inside a `ray job submit` working-dir copy,
    which Ray deletes with the job: runs then go under `reforge_home()/runs`."""
    if os.environ.get("REFORGE_RUNS"):
        return Path(os.environ["REFORGE_RUNS"]).resolve()
    if "working_dir_files" in Path.cwd().parts or "runtime_resources" in Path.cwd().parts:
        return reforge_home() / "runs"
    return Path("runs").resolve()
