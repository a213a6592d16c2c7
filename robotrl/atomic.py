"""Writing files atomically: readers see the old file or the whole new one, never a part.

A file is written to a temporary name beside it (``.NAME.PID.HEX.tmp``), flushed to disk and renamed over the old
one; a writer killed half-way leaves only its temporary file, which the next writer in that folder removes
(`clean_temporaries`: the PID in the name tells a live writer's file from a dead one's). The run directory
(`robotrl.run.rundir`), exported actors, plots and videos are all written this way.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

from robotrl.errors import UserError

_TMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")
_LEGACY_TMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")  # tempfile.mkstemp names of earlier versions


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def replace_target(path: Path | str) -> Path:
    """The file an atomic write (temporary file, then rename) should replace at `path`: a symbolic link's
    target, so that the link stays and the file it names is written; refused (one line) where `path` is a
    device, pipe, socket or folder, which a rename would silently swap for a regular file (``-o /dev/null``)."""
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    if path.exists() and not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file (a device, pipe or socket)"
        raise UserError(f"{str(path)!r} is {kind}; give the name of a file to write")
    return path


def create_temporary(path: Path) -> tuple[int, Path]:
    """A new, empty temporary file beside `path` (``.NAME.PID.HEX.tmp``), open for writing: ``(fd, its path)``.
    An operating-system refusal (read-only or unwritable folder, full disk) names `path`, the file the user
    asked for, not the temporary one."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666 & ~current_umask()), tmp
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None


def atomic_write_bytes(path: Path, data: bytes, *, verify: Any = None) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one, never a part.

    `verify(tmp_path)`, if given, is called on the complete temporary file before it replaces `path`;
    if it raises, `path` is left as it was. The temporary file's name carries the writer's PID, so
    `clean_temporaries` can tell a live writer's file from a dead one's.
    """
    path = replace_target(path)
    fd, tmp = create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if verify is not None:
            verify(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def clean_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files of atomic writes whose writer is dead; returns what was removed."""
    removed = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        m = _TMP.match(p.name)
        stale = (m is not None and not _alive(int(m["pid"]))) or (m is None and _LEGACY_TMP.match(p.name))
        if stale and p.is_file():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
            removed.append(p)
    return removed


class AtomicFile:
    """A temporary file beside `path`, renamed over it by `commit()` or removed by `discard()`. Named as
    `robotrl.run.rundir.atomic_write_bytes` names its temporaries (``.NAME.PID.HEX.tmp``), so a killed
    writer's leftover in a run directory is cleaned up the same way."""

    def __init__(self, path: Path):
        self.path = replace_target(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = create_temporary(self.path)
        os.close(fd)

    def commit(self) -> None:
        fd = os.open(self.tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()
