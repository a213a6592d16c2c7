"""Reading a text file the user named (a robot config, a --config file, a study file): one place that says
what is wrong with it in words a user can act on.

A path can be a directory, a named pipe, a device (``/dev/zero``) or a socket: ``Path.is_file()`` says
False for all of them and a caller's "not found" then misleads, while reading a pipe blocks until a writer
comes and reading ``/dev/zero`` never ends. Here the file is opened without blocking and must be a regular
file of a bounded size; its bytes must be UTF-8 (TOML's own rule; a byte-order mark, as Windows editors
write, is accepted), and a byte that is not is named with its offset, so the user can find it.

Standard library only: the robot side (`robotrl.deploy`) may import it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from robotrl.errors import UserError

MAX_BYTES = 16 * 2**20  # a config or study file is a few kB; more is the wrong file
BOM = "\ufeff"


def kind_of(mode: int) -> str:
    """What a file that is not a regular file is, in words."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def file_problem(path: str | Path) -> str | None:
    """Why `path` is not a regular file one can read ("does not exist", "is a directory", "is a named pipe
    (FIFO), not a regular file", ...), or None. Never blocks (only `stat`)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "does not exist"
    except NotADirectoryError:
        return "does not exist (a part of the path is a file, not a folder)"
    except ValueError:  # an embedded NUL byte
        return "is not a valid path (it holds a NUL byte)"
    except OSError as e:
        return f"cannot be read ({e.strerror or type(e).__name__})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory"
    return f"is {kind_of(mode)}, not a regular file"


def one_toml_in(folder: str | Path) -> Path | None:
    """The only ``*.toml`` file in `folder`, if it holds exactly one (for "give the file in it" hints)."""
    try:
        found = sorted(p for p in Path(folder).iterdir() if p.suffix == ".toml" and p.is_file())
    except OSError:
        return None
    return found[0] if len(found) == 1 else None


def read_text(path: str | Path, what: str, *, error: type[UserError] = UserError,
              max_bytes: int = MAX_BYTES) -> str:
    """The text of the regular file `path`, decoded as UTF-8 (a leading byte-order mark dropped). Every refusal
    is one `error` reading ``"{what}: ..."``: not a regular file (a pipe or a device is never read), too large,
    not UTF-8 (the first bad byte and its offset), or the operating system's reason."""
    problem = file_problem(path)
    if problem is not None:
        raise error(f"{what}: {problem}")
    try:  # O_NONBLOCK: a path swapped for a pipe after the check above still cannot block the open
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise error(f"{what}: cannot be read ({e.strerror or type(e).__name__})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{what}: is {kind_of(info.st_mode)}, not a regular file")
        if info.st_size > max_bytes:
            raise error(f"{what}: is {info.st_size:,} bytes; a text file of at most {max_bytes:,} bytes is "
                        "expected (the wrong file?)")
        with os.fdopen(os.dup(fd), "rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as e:
        raise error(f"{what}: cannot be read ({e.strerror or type(e).__name__})") from None
    finally:
        os.close(fd)
    if len(raw) > max_bytes:
        raise error(f"{what}: is more than {max_bytes:,} bytes; a text file is expected (the wrong file?)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise error(f"{what}: is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}, line {line}); "
                    "save it as UTF-8") from None
    if "\x00" in text:
        at = text.index("\x00")
        raise error(f"{what}: is not a text file (a NUL byte at offset {len(text[:at].encode())})")
    return text[1:] if text.startswith(BOM) else text
