"""Metrics: one CSV and TensorBoard, always both; plus the progress line.

Keys use fixed namespaces: ``rollout/`` (episodes from training), ``train/`` (the learner),
``eval/`` (deterministic evaluation), ``time/`` (wall clock and throughput).
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from pathlib import Path
from typing import Any

from robotrl.atomic import atomic_write_bytes
from robotrl.run.rundir import read_metrics


class MetricsLogger:
    """Appends one row per `log` call to metrics.csv and writes the same scalars to TensorBoard.

    On resume, rows logged after the checkpoint's step are dropped from the CSV, and the event files
    are replaced by one holding exactly the rows the CSV keeps (`tbevents.EventWriter`'s `history`),
    so both continue without a lost or a duplicated stretch, however often the run was killed. The
    event files are written by `robotrl.run.tbevents` (no tensorboard import).
    """

    def __init__(self, csv_path: Path, tb_dir: Path | None, *, resume_step: int | None = None):
        self.csv_path = Path(csv_path)
        self.fields: list[str] = []
        self.rows: list[dict[str, Any]] = []
        if resume_step is not None and self.csv_path.is_file():
            fields, rows = read_metrics(self.csv_path)  # checked: a damaged file is a UserError naming the cell
            self.fields = fields
            self.rows = [r for r in rows if int(float(r["step"])) <= resume_step]
            self._rewrite()
        self._file = self.csv_path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self.fields) if self.fields else None
        self._tb = None
        if tb_dir is not None:
            from robotrl.run.tbevents import EventWriter

            history = None if resume_step is None else [(int(float(r["step"])), _scalars(r)) for r in self.rows]
            self._tb = EventWriter(tb_dir, history=history)

    def _rewrite(self) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.fields)
        w.writeheader()
        w.writerows(self.rows)
        atomic_write_bytes(self.csv_path, buf.getvalue().encode())

    def log(self, step: int, metrics: dict[str, float]) -> None:
        row = {"step": step, **{k: v for k, v in metrics.items() if v is not None}}
        new = [k for k in row if k not in self.fields]
        if new:  # a new column: rewrite the file with the wider header
            self.fields = ["step", *sorted(k for k in set(self.fields) | set(new) if k != "step")]
            self._file.close()
            self._rewrite()
            self._file = self.csv_path.open("a", newline="")
            self._writer = csv.DictWriter(self._file, fieldnames=self.fields)
        self.rows.append(row)
        assert self._writer is not None
        self._writer.writerow(row)
        self._file.flush()
        if self._tb is not None:
            self._tb.add_scalars(step, _scalars(metrics))

    def logged(self, step: int, key: str) -> bool:
        """Whether a row at `step` (this session's or a kept one) has a value of `key`: an evaluation of the last
        step with --eval-every is the final evaluation's twin (same policy, same seeds), recorded once."""
        return any(int(float(r["step"])) == step and r.get(key) not in (None, "") for r in reversed(self.rows))

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def duration(seconds: float) -> str:
    """``45s``, ``17m 38s``, ``2h 05m``: a time span as a progress line says it."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def _scalars(row: dict[str, Any]) -> dict[str, float]:
    """The TensorBoard scalars of a row (as logged, or as read back from metrics.csv): every finite
    number but the step."""
    out = {}
    for k, v in row.items():
        if k == "step" or v is None or v == "" or isinstance(v, bool):
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out[k] = f
    return out


class Progress:
    """A progress bar with steps/s and the recent return (tqdm) on a terminal; otherwise (CI logs, a run in the
    background) a plain line every 10 % of the run or every `every_s` seconds, whichever comes first, with the
    estimated time to the end; nothing when disabled. An hour-long run so prints about 30 lines, a 30-second one
    10."""

    def __init__(self, total: int, initial: int = 0, *, enabled: bool = True, desc: str = "", every_s: float = 120.0,
                 clock: Any = time.perf_counter):
        self.total, self.n, self.enabled = total, initial, enabled
        self._bar = None
        self._next_line = initial + total // 10
        self._clock, self._every_s = clock, every_s
        self._t0, self._n0 = clock(), initial
        self._last_line = self._t0
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit="step", unit_scale=True,
                             dynamic_ncols=True, smoothing=0.1)

    def update(self, n: int, postfix: dict[str, str]) -> None:
        self.n = n
        if self._bar is not None:
            self._bar.update(n - self._bar.n)
            self._bar.set_postfix(postfix, refresh=False)
        elif self.enabled and (n >= self._next_line or n >= self.total
                               or self._clock() - self._last_line >= self._every_s):
            print(self.line(n, postfix), file=sys.stderr, flush=True)
            self._last_line = self._clock()
            self._next_line = n + self.total // 10

    def line(self, n: int, postfix: dict[str, str]) -> str:
        """``  step 1,200,000/8,000,000 (15%)  6,812 steps/s  17m 38s left  return=21.3 ...``: the rate measured
        since this process started, and the time left at that rate."""
        rate = (n - self._n0) / max(self._clock() - self._t0, 1e-9)
        left = f"{duration((self.total - n) / rate)} left" if rate > 0 and n < self.total else "done"
        extra = "  ".join(f"{k}={v}" for k, v in postfix.items())
        done = 100 * min(n, self.total) / self.total
        return (f"  step {n:>10,}/{self.total:,} ({done:.0f}%)  {rate:,.0f} steps/s  {left}"
                + (f"  {extra}" if extra else ""))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
