"""Load task rows from JSONL (or anything `datasets` reads) with per-row validation.

Files: JSONL, or through `datasets`: parquet, JSON, CSV, arrow files and `save_to_disk`
folders (a `DatasetDict` folder: its `train` split, or `path::split`, e.g. `gsm8k::test`). Rows in other
layouts (Llama-Nemotron post-training data, question/answer tables) are mapped by
core.data.layouts. A malformed row is reported as `file:line: reason` (for tables: the
1-based row number). With `on_error="skip"` it is skipped and
counted (the caller reports the count); with `on_error="raise"` loading stops before any
expensive work. Nothing is dropped silently.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from core.data.layouts import Layout, to_row
from core.data.schema import Row, RowError


class DataError(ValueError):
    """A data file cannot be used; the message names the file and line."""


@dataclass
class LoadReport:
    rows: list[Any]
    skipped: list[str] = field(default_factory=list)  # "file:line: reason", one per bad row

    def summary(self, path: str | Path) -> str:
        return f"{path}: {len(self.rows)} rows loaded, {len(self.skipped)} malformed rows skipped"


def _records(path: Path, split: str = "train") -> Iterator[tuple[int, Any | Exception]]:
    """(line number, decoded object or the decode error); other formats go through datasets."""
    if path.suffix in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield lineno, json.loads(line)
                except json.JSONDecodeError as e:
                    yield lineno, RowError(f"invalid JSON ({e.msg} at column {e.colno})")
        return
    import datasets

    fmt = {".json": "json", ".parquet": "parquet", ".csv": "csv", ".arrow": "arrow"}.get(path.suffix)
    if fmt is None:
        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise DataError(f"{path}: a DatasetDict with splits {sorted(ds)}; name one as {path}::<split>")
            ds = ds[split]
    else:
        ds = datasets.load_dataset(fmt, data_files=str(path), split="train")
    for i, rec in enumerate(ds, 1):
        yield i, rec


def load_records(path: str | Path, validate: Callable[[Any, str], Any], on_error: str = "raise",
                 log: Callable[[str], None] | None = None) -> LoadReport:
    """Validate every record of a file with `validate(obj, default_id)`."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    path, _, split = str(path).partition("::")
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    log = log or (lambda msg: print(msg, file=sys.stderr))
    report = LoadReport(rows=[])
    for lineno, obj in _records(path, split or "train"):
        try:
            if isinstance(obj, Exception):
                raise obj
            report.rows.append(validate(obj, f"{path.stem}-{lineno}"))
        except (RowError, KeyError, TypeError) as e:
            where = f"{path}:{lineno}: {e}"
            if on_error == "raise":
                raise DataError(where) from None
            report.skipped.append(where)
            log(f"skipping malformed row {where}")
    if report.skipped:
        log(report.summary(path))
    return report


def load_rows(path: str | Path, on_error: str = "raise", layout: Layout | None = None) -> LoadReport:
    """Task rows (messages, reasoning, reward spec) validated against core.data.schema, from
    the layout given (default: OpenAI messages or Llama-Nemotron rows, told apart per row)."""
    layout = layout or Layout()
    return load_records(path, lambda obj, default_id: to_row(layout, obj, default_id), on_error)


def write_jsonl(path: str | Path, rows: list[dict | Row]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r.to_dict() if isinstance(r, Row) else r) + "\n")
    return path
