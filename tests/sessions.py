"""Test helper: stop every process of a session (a driver started with ``start_new_session`` and the local Ray it
started: raylet, GCS, workers, or a ``ray start`` and what it began)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def kill_session(sid: int, timeout: float = 20) -> None:
    """SIGKILL every process of session `sid` and wait until none of them runs any more."""
    def members() -> list[int]:
        out = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    stat = (d / "stat").read_text()
                except OSError:
                    continue
                fields = stat[stat.rindex(")") + 2:].split()
                if int(fields[3]) == sid and fields[0] != "Z":  # session id; zombies hold nothing
                    out.append(int(d.name))
        return out

    end = time.monotonic() + timeout
    while pids := members():
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert time.monotonic() < end, f"processes {pids} outlived SIGKILL"
        time.sleep(0.1)
