"""A TensorBoard event-file writer for scalars, in the standard library.

Importing the `tensorboard` package costs about 1.5 s at every start of `robotrl train` (a
noticeable share of a short run) and brings protobuf with it. Scalars need little of it: an event
file is a TFRecord stream (length, masked CRC-32C of the length, payload, masked CRC-32C of the
payload) of `tensorflow.Event` protocol-buffer messages, which this module encodes by hand:

    Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5;
              SessionLog session_log = 7; }
    Summary { repeated Value value = 1; }   Value { string tag = 1; float simple_value = 2; }

TensorBoard reads the files as it reads any others (tests/test_tbevents.py checks with its own
reader). On resume, a `SessionLog.START` event at the resume step makes TensorBoard drop the
events a killed run had written after its last checkpoint.
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


class EventWriter:
    """Appends scalar events to a new ``events.out.tfevents.*`` file in `logdir`."""

    def __init__(self, logdir: str | Path, *, purge_step: int | None = None):
        d = Path(logdir)
        d.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.robotrl"
        self.path = d / name
        self._f = self.path.open("ab")
        self._f.write(_record(_event(purge_step or 0, file_version="brain.Event:2")))
        if purge_step is not None:
            self._f.write(_record(_event(purge_step, session_start=True)))
        self._f.flush()

    def add_scalars(self, step: int, scalars: dict[str, float]) -> None:
        if scalars:
            self._f.write(_record(_event(step, scalars=scalars)))

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()
