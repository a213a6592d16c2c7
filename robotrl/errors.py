"""The one exception type that means "the user asked for something wrong".

The CLI prints a `UserError` as a single line and exits non-zero; any other exception is a bug in
robotrl and keeps its traceback.
"""

import json
import re
from typing import Any

_LONG_NUMBER = re.compile(r"\d{30,}")


def shorten_numbers(text: str) -> str:
    """A number of 30+ digits (10**400 written into a file) shown as its first digits and its length, so that an
    error quoting it stays one readable line."""
    return _LONG_NUMBER.sub(lambda m: f"{m[0][:6]}... ({len(m[0])} digits)", text)


def brief_json(value: Any, width: int = 60) -> str:
    """A value as JSON for an error message: long numbers shortened, then cut to `width` characters with '...';
    the type's name for a value JSON cannot write."""
    try:
        text = shorten_numbers(json.dumps(value))
    except (TypeError, ValueError):
        return type(value).__name__
    return text if len(text) <= width else text[:width - 3] + "..."


class UserError(Exception):
    """Bad input from the user: unknown task, malformed option, missing run directory, ..."""


class Stopped(KeyboardInterrupt):
    """A run stopped on a signal (SIGINT, SIGTERM, SIGHUP) after writing its checkpoint; the command exits with
    128 + the signal's number, the shell's convention (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
