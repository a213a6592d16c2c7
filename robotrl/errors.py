"""The one exception type that means "the user asked for something wrong".

The CLI prints a `UserError` as a single line and exits non-zero; any other exception is a bug in
robotrl and keeps its traceback.
"""


class UserError(Exception):
    """Bad input from the user: unknown task, malformed option, missing run directory, ..."""


class Stopped(KeyboardInterrupt):
    """A run stopped on a signal (SIGINT, SIGTERM, SIGHUP) after writing its checkpoint; the command exits with
    128 + the signal's number, the shell's convention (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
