"""A TensorBoard event-file writer for scalars, in the standard library.

Importing the `tensorboard` package costs about 1.5 s at every start of `robotrl train` (a
noticeable share of a short run) and brings protobuf with it. Scalars need little of it: an event
file is a TFRecord stream (length, masked CRC-32C of the length, payload, masked CRC-32C of the
payload) of `tensorflow.Event` protocol-buffer messages, which this module encodes by hand:

    Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5;
              SessionLog session_log = 7; }
    Summary { repeated Value value = 1; }   Value { string tag = 1; float simple_value = 2; }

TensorBoard reads the files as it reads any others (tests/run/test_tbevents.py checks with its own
reader). Every event is flushed to the file as it is written, as metrics.csv's rows are: a run killed
outright (SIGKILL) keeps in TensorBoard what it kept in the CSV.

On resume the events must say what the truncated metrics.csv says: every row up to the checkpoint
once, none after it. TensorBoard reads every event file of the folder; leaving the killed run's file
and relying on a reader's purge of a restarted run (a `SessionLog.START` event at the resume step, as
before) lost the points a kill left unflushed and let others show twice (issue 31).
`EventWriter(..., history=ROWS)` instead writes one new file holding exactly ROWS and removes every
other event file of the folder; that file still
starts with a `SessionLog.START` at step 0, so a TensorBoard that was watching drops what it had read
before and takes the new file's points.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _masked(data: bytes) -> bytes:
    c = crc32c(data)
    return struct.pack("<I", (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # int64 two's complement, as protobuf does
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:  # length-delimited field
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _event(step: int, *, wall_time: float | None = None, file_version: str | None = None,
           scalars: dict[str, float] | None = None, session_start: bool = False) -> bytes:
    msg = b"\x09" + struct.pack("<d", time.time() if wall_time is None else wall_time)
    msg += b"\x10" + _varint(step)
    if file_version is not None:
        msg += _field(3, file_version.encode())
    if scalars:
        values = b"".join(_field(1, _field(1, tag.encode()) + b"\x15" + struct.pack("<f", v))
                          for tag, v in scalars.items())
        msg += _field(5, values)
    if session_start:
        msg += _field(7, b"\x08\x01")  # session_log = 7: SessionLog { status: START }
    return msg


def _record(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return header + _masked(header) + data + _masked(data)


def is_event_file(path: Path) -> bool:
    """What TensorBoard reads as an event file: a name containing ``tfevents``."""
    return "tfevents" in path.name and path.is_file()


class EventWriter:
    """Appends scalar events to a new ``events.out.tfevents.*`` file in `logdir`.

    With `history` (a resumed run: ``[(step, scalars), ...]``, the rows its metrics.csv keeps), the
    new file starts with exactly those events and replaces every other event file in `logdir`
    (see the module docstring). It is written under a temporary name TensorBoard does not read and
    renamed into place before the old files go: a kill in between leaves the old points twice
    (not lost), and the next resume rewrites them once."""

    def __init__(self, logdir: str | Path, *, history: list[tuple[int, dict[str, float]]] | None = None):
        d = Path(logdir)
        d.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.robotrl"
        self.path = d / name
        head = _record(_event(0, file_version="brain.Event:2"))
        if history is None:
            self._f = self.path.open("ab")
            self._f.write(head)
            self._f.flush()
            return
        from robotrl.atomic import create_temporary

        fd, tmp = create_temporary(d / "robotrl-events")  # .robotrl-events.PID.HEX.tmp: no "tfevents"
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(head + _record(_event(0, session_start=True)))
                f.write(b"".join(_record(_event(step, scalars=sc)) for step, sc in history if sc))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        for old in d.iterdir():
            if old != self.path and is_event_file(old):
                old.unlink(missing_ok=True)
        self._f = self.path.open("ab")

    def add_scalars(self, step: int, scalars: dict[str, float]) -> None:
        """One event of `scalars` at `step`, handed to the operating system at once (a kill loses nothing)."""
        if scalars:
            self._f.write(_record(_event(step, scalars=scalars)))
            self._f.flush()

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()
