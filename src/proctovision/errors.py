"""The one base class of errors that mean bad input: the CLI shows them as one line, never a traceback."""


class UserError(Exception):
    """Bad input, a missing file, an impossible request: the message names the file and the reason."""
