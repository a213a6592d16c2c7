"""A study's results, from its trials' run directories alone: the table, the curves, the best config.

Per configuration, over its seeds' final evaluations (each trial's eval.json ``mean_return``): the
mean, the standard deviation (n - 1), and the interquartile mean (IQM: the mean of the middle half
of the seeds, 25 % cut from each end as ``scipy.stats.trim_mean(x, 0.25)`` does) with a 95 %
percentile-bootstrap confidence interval over seeds (Agarwal et al. 2021, "Deep RL at the edge of the
statistical precipice": with few seeds, report an interval, not a point). Configurations are ranked by
IQM. With fewer than 4 seeds nothing is cut and the IQM is the mean; with one seed the interval is
that one value. No Ray and no Optuna here: `robotrl sweep --resume` of a finished study and the
tests read the same files.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robotrl.atomic import atomic_write_bytes
from robotrl.errors import UserError
from robotrl.run.rundir import RunDir, read_metrics

BOOTSTRAP = 2000
CONFIDENCE = 0.95


def iqm(x: Sequence[float]) -> float:
    """Interquartile mean: sort, cut floor(n/4) values from each end, average the rest."""
    a = np.sort(np.asarray(x, dtype=float))
    k = int(0.25 * len(a))
    return float(a[k:len(a) - k].mean())


def bootstrap_ci(x: Sequence[float], stat: Any = iqm, *, n: int = BOOTSTRAP, confidence: float = CONFIDENCE,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of `stat` over the values (resampled with replacement)."""
    a = np.asarray(x, dtype=float)
    if len(a) == 1:
        return float(a[0]), float(a[0])
    rng = np.random.default_rng(seed)
    samples = a[rng.integers(0, len(a), size=(n, len(a)))]
    if stat is iqm:  # vectorised: sort each resample, cut the same number from each end
        k = int(0.25 * len(a))
        s = np.sort(samples, axis=1)[:, k:len(a) - k].mean(axis=1)
    else:
        s = np.array([stat(r) for r in samples])
    lo, hi = np.quantile(s, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
    return float(lo), float(hi)


def summarize(values: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    lo, hi = bootstrap_ci(a)
    return {"n": len(a), "mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "iqm": iqm(a), "iqm_ci_low": lo, "iqm_ci_high": hi}


def trial_result(run_dir: Path) -> dict[str, Any] | None:
    """{"mean_return", "step", "total_steps"} of a finished trial (its eval.json), None if unfinished."""
    rd = RunDir(run_dir)
    if not rd.eval.is_file() or not rd.config.is_file():
        return None
    ev = rd.read_eval()
    total = int(rd.read_config()["run"]["total_steps"])
    return {"mean_return": float(ev["mean_return"]), "step": int(ev.get("step", total)), "total_steps": total}


def fmt_params(params: dict[str, Any]) -> str:
    def f(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else ",".join(map(str, v)) if isinstance(v, list) else str(v)

    return " ".join(f"{k}={f(v)}" for k, v in params.items()) or "(defaults)"


def table(folder: Path, configs: list[dict[str, Any]], seeds: list[int]) -> list[dict[str, Any]]:
    """One row per configuration with at least one finished seed, best (highest IQM) first; a configuration
    stopped early by ASHA is listed with ``stopped_at`` and ranked after every finished one."""
    rows = []
    for c in configs:
        values, stopped = [], None
        per_seed = {}
        for s in seeds:
            r = trial_result(folder / "trials" / f"{c['id']}-s{s}")
            if r is None:
                continue
            if r["step"] < r["total_steps"]:
                stopped = max(stopped or 0, r["step"])
            values.append(r["mean_return"])
            per_seed[s] = r["mean_return"]
        if not values:
            continue
        rows.append({"config": c["id"], "algo": c["algo"], "task": c["task"], "params": c["params"],
                     **summarize(values), "seeds": per_seed, "stopped_at": stopped})
    rows.sort(key=lambda r: (r["stopped_at"] is None, r["n"] == len(seeds), r["iqm"]), reverse=True)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    out = ["| config | algo | task | settings | seeds | mean | std | IQM [95 % CI] |",
           "| --- | --- | --- | --- | ---: | ---: | ---: | --- |"]
    for r in rows:
        note = f" (stopped at {r['stopped_at']:,})" if r["stopped_at"] is not None else ""
        out.append(f"| {r['config']}{note} | {r['algo']} | {r['task']} | {fmt_params(r['params'])} | {r['n']} | "
                   f"{r['mean']:.1f} | {r['std']:.1f} | {r['iqm']:.1f} [{r['iqm_ci_low']:.1f}, "
                   f"{r['iqm_ci_high']:.1f}] |")
    return "\n".join(out) + "\n"


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["config", "algo", "task", "settings", "n", "mean", "std", "iqm", "iqm_ci_low", "iqm_ci_high",
                "stopped_at", "per_seed"])
    for r in rows:
        w.writerow([r["config"], r["algo"], r["task"], fmt_params(r["params"]), r["n"], r["mean"], r["std"],
                    r["iqm"], r["iqm_ci_low"], r["iqm_ci_high"], r["stopped_at"] or "",
                    " ".join(f"{s}:{v}" for s, v in r["seeds"].items())])
    atomic_write_bytes(path, buf.getvalue().encode())


def curves(folder: Path, rows: list[dict[str, Any]], seeds: list[int], metric: str, out: Path,
           top: int = 10) -> Path | None:
    """Learning curves of the best `top` configurations: the mean over seeds, shaded +- one standard
    deviation over seeds (seeds are put on the first seed's steps by linear interpolation)."""
    series = []
    for r in rows[:top]:
        runs = []
        for s in r["seeds"]:
            path = folder / "trials" / f"{r['config']}-s{s}" / "metrics.csv"
            steps, vals = [], []
            for row in read_metrics(path)[1]:
                v = row.get(metric)
                if v not in (None, "") and math.isfinite(float(v)):
                    steps.append(float(row["step"]))
                    vals.append(float(v))
            if steps:
                runs.append((np.array(steps), np.array(vals)))
        if not runs:
            continue
        grid = runs[0][0][runs[0][0] <= min(s[-1] for s, _ in runs)]
        y = np.stack([np.interp(grid, s, v) for s, v in runs])
        series.append((f"{r['config']} {fmt_params(r['params'])}"[:60], grid, y.mean(0), y.std(0)))
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robotrl.run.plot import save_figure

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    for label, x, m, sd in series:
        (line,) = ax.plot(x, m, label=label, linewidth=1.4)
        ax.fill_between(x, m - sd, m + sd, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(f"{metric} (mean +- std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return save_figure(fig, out)


def write_all(folder: Path, configs: list[dict[str, Any]], seeds: list[int], metric: str,
              config_file: Any) -> list[dict[str, Any]]:
    """results.csv, results.md, curves.png and best.toml in the study folder; returns the table's rows.
    `config_file(config) -> (dict, header)`: the best configuration as a `robotrl train --config` file."""
    from robotrl.sweep.study import to_toml

    rows = table(folder, configs, seeds)
    if not rows:
        raise UserError(f"study {str(folder)!r} has no finished trial yet")
    write_csv(rows, folder / "results.csv")
    atomic_write_bytes(folder / "results.md", markdown(rows).encode())
    drawn = None
    with contextlib.suppress(UserError):  # a damaged metrics.csv in one trial must not cost the table
        drawn = curves(folder, rows, seeds, metric, folder / "curves.png")
    if drawn is None:
        (folder / "curves.png").unlink(missing_ok=True)  # no stale figure from an earlier write
    best = rows[0]
    data, header = config_file(next(c for c in configs if c["id"] == best["config"]))
    header += (f"\nbest of study {folder}: {best['config']} ({fmt_params(best['params'])}), IQM {best['iqm']:.1f} "
               f"[{best['iqm_ci_low']:.1f}, {best['iqm_ci_high']:.1f}] over {best['n']} seeds")
    atomic_write_bytes(folder / "best.toml", to_toml(data, header).encode())
    return rows
