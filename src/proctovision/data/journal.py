"""A journal of files already read by ingest, so an interrupted or repeated ingest reads each file once.

One JSON line per file, appended and flushed as soon as the file is judged. An entry counts again only
for the same input row (path, label, ...), the same reading settings and the same file (size and
modification time): a changed file, label or window is read again. A line cut short by a kill is ignored.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from proctovision.core import fileio


def file_stamp(path: str | Path) -> str:
    try:
        stat = Path(path).stat()
    except OSError:
        return "missing"
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def entry_key(row: dict, settings: str) -> str:
    """The input row and the reading settings, as one digest."""
    text = json.dumps({"row": row, "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def journal_path(manifest: str | Path) -> Path:
    """Beside the manifest: ``manifest.csv`` → ``manifest.ingest-journal.jsonl``."""
    manifest = Path(manifest)
    return manifest.with_name(f"{manifest.stem}.ingest-journal.jsonl")


class Journal:
    """Entries by key; ``record`` appends one line at once; ``compact`` keeps only the entries still used."""

    def __init__(self, path: str | Path, fresh: bool = False) -> None:
        self.path = Path(path)
        self.entries: dict[str, dict[str, Any]] = {} if fresh else self._load(self.path)
        self.used: set[str] = set()
        self.fresh = fresh
        self._stream = None

    def _open(self):  # noqa: ANN202 - a text stream, opened at the first entry so a failed start writes nothing
        if self._stream is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._stream = open(self.path, "w" if self.fresh else "a", encoding="utf-8")  # noqa: SIM115
            if self._stream.tell() and not self._ends_with_newline():
                self._stream.write("\n")
        return self._stream

    @staticmethod
    def _load(path: Path) -> dict[str, dict[str, Any]]:
        entries: dict[str, dict[str, Any]] = {}
        if not path.is_file():
            return entries
        with open(path, encoding="utf-8", errors="replace") as stream:
            for line in stream:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(entry, dict) and "key" in entry and "stamp" in entry:
                    entries[entry["key"]] = entry
        return entries

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as stream:
            stream.seek(-1, os.SEEK_END)
            return stream.read(1) == b"\n"

    def lookup(self, key: str, stamp: str) -> dict[str, Any] | None:
        """The outcome recorded for this row and file, if the file has not changed since."""
        entry = self.entries.get(key)
        if entry is None or entry["stamp"] != stamp:
            return None
        self.used.add(key)
        return entry["outcome"]

    def record(self, key: str, stamp: str, outcome: dict[str, Any]) -> None:
        entry = {"key": key, "stamp": stamp, "outcome": outcome}
        self.entries[key] = entry
        self.used.add(key)
        stream = self._open()
        stream.write(json.dumps(entry, default=str) + "\n")
        stream.flush()

    def compact(self) -> None:
        """Rewrite the journal (atomically) with only the entries of files still in the source."""
        self.close()
        lines = [json.dumps(self.entries[key], default=str) for key in self.entries if key in self.used]
        fileio.write_text(self.path, "".join(line + "\n" for line in lines))

    def close(self) -> None:
        if self._stream is not None and not self._stream.closed:
            self._stream.flush()
            os.fsync(self._stream.fileno())
            self._stream.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
