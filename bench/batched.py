"""Batched template tasks (issue 32): PPO on our quadruped, whole process, this checkout against another one (the
last commit before the batched design), and the task alone against MuJoCo alone on the same model.

    python bench/batched.py ppo --baseline /path/to/other/checkout [--steps 500000] [--repeats 3]
    python bench/batched.py env [--steps 100000] [--worlds 32]
    python bench/batched.py arm [--baseline /path/to/other/checkout] [--steps 50000] [--worlds 32] [--repeats 3]

ppo: `robotrl train ppo robotrl/Quadruped-v0` with the per-task defaults (32 worlds x 128 steps, ...), `--steps`
steps, timed as a whole process (start-up, training, the final evaluation), alternating ours and the baseline's
(each with its own virtualenv: BASELINE/.venv/bin/python), `--repeats` times each; medians and spread.

env: control steps per second, random actions, resets included:
- the batched task (`TaskVectorEnv`, `--worlds` worlds, the physics threads it picks);
- MuJoCo alone on the same model and worlds: the same threaded rollout with no task code (the physics-only rate);
- MuJoCo alone, one `MjData` stepped by `mj_step` in a loop on one thread;
- the single-world env one step at a time (what training stepped before, in one process).
arm: control steps per second of our arm (robotrl/ArmReach-v0) and a user's reach config (tests/assets/arm3.toml),
random actions, resets included: the batched task (`--worlds` worlds) against the single-world env one step at a time,
in this checkout and (with `--baseline`) in the other one, each in a process of its own, alternating, medians of
`--repeats`.
Writes the `batched-ppo` / `batched-env` / `batched-arm` sections of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, machine, run_timed, save_json, update_section, versions

TASK = "robotrl/Quadruped-v0"
ARM_TASKS = ("robotrl/ArmReach-v0", f"reach:{REPO / 'tests' / 'assets' / 'arm3.toml'}")
RATE = """
import sys, time
import numpy as np
from robotrl import envs  # an older checkout has no make_vector: only its single env is measured
task, steps, worlds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
env = envs.make(task) if worlds == 0 else envs.make_vector(task, worlds)
lo, hi = env.action_space.low, env.action_space.high
actions = np.random.default_rng(0).uniform(lo, hi, (64, *lo.shape))
env.reset(seed=0)
n = steps // max(worlds, 1)
t0 = time.perf_counter()
for k in range(n):
    _, _, term, trunc, _ = env.step(actions[k % 64])  # a vector env resets its worlds itself
    if worlds == 0 and (term or trunc):
        env.reset()
print(n * max(worlds, 1) / (time.perf_counter() - t0))
"""


def ppo(baseline: Path, steps: int, repeats: int) -> dict:
    ours_py, theirs_py = sys.executable, str(baseline / ".venv" / "bin" / "python")
    walls: dict[str, list[float]] = {"ours": [], "baseline": []}
    for r in range(repeats):
        for side, py, cwd in (("ours", ours_py, REPO), ("baseline", theirs_py, baseline)):
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [py, "-m", "robotrl", "train", "ppo", TASK, "--steps", str(steps), "--seed", str(r),
                       "--out", str(Path(tmp) / "run"), "--no-progress"]
                old = os.getcwd()
                os.chdir(cwd)
                try:
                    wall, _ = run_timed(cmd, timeout=7200)
                finally:
                    os.chdir(old)
            walls[side].append(wall)
            print(f"{side} repeat {r}: {wall:.1f} s", flush=True)
    med = {k: statistics.median(v) for k, v in walls.items()}
    import subprocess

    rev = subprocess.run(["git", "-C", str(baseline), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    return {"steps": steps, "repeats": repeats, "walls": walls, "median": med,
            "speedup": med["baseline"] / med["ours"], "baseline": f"a checkout of {rev or str(baseline)}"}


def env_rates(steps: int, worlds: int) -> dict:
    import mujoco
    from mujoco import rollout

    from robotrl.envs import make, make_vector

    vec = make_vector(TASK, worlds)
    task = vec.task
    rng = np.random.default_rng(0)
    lo, hi = vec.single_action_space.low, vec.single_action_space.high
    actions = rng.uniform(lo, hi, (64, worlds, len(lo)))
    vec.reset(seed=0)
    n_iter = max(1, steps // worlds)
    inner = vec.task.worlds.step
    in_physics = [0.0]

    def timed_step(ctrl: np.ndarray, nsub: int) -> None:  # the time the task spends in MuJoCo's rollout
        t = time.perf_counter()
        inner(ctrl, nsub)
        in_physics[0] += time.perf_counter() - t

    vec.task.worlds.step = timed_step
    t0 = time.perf_counter()
    for k in range(n_iter):
        vec.step(actions[k % 64])
    wall = time.perf_counter() - t0
    batched = n_iter * worlds / wall
    vec.task.worlds.step = inner

    m, nsub = task.model, task.frame_skip
    w = task.worlds
    datas = [mujoco.MjData(m) for _ in range(max(w.threads, 1))]
    r = rollout.Rollout(nthread=w.threads)
    state = w.state.copy()
    ctrls = np.zeros((64, worlds, nsub, m.nu))
    ctrls[..., task._act] = actions[:, :, None, :]  # the same random targets as the task's run
    out = np.zeros((worlds, nsub, w.nstate))
    sens = np.zeros((worlds, nsub, m.nsensordata))
    t0 = time.perf_counter()
    for k in range(n_iter):
        r.rollout([m] * worlds, datas, state, ctrls[k % 64], control_spec=int(mujoco.mjtState.mjSTATE_CTRL), nstep=nsub,
                  state=out, sensordata=sens, skip_checks=True)
        state[:] = out[:, -1]
    physics = n_iter * worlds / (time.perf_counter() - t0)
    r.close()

    d = mujoco.MjData(m)
    mujoco.mj_setState(m, d, w.state[0], mujoco.mjtState.mjSTATE_FULLPHYSICS)
    d.ctrl[:] = task.ctrl[0]
    n_one = max(1, steps // 4)
    t0 = time.perf_counter()
    for _ in range(n_one):
        mujoco.mj_step(m, d, nsub)
    one_thread = n_one / (time.perf_counter() - t0)

    env = make(TASK)
    env.reset(seed=0)
    t0 = time.perf_counter()
    for k in range(n_one):
        _, _, term, trunc, _ = env.step(actions[k % 64, 0])
        if term or trunc:
            env.reset()
    single = n_one / (time.perf_counter() - t0)
    vec.close()
    return {"worlds": worlds, "threads": w.threads, "steps": n_iter * worlds, "batched": batched,
            "physics_rollout": physics, "physics_one_thread": one_thread, "single_env": single,
            "physics_share": in_physics[0] / wall, "fraction_of_physics": batched / physics}


def arm_rates(baseline: Path | None, steps: int, worlds: int, repeats: int) -> dict:
    """Steps/s of each of `ARM_TASKS`: batched here, single env here, single env in `baseline`; medians."""
    import subprocess

    sides = [("batched", sys.executable, REPO, worlds), ("single", sys.executable, REPO, 0)]
    if baseline is not None:
        sides.append(("baseline_single", str(baseline / ".venv" / "bin" / "python"), baseline, 0))
    out: dict = {"steps": steps, "worlds": worlds, "repeats": repeats, "tasks": {}}
    for task in ARM_TASKS:
        rates: dict[str, list[float]] = {name: [] for name, *_ in sides}
        for _ in range(repeats):
            for name, py, cwd, w in sides:
                r = subprocess.run([py, "-c", RATE, task, str(steps), str(w)], cwd=cwd, capture_output=True,
                                   text=True, timeout=3600, check=True)
                rates[name].append(float(r.stdout.split()[-1]))
        out["tasks"][task] = {"rates": rates, "median": {k: statistics.median(v) for k, v in rates.items()}}
        print(task, out["tasks"][task]["median"], flush=True)
    return out


def arm_section(r: dict, when: str, baseline: Path | None) -> str:
    rows = []
    for task, v in r["tasks"].items():
        m = v["median"]
        name = task if task.startswith("robotrl/") else "reach:tests/assets/arm3.toml"
        base = f"{m['baseline_single']:,.0f}" if "baseline_single" in m else "-"
        ratio = f"{m['batched'] / m['baseline_single']:.1f}x" if "baseline_single" in m else "-"
        rows.append(f"| {name} | **{m['batched']:,.0f}** | {m['single']:,.0f} | {base} | {ratio} |")
    return (f"Command: `python bench/batched.py arm --steps {r['steps']} --worlds {r['worlds']} "
            f"--repeats {r['repeats']}{' --baseline CHECKOUT' if baseline else ''}` ({when}; {machine()}; "
            f"{versions('mujoco')}).\n\n"
            f"| task, random actions, resets included (control steps/s, median of {r['repeats']}) | batched, "
            f"{r['worlds']} worlds | single-world env (this checkout) | single env (baseline checkout) | batched / "
            "baseline |\n| --- | --- | --- | --- | --- |\n" + "\n".join(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["ppo", "env", "arm"])
    ap.add_argument("--baseline", type=Path, help="ppo, arm: the other checkout (with its .venv)")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--worlds", type=int, default=32)
    args = ap.parse_args()
    when = time.strftime("%Y-%m-%d")
    if args.what == "ppo":
        if args.baseline is None:
            ap.error("ppo needs --baseline CHECKOUT")
        steps = args.steps or 500_000
        r = ppo(args.baseline.resolve(), steps, args.repeats)
        save_json("batched_ppo", r)
        fmt = lambda v: " / ".join(f"{x:.0f}" for x in v)  # noqa: E731
        body = (f"Command: `python bench/batched.py ppo --baseline CHECKOUT --steps {steps} --repeats {args.repeats}` "
                f"({when}; {machine()}; {versions('mujoco')}); CHECKOUT: {r['baseline']}.\n\n"
                f"| `robotrl train ppo {TASK} --steps {steps}` (whole process, per-task defaults) | wall clock, s "
                f"(each run) | median |\n| --- | --- | --- |\n"
                f"| batched template (this checkout) | {fmt(r['walls']['ours'])} | **{r['median']['ours']:.0f}** |\n"
                f"| before: one env at a time (the baseline checkout) | {fmt(r['walls']['baseline'])} | "
                f"{r['median']['baseline']:.0f} |\n\nSpeed-up: **{r['speedup']:.2f}x** (target >= 2x). Runs alternate "
                "ours and the baseline's, seeds 0, 1, 2, nothing else running.")
        update_section("batched-ppo", body)
    elif args.what == "arm":
        baseline = args.baseline.resolve() if args.baseline else None
        r = arm_rates(baseline, args.steps or 50_000, args.worlds, args.repeats)
        save_json("batched_arm", r)
        update_section("batched-arm", arm_section(r, when, baseline))
    else:
        r = env_rates(args.steps or 100_000, args.worlds)
        save_json("batched_env", r)
        body = (f"Command: `python bench/batched.py env --steps {r['steps']} --worlds {r['worlds']}` ({when}; "
                f"{machine()}; {versions('mujoco')}).\n\n| {TASK}, random actions, resets included | control steps/s "
                f"|\n| --- | --- |\n"
                f"| batched task, {r['worlds']} worlds, {r['threads']} physics threads | **{r['batched']:,.0f}** |\n"
                f"| MuJoCo alone: the same worlds, the same threaded rollout, no task code | "
                f"{r['physics_rollout']:,.0f} |\n"
                f"| MuJoCo alone: one MjData, mj_step on one thread | {r['physics_one_thread']:,.0f} |\n"
                f"| the single-world env, one step at a time | {r['single_env']:,.0f} |\n\n"
                f"The batched task runs at **{100 * r['fraction_of_physics']:.0f} %** of the physics-only rate "
                f"(target >= 70 %); in the task's own run, {100 * r['physics_share']:.0f} % of the time was MuJoCo's "
                "rollout (the physics-only run replays the same random targets without resets: fallen robots cost "
                "another amount of contact work, hence both figures).")
        update_section("batched-env", body)
    print(r)


if __name__ == "__main__":
    main()
