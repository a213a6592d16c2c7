"""Learning curves from run directories' metrics.csv, several runs on one figure."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path

from robotrl.atomic import atomic_write_bytes
from robotrl.errors import UserError
from robotrl.run.rundir import read_metrics

DEFAULT_METRIC = "rollout/ep_return_mean"


def read_metric(csv_path: Path, metric: str) -> tuple[list[float], list[float], list[str]]:
    """(steps, values) of one column of a metrics.csv (checked by `robotrl.run.rundir.read_metrics`), and the
    file's columns."""
    steps, values = [], []
    columns, rows = read_metrics(Path(csv_path))
    for row in rows:
        v = row.get(metric)
        if v not in (None, ""):
            fv = float(v)
            if math.isfinite(fv):
                steps.append(float(row["step"]))
                values.append(fv)
    return steps, values, columns


def plot_runs(run_dirs: Sequence[str | Path], out: str | Path, metric: str = DEFAULT_METRIC,
              title: str | None = None) -> Path:
    """Plot `metric` against environment steps for each run; returns the PNG path."""
    curves = []
    columns: set[str] = set()
    for rd in run_dirs:
        p = Path(rd)
        csv_path = p / "metrics.csv"
        if p.exists() and not p.is_dir():
            raise UserError(f"{str(p)!r} is a file, not a run directory (give the folder that holds metrics.csv)")
        if not p.is_dir():
            raise UserError(f"run directory {str(p)!r} does not exist")
        if not csv_path.exists():
            raise UserError(f"{str(p)!r} has no metrics.csv (not a robotrl run, or it has not logged yet)")
        steps, values, names = read_metric(csv_path, metric)
        if not names:  # not even a header: a run killed before its first iteration, or a damaged file
            raise UserError(f"{csv_path} is empty (no header, no rows): the run has logged nothing yet, or the "
                            "file was damaged")
        curves.append((p.name, steps, values))
        columns.update(names)
    if metric not in columns and metric.startswith("rollout/ep_"):  # written once an episode has ended
        raise UserError(f"no values of {metric!r} yet: no training episode has ended in "
                        f"{'this run' if len(curves) == 1 else 'these runs'} (each environment has yet to finish one)")
    if metric not in columns:
        known = sorted(c for c in columns if c != "step")
        raise UserError(f"--metric {metric!r}: no such column in metrics.csv; the runs have: {', '.join(known)}")
    if not any(steps for _, steps, _ in curves):
        raise UserError(f"no values of {metric!r} in the given runs (no episode finished yet?)")
    for label, steps, _ in curves:
        if not steps:
            print(f"robotrl: {label} has no values of {metric!r} yet; left out of the plot", file=sys.stderr)
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise UserError(f"-o {str(out)!r}: the plot is a PNG; give a file name ending in .png")
    if not out.parent.is_dir():
        raise UserError(f"-o {str(out)!r}: folder {str(out.parent)!r} does not exist")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for label, steps, values in curves:
        if steps:
            ax.plot(steps, values, label=label, linewidth=1.4)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(metric)
    ax.set_title(title or metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return save_figure(fig, out)


def save_figure(fig, out: Path) -> Path:
    """Lay out `fig`, write it to `out` as PNG atomically (a killed process leaves no half image), close it."""
    import io

    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())
    return out
