"""The one base class of errors that mean bad input (the CLI shows them as one line, never a traceback), and the
image-read error that pixel readers of every format share."""
from __future__ import annotations

import os


class UserError(Exception):
    """Bad input, a missing file, an impossible request: the message names the file and the reason."""


class ImageReadError(UserError, Exception):
    """A file that cannot be used as an image; the message says why."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason
