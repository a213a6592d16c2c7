"""The one exception type that means "the user asked for something wrong".

The CLI prints a `UserError` as a single line and exits non-zero; any other exception is a bug in
robotrl and keeps its traceback.
"""


class UserError(Exception):
    """Bad input from the user: unknown task, malformed option, missing run directory, ..."""
