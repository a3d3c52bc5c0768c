"""Reading the files the engine takes as input, with errors that name the file and line:
labelled prompts as CSV / TSV / JSON lines, and single JSON objects (a tracker report).

Example:
    >>> from costopt_core.datafiles import parse_json_object
    >>> parse_json_object('{"prompt": "hi"}', "data.jsonl: line 1")
    {'prompt': 'hi'}
    >>> parse_json_object("[1, 2]", "data.jsonl: line 2")
    Traceback (most recent call last):
    ...
    ValueError: data.jsonl: line 2 must be a JSON object
"""

from __future__ import annotations

import csv
import json
from os import PathLike
from pathlib import Path
from typing import Any


def parse_json_object(text: str, where: str, what: str = "a JSON object") -> dict[str, Any]:
    """``text`` parsed as a JSON object, or a ``ValueError`` that starts with ``where``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where} is not JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be {what}")
    return value


def load_json_object(path: str | PathLike[str], what: str = "a JSON object") -> dict[str, Any]:
    """The JSON object stored in the file at ``path``."""
    return parse_json_object(Path(path).read_text(encoding="utf-8"), str(path), what)


def read_table(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows (dicts) and column names of a ``.csv``, ``.tsv`` or ``.jsonl`` file."""
    try:
        return _read_table(path)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _read_table(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as handle:
            rows = [
                parse_json_object(line, f"{path}: line {line_no}")
                for line_no, line in enumerate(handle, 1)
                if line.strip()
            ]
        return rows, sorted({k for row in rows for k in row})
    if suffix in (".csv", ".tsv"):
        # utf-8-sig: a CSV saved by Excel starts with a byte-order mark, which would
        # otherwise stick to the first column's name.
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
            rows = list(reader)
            columns = list(reader.fieldnames or [])
        return rows, columns
    raise ValueError(f"{path}: unsupported file type {suffix!r}; use .csv, .tsv or .jsonl")


__all__ = ["load_json_object", "parse_json_object", "read_table"]
