"""The project's error for input that a user can fix: the message names the file, field, flag or
parameter and what is wrong with it. The command line reports it as one line; any other
exception is a bug and keeps its traceback. A ``ValueError``, so that callers that validate
parameters the usual Python way catch it."""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad input: a parameter, a file, a flag or data that cannot be used as given."""
