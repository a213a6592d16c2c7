"""Studies across seeds and settings (`robotrl sweep`), run on Ray.

    study.py    the study file: parsed and checked in one place, no Ray
    runner.py   the driver and the trials on Ray (the `sweep` extra: ray, optuna)
    results.py  the table (mean, std, IQM with a bootstrap interval), curves and best.toml, from run directories

Nothing outside this package imports Ray or Optuna; `import robotrl.sweep` alone imports neither.
"""
