"""A reader for ingest's worker pool that misbehaves on purpose, by file name: the pool must survive it."""
import os
import signal
from pathlib import Path

from proctovision.data.ingest import inspect_file


def inspect(row: dict, options: object):
    name = Path(row["path"]).name
    if name.startswith("segfault"):
        os.kill(os.getpid(), signal.SIGSEGV)
    if name.startswith("exits"):
        os._exit(3)
    if name.startswith("raises"):
        raise RuntimeError("decoder blew up")
    return inspect_file(row, options)
