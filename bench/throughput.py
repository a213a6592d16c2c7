"""Whole-process wall time of `robotrl train` against Stable-Baselines3 / sb3-contrib, same steps, one run.

    python bench/throughput.py [--steps 100000] [--repeats 3] [--pairs ppo:HalfCheetah-v5,trpo:HalfCheetah-v5]

Each library runs with its own defaults, as a user would start it: `robotrl train ALGO TASK --steps N`
(our per-task defaults, env worker processes on the spare cores) against `bench/sb3_train.py`
(constructor defaults, one env). Runs alternate (ours, theirs, theirs, ours, ...) so that a noisy
neighbour on the machine hits both; the table reports the median wall time per side and the ratio
of the medians. Results go to bench/out/throughput.json and the `throughput` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BIN, REPO, machine, run_timed, save_json, update_section, versions

THEIRS = {"ppo": "Stable-Baselines3 PPO", "trpo": "sb3-contrib TRPO", "ddpg": "Stable-Baselines3 DDPG",
          "td3": "Stable-Baselines3 TD3", "sac": "Stable-Baselines3 SAC"}


def ours_cmd(algo: str, task: str, steps: int, out: Path, extra: list[str]) -> list[str]:
    return [str(BIN / "robotrl"), "train", algo, task, "--steps", str(steps), "--out", str(out), "--no-progress",
            *extra]


def theirs_cmd(algo: str, task: str, steps: int, extra: list[str]) -> list[str]:
    return [sys.executable, str(REPO / "bench" / "sb3_train.py"), algo, task, str(steps), "0", *extra]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--pairs", default="ppo:HalfCheetah-v5,trpo:HalfCheetah-v5")
    p.add_argument("--ours-args", default="", help="extra arguments for robotrl train")
    p.add_argument("--theirs-args", default="", help="extra arguments for bench/sb3_train.py")
    p.add_argument("--section", default="throughput", help="BENCHMARKS.md section to write")
    a = p.parse_args()
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="robotrl-bench-"))
    try:
        for pair in a.pairs.split(","):
            algo, task = pair.split(":")
            ours_t, theirs_t = [], []
            for r in range(a.repeats):
                order = ("ours", "theirs") if r % 2 == 0 else ("theirs", "ours")
                for side in order:
                    if side == "ours":
                        out = tmp / f"{algo}-{task}-{r}"
                        wall, _ = run_timed(ours_cmd(algo, task, a.steps, out, a.ours_args.split()))
                        shutil.rmtree(out, ignore_errors=True)
                        ours_t.append(wall)
                    else:
                        wall, _ = run_timed(theirs_cmd(algo, task, a.steps, a.theirs_args.split()))
                        theirs_t.append(wall)
                    print(f"{algo} {task} repeat {r} {side}: {wall:.1f} s", flush=True)
            mo, mt = statistics.median(ours_t), statistics.median(theirs_t)
            results.append({"algo": algo, "task": task, "steps": a.steps, "ours_s": ours_t, "theirs_s": theirs_t,
                            "ours_median_s": mo, "theirs_median_s": mt, "ratio": mt / mo})
            print(f"==> {algo} {task}: robotrl {mo:.1f} s ({a.steps / mo:,.0f} steps/s), {THEIRS[algo]} {mt:.1f} s "
                  f"({a.steps / mt:,.0f} steps/s): {mt / mo:.2f}x", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    save_json(a.section, {"machine": machine(), "results": results})
    cmd = "python bench/throughput.py " + shlex.join(sys.argv[1:])
    lines = [
        f"Command: `{cmd.strip()}` ({time.strftime('%Y-%m-%d')}; {machine()}; "
        f"{versions('stable-baselines3', 'sb3-contrib', 'gymnasium', 'mujoco')}).",
        "",
        f"Whole-process wall time for {a.steps:,} steps, start-up, final evaluation and plot included, median of "
        f"{a.repeats} alternating repeats per side. Each side runs with its defaults.",
        "",
        "| algorithm | task | robotrl | steps/s | reference | steps/s | speed-up |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(f"| {r['algo'].upper()} | {r['task']} | {r['ours_median_s']:.1f} s "
                     f"| {r['steps'] / r['ours_median_s']:,.0f} "
                     f"| {THEIRS[r['algo']]} {r['theirs_median_s']:.1f} s | {r['steps'] / r['theirs_median_s']:,.0f} "
                     f"| **{r['ratio']:.2f}x** |")
    update_section(a.section, "\n".join(lines))


if __name__ == "__main__":
    main()
