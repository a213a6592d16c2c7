"""What the legged template's sim-to-real defaults cost the batched worlds (issue 33): control steps per second of 32
quadruped worlds (robotrl/Quadruped-v0), random actions, resets included, with every sim-to-real setting off, with the
legged template's defaults (`robotrl.envs.templates.legged.SIM2REAL`), and with each part alone: the per-world model
copies that domain randomisation needs (friction alone), the latency at the physics step, the sensor noise.

    python bench/sim2real.py [--steps 50000] [--worlds 32] [--repeats 3]

Each measurement is a process of its own, the settings taken in turn, `--repeats` rounds; medians and spread.
Writes the `sim2real-defaults` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, run_timed, save_json, update_section, versions

TASK = "robotrl/Quadruped-v0"
RATE = """
import json, sys, time
import numpy as np
from robotrl.envs import make_vector
steps, worlds, s2r = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
vec = make_vector("robotrl/Quadruped-v0", worlds, s2r)
lo, hi = vec.single_action_space.low, vec.single_action_space.high
actions = np.random.default_rng(0).uniform(lo, hi, (64, worlds, len(lo)))
vec.reset(seed=0)
n = steps // worlds
t0 = time.perf_counter()
for k in range(n):
    vec.step(actions[k % 64])
print(n * worlds / (time.perf_counter() - t0))
"""


def settings() -> dict[str, dict]:
    from robotrl.envs.templates.legged import SIM2REAL

    return {"all off": {}, "legged defaults": dict(SIM2REAL),
            "model copies (friction alone)": {"randomize_friction": SIM2REAL["randomize_friction"]},
            "latency alone": {"latency": SIM2REAL["latency"]},
            "sensor noise alone": {"sensor_noise": SIM2REAL["sensor_noise"]}}


def render(rates: dict[str, list[float]], steps: int, worlds: int, repeats: int) -> str:
    """The section: each setting's median rate and range, and its rate against all off measured in the same round
    (the median of those ratios: the machine's load drifts between rounds far more than between neighbours)."""
    off = rates["all off"]
    rows = [f"| {name} | {statistics.median(r):,.0f} | {min(r):,.0f}-{max(r):,.0f} | "
            f"{statistics.median(x / o for x, o in zip(r, off, strict=True)):.2f} |" for name, r in rates.items()]
    return (f"## sim2real-defaults\n\nControl steps per second of {worlds} worlds of {TASK} (`make_vector`, random "
            f"actions, resets included), {steps:,} steps per measurement, each in a process of its own, the settings "
            f"in turn, {repeats} rounds: medians, range, and the median over rounds of the rate against all off in "
            "the same round.\n\n"
            "| sim-to-real settings | steps/s | range | x all off |\n| --- | --- | --- | --- |\n" + "\n".join(rows)
            + f"\n\nThe legged defaults: `envs/templates/legged.py` SIM2REAL. Command: `python bench/sim2real.py "
            f"--steps {steps} --worlds {worlds} --repeats {repeats}` ({machine()}; {versions('mujoco', 'numpy')}).")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=50_000)
    p.add_argument("--worlds", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    cases = settings()
    rates: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, s2r in cases.items():
            _, out = run_timed([sys.executable, "-c", RATE, str(args.steps), str(args.worlds), json.dumps(s2r)])
            rates[name].append(float(out.strip().splitlines()[-1]))
            print(f"{name}: {rates[name][-1]:,.0f} steps/s", file=sys.stderr)
    body = render(rates, args.steps, args.worlds, args.repeats)
    save_json("sim2real", {"rates": rates, "settings": cases, "steps": args.steps, "worlds": args.worlds})
    update_section("sim2real-defaults", body)
    print(body)


if __name__ == "__main__":
    main()
