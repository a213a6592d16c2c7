"""What `robotrl sweep` costs over the same trials run by hand, and what a second core buys.

    python bench/sweep.py [--steps 20000] [--task Pendulum-v1] [--algo ppo] [--section sweep]

One study of 2 learning rates x 2 seeds (4 trials) is run three ways, on this machine:
(1) by hand: each trial's own `robotrl train ALGO TASK --config configs/cNNN.toml --seed S` (the exact
command the study records in the trial's config.json), one after another, each on one core;
(2) `robotrl sweep --cpus 1` (a local Ray with one CPU: the trials one after another);
(3) `robotrl sweep --cpus 2`.
Per-trial overhead = (wall of (2) - wall of (1)) / trials: Ray's start and stop, the driver, the workers'
imports, the reports to the board, the table and the curves, against a shell loop. The speed-up is
wall (2) / wall (3). Whole-process wall times. Results: bench/out/sweep.json and the `sweep` section of
BENCHMARKS.md. The machine is shared: the script waits while /tmp/robotrl-quiet exists.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BIN, machine, run_timed, save_json, update_section, versions

QUIET = Path("/tmp/robotrl-quiet")


def wait_quiet() -> None:
    while QUIET.exists():
        print("bench/sweep.py: a timing benchmark is running (/tmp/robotrl-quiet); waiting", file=sys.stderr)
        time.sleep(60)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algo", default="ppo")
    p.add_argument("--task", default="Pendulum-v1")
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--section", default="sweep")
    a = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    study = root / "study.toml"
    study.write_text(f'[study]\nalgo = "{a.algo}"\ntask = "{a.task}"\nseeds = 2\n\n[run]\ntotal_steps = {a.steps}\n'
                     "eval_episodes = 5\n\n[space]\nlearning_rate = [3e-4, 1e-3]\n")
    sweep = [str(BIN / "robotrl"), "sweep", str(study)]
    wait_quiet()
    wall1, _ = run_timed([*sweep, "--out", str(root / "one"), "--cpus", "1"])
    wait_quiet()
    wall2, _ = run_timed([*sweep, "--out", str(root / "two"), "--cpus", "2"])
    state = json.loads((root / "one" / "study.json").read_text())
    by_hand, trials = 0.0, []
    wait_quiet()
    for c in state["configs"]:
        for seed in (0, 1):
            out = root / "hand" / f"{c['id']}-s{seed}"
            cmd = [str(BIN / "robotrl"), "train", a.algo, a.task, "--config", str(root / "one" / "configs" /
                   f"{c['id']}.toml"), "--seed", str(seed), "--out", str(out), "--no-progress"]
            wall, _ = run_timed(cmd, env={"OMP_NUM_THREADS": "1"}, cpu=0)
            by_hand += wall
            same = json.loads((out / "eval.json").read_text())["mean_return"] == json.loads(
                (root / "one" / "trials" / f"{c['id']}-s{seed}" / "eval.json").read_text())["mean_return"]
            trials.append({"trial": f"{c['id']}-s{seed}", "wall_s": wall, "same_return_as_sweep": same})
    n = len(trials)
    overhead = (wall1 - by_hand) / n
    per_trial = by_hand / n
    result = {"machine": machine(), "versions": versions("ray", "optuna", "torch"), "algo": a.algo, "task": a.task,
              "steps": a.steps, "trials": trials, "by_hand_s": by_hand, "sweep_1cpu_s": wall1, "sweep_2cpu_s": wall2,
              "overhead_per_trial_s": overhead, "overhead_pct": 100 * overhead / per_trial,
              "speedup_2_over_1": wall1 / wall2}
    save_json("sweep", result)
    target = max(0.05 * per_trial, 2.0)
    body = "\n".join([
        "## Studies: `robotrl sweep` against the same trials by hand (bench/sweep.py)",
        "",
        f"Command: `python bench/sweep.py {shlex.join(sys.argv[1:])}`".rstrip() + f" ({time.strftime('%Y-%m-%d')}; "
        f"{machine()}; {versions('ray', 'optuna')}). A study of {a.algo} on {a.task}, 2 learning rates x 2 seeds, "
        f"{a.steps:,} steps per trial; whole-process wall times (run it with nothing else on the machine).",
        "",
        "| way | wall (s) | per trial (s) |",
        "| --- | ---: | ---: |",
        f"| by hand: `robotrl train --config configs/cNNN.toml --seed S`, one after another | {by_hand:.1f} | "
        f"{per_trial:.1f} |",
        f"| `robotrl sweep --cpus 1` | {wall1:.1f} | {wall1 / n:.1f} |",
        f"| `robotrl sweep --cpus 2` | {wall2:.1f} | {wall2 / n:.1f} |",
        "",
        f"Overhead of the runner: {overhead:+.1f} s per trial ({100 * overhead / per_trial:+.0f} %); target: under "
        f"{target:.1f} s (5 % or 2 s per trial, whichever is larger): "
        f"{'met' if overhead <= target else 'not met'}. Speed-up from 1 to 2 cores: {wall1 / wall2:.2f}x. "
        f"Same final returns by hand and in the study (same seeds, same code): "
        f"{sum(t['same_return_as_sweep'] for t in trials)}/{n} trials.",
    ])
    update_section(a.section, body)
    print(body)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
