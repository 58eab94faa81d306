"""Plain tables in and out: the one CSV reader every stage uses, and the one Markdown table writer."""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from proctovision.core.errors import UserError


class TableError(UserError, ValueError):
    """A CSV that cannot be read; the message names the file, and the row when one is at fault."""


def read_table(
    path: str | Path, required: Sequence[str] = (), error: type[UserError] = TableError
) -> pd.DataFrame:
    """Every cell as text (empty cells stay ""), a UTF-8 byte-order mark ignored, column names stripped.

    A malformed row (too many fields) or a missing column raises ``error`` with the file and the row named.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.ParserError as problem:
        raise error(f"{path}: {describe_parser_error(problem)}") from problem
    except pd.errors.EmptyDataError as problem:
        raise error(f"{path}: the file is empty") from problem
    except UnicodeDecodeError as problem:
        raise error(f"{path}: not UTF-8 text (save the CSV as UTF-8)") from problem
    frame.columns = [str(column).strip() for column in frame.columns]
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise error(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(frame.columns) or 'none'}")
    return frame


def describe_parser_error(problem: Exception) -> str:
    """pandas says "Expected 3 fields in line 5, saw 4": name the data row (line 1 is the header)."""
    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(problem))
    if not found:
        return f"not a readable CSV ({problem})"
    expected, line, seen = (int(value) for value in found.groups())
    return f"row {line - 1} (line {line}) is malformed: {seen} fields where the header has {expected}"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """GitHub-style Markdown table lines; cells are written as given (format numbers before)."""
    clean = lambda cell: str(cell).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(clean(header) for header in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(clean(cell) for cell in row) + " |" for row in rows]
    return lines


def key_paths(paths: pd.Series, base: Path) -> list[str]:
    """Paths as one comparable key: relative entries resolved against ``base`` (the manifest's folder)."""
    return [os.path.normpath(os.path.join(base, str(entry))) for entry in paths]


def frame_keys(table: pd.DataFrame) -> list[str]:
    """A ``frame`` column's values as text ("" for single-frame files), so multi-frame rows stay apart."""
    if "frame" not in table.columns:
        return [""] * len(table)
    return ["" if pd.isna(value) or str(value).strip() in ("", "<NA>", "nan") else str(int(float(value)))
            for value in table["frame"]]
