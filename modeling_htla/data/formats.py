"""JSON Lines, JSON, CSV and Parquet files, read by the `datasets` json, csv and parquet builders.

A JSON or JSON Lines file holds one object per row; CSV has a header line. When a builder fails, `why_unreadable`
reads the file again with the standard library and names the line or row at fault, with one small helper per format.

Files are read afresh on every call (never from a stale cache) into Arrow files in a temporary folder of this process,
removed when it exits, and memory-mapped from there: a file of any size costs disk, not memory, so classifying a
corpus keeps its memory bounded.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

import datasets
from datasets import Dataset

_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
# CSV: only an empty cell is missing; "NA", "null", "None" … stay strings (they can be real texts or labels).
_BUILDER_KWARGS = {"json": {}, "csv": {"keep_default_na": False, "na_values": [""]}, "parquet": {}}


@functools.cache
def process_cache() -> str:
    """This process's temporary folder for the Arrow files of what it reads, removed at exit."""
    folder = tempfile.mkdtemp(prefix="htla-data-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def read_file(path: str | Path) -> Dataset:
    """Read one local file with the `datasets` json/csv/parquet builder into a fresh cache (`process_cache`),
    memory-mapped."""
    file = Path(path)
    if not file.exists():
        raise ValueError(f"{path}: file not found")
    if not file.is_file():
        raise ValueError(f"{path}: not a regular file")
    builder = _BUILDERS.get(file.suffix.lower())
    if builder is None:
        raise ValueError(f"{path}: unsupported file type {file.suffix!r} (expected one of {', '.join(_BUILDERS)})")
    try:
        with open(file, "rb"):
            pass
    except OSError as err:
        raise ValueError(f"{path}: cannot read file ({err.strerror})") from None
    cache = tempfile.mkdtemp(dir=process_cache())  # one per read: the same file read twice is read twice
    try:
        ds = datasets.load_dataset(
            builder,
            data_files={"train": str(file)},
            split="train",
            cache_dir=cache,
            **_BUILDER_KWARGS[builder],
        )
    except Exception as err:  # noqa: BLE001 - every reader failure becomes one clear line
        raise ValueError(f"{path}: {why_unreadable(file, builder, err)}") from None
    if len(ds) == 0:
        raise ValueError(f"{path}: empty split (0 rows)")
    return ds


def why_unreadable(file: Path, builder: str, err: BaseException) -> str:
    """Why the `builder` reader failed on `file` (reader error `err`): bytes that are not UTF-8, no rows, or the
    format's first bad line or row; else the reader's own message. Parquet is binary: the reader's message."""
    if builder == "parquet":
        return f"cannot read as Parquet ({root_message(err)})"
    try:
        raw = file.read_bytes()
    except OSError as os_err:
        return f"cannot read file ({os_err.strerror})"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as dec:
        line = raw.count(b"\n", 0, dec.start) + 1
        return f"not UTF-8 text (invalid byte 0x{raw[dec.start]:02x} on line {line})"
    if not text.strip():
        return "empty split (0 rows, the file is empty)"
    problem = _json_problem(text) if builder == "json" else _csv_problem(text)
    return problem or f"cannot read as {builder.upper()} ({root_message(err)})"


def _json_problem(text: str) -> str | None:
    """The first record of a JSON list or of JSON Lines that is not valid JSON or not an object, or no rows."""
    if text.lstrip().startswith("["):
        try:
            records = [(f"row {row}", record) for row, record in enumerate(json.loads(text), start=1)]
        except json.JSONDecodeError as err:
            return f"line {err.lineno}: invalid JSON ({err.msg} at column {err.colno})"
        if not records:
            return "empty split (0 rows, an empty JSON list)"
    else:
        records = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append((f"line {lineno}", json.loads(line)))
            except json.JSONDecodeError as err:
                return f"line {lineno}: invalid JSON ({err.msg} at column {err.colno})"
    for place, record in records:
        if not isinstance(record, dict):
            return f"{place}: expected a JSON object, got {type(record).__name__}"
    return None


def _csv_problem(text: str) -> str | None:
    """A header line and no rows, which the CSV reader reports as a missing split."""
    if len([line for line in text.splitlines() if line.strip()]) == 1:
        return "empty split (0 rows, only a header line)"
    return None


def root_message(err: BaseException) -> str:
    """First line of the innermost exception message (the actual reader error)."""
    messages = []
    while err is not None:
        text = str(err).strip()
        if text:
            messages.append(f"{type(err).__name__}: {text.splitlines()[0]}")
        err = err.__cause__
    return messages[-1] if messages else "unknown error"
