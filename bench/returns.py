"""Final returns at a fixed step budget, robotrl beside Stable-Baselines3 / sb3-contrib, several seeds.

    python bench/returns.py [--algos ppo,trpo] [--tasks Hopper-v5,HalfCheetah-v5] [--seeds 0,1,2]
                            [--steps 1000000] [--jobs 2] [--sb3] [--section returns]

A robotrl run stopped part-way (its checkpoint is there, its eval.json not) is resumed with
`robotrl resume`, so a benchmark of many CPU-hours can span several sessions. Each (library,
algorithm, task, seed) trains with that library's defaults (ours: per-task defaults
of `robotrl train`; theirs: constructor defaults via bench/sb3_train.py). Both are then evaluated by
the same protocol, `robotrl.run.evaluate`: 10 deterministic episodes with the seeds robotrl uses for
its final evaluation. The table gives the mean over seeds of each seed's mean return, +- the std
over seeds, and every seed's value. Finished runs are kept under bench/out/returns/ and skipped when
the script is run again, so an interrupted benchmark continues where it stopped. Each finished run's
evaluation is also written to bench/results/returns/ (committed: a few hundred bytes per run), because
bench/out/ is not: a fresh clone finds the runs already made there and does not repeat them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import shlex
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BIN, OUT, REPO, machine, run_timed, save_json, update_section, versions

RECORDS = REPO / "bench" / "results" / "returns"
THEIRS = {"ppo": "SB3 PPO", "trpo": "sb3-contrib TRPO", "ddpg": "SB3 DDPG", "td3": "SB3 TD3", "sac": "SB3 SAC"}


def matched_sb3_args(algo: str, task: str) -> list[str]:
    """`--match`: SB3 run with our settings for (algo, task), so that the two differ in implementation only.

    TD3 and SAC: networks, batch, warm-up, learning rate (SB3 takes one for actor and critics: ours are equal)
    and TD3's Gaussian exploration noise. Their remaining defaults already equal ours (tau 0.005, gamma 0.99,
    policy delay 2, target smoothing 0.2 / 0.5, SAC's automatic temperature from 1.0 toward -|A|)."""
    if algo not in ("td3", "sac"):
        return []
    from robotrl.algorithms import registry as algos

    info = algos.get(algo)
    _, overrides = algos.task_defaults(algo, task)
    cfg = info.load()[1](**overrides)
    assert cfg.actor_learning_rate == cfg.critic_learning_rate, "SB3 has one learning rate"
    args = ["--net", ",".join(map(str, cfg.hidden_sizes)), "--batch", str(cfg.batch_size),
            "--learning-starts", str(cfg.learning_starts), "--lr", repr(cfg.actor_learning_rate)]
    if algo == "td3":
        assert cfg.noise == "gaussian"
        args += ["--noise", "gaussian"]
    return args


def run_name(side: str, algo: str, task: str, seed: int, tag: str, theirs_args: str, match: bool) -> str:
    """One run's name, for its folder under bench/out/returns/ and (with the steps) its record: ours named by
    --tag, SB3's by --match and its extra arguments, so runs with different settings are never taken for each
    other."""
    if side == "ours":
        lib = f"robotrl{tag}"
    else:
        lib = "sb3" + ("-match" if match else "") + (
            "-" + hashlib.sha1(theirs_args.encode()).hexdigest()[:8] if theirs_args else "")
    return f"{lib}-{algo}-{task.replace('/', '_')}-s{seed}"


def _ours(algo: str, task: str, seed: int, steps: int, out: Path, extra: list[str], cpu: int | None) -> dict:
    result = out / "eval.json"
    if not result.exists():
        if (out / "checkpoints" / "latest.pt").exists():  # stopped part-way (a session ended): continue it
            wall, _ = run_timed([str(BIN / "robotrl"), "resume", str(out), "--no-progress"], cpu=cpu)
            before = float((out / "wall_s.txt").read_text()) if (out / "wall_s.txt").exists() else 0.0
            (out / "wall_s.txt").write_text(f"{before + wall:.1f}\n")
        else:
            import shutil

            shutil.rmtree(out, ignore_errors=True)
            wall, _ = run_timed([str(BIN / "robotrl"), "train", algo, task, "--steps", str(steps), "--seed",
                                 str(seed), "--out", str(out), "--no-progress", "--workers", "0", *extra], cpu=cpu)
            (out / "wall_s.txt").write_text(f"{wall:.1f}\n")
    return json.loads(result.read_text())


def _theirs(algo: str, task: str, seed: int, steps: int, base: Path, extra: list[str], cpu: int | None,
            match: bool = False) -> dict:
    result = base.with_suffix(".eval.json")
    if match:  # (before 2026-11-26 evening --match passed nothing: those runs had SB3's defaults)
        extra = [*matched_sb3_args(algo, task), *extra]
    if not result.exists():
        wall, _ = run_timed([sys.executable, str(REPO / "bench" / "sb3_train.py"), algo, task, str(steps), str(seed),
                             "--save", str(base), *extra], env={"OMP_NUM_THREADS": "1"}, cpu=cpu)
        ev = evaluate_sb3(algo, str(base) + ".zip", task, seed)
        ev["wall_s"] = wall
        result.write_text(json.dumps(ev))
    return json.loads(result.read_text())


def evaluate_sb3(algo: str, path: str, task: str, seed: int) -> dict:
    from robotrl.run.evaluate import evaluate
    from robotrl.run.train import eval_seed

    if algo == "trpo":
        from sb3_contrib import TRPO as Cls
    else:
        import stable_baselines3

        Cls = getattr(stable_baselines3, algo.upper())
    model = Cls.load(path, device="cpu")
    return evaluate(lambda obs: model.predict(obs, deterministic=True)[0], task, 10, eval_seed(seed))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algos", default="ppo,trpo")
    p.add_argument("--tasks", default="Hopper-v5,HalfCheetah-v5")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--sb3", action=argparse.BooleanOptionalAction, default=True, help="also run the SB3 side")
    p.add_argument("--theirs-only", action="store_true",
                   help="run only the SB3 side (to spread a table's runs over processes; no table is written: "
                        "a later run of the whole table finds every result stored)")
    p.add_argument("--ours-args", default="", help="extra arguments for robotrl train (e.g. --noise param)")
    p.add_argument("--theirs-args", default="", help="extra arguments for bench/sb3_train.py")
    p.add_argument("--tag", default="", help="names runs with different --ours-args apart, e.g. ou, param "
                   "(run directories robotrl-TAG-...)")
    p.add_argument("--match", action="store_true",
                   help="TD3/SAC: run SB3 with our networks, batch, warm-up, learning rate, noise (matched_sb3_args)")
    p.add_argument("--section", default="returns")
    p.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                   help="with --jobs > 1, give each concurrent run a core of its own (default on)")
    a = p.parse_args()
    tag = "-" + a.tag.lstrip("-") if a.tag else ""  # `--tag ou` and `--tag=-ou` name the same runs
    root = OUT / "returns"
    root.mkdir(parents=True, exist_ok=True)
    algos, tasks = a.algos.split(","), a.tasks.split(",")
    seeds = [int(s) for s in a.seeds.split(",")]
    jobs = []
    for algo in algos:
        for task in tasks:
            for seed in seeds:
                if not a.theirs_only:
                    jobs.append(("ours", algo, task, seed))
                if a.sb3 or a.theirs_only:
                    jobs.append(("theirs", algo, task, seed))

    # Concurrent runs on one core each, so every run of a table gets the same share of the machine
    # and its wall time means the same thing. Results do not change (DDPG's actor-step thread gives
    # bit-identical weights with or without a second core, tests/algorithms/test_ddpg.py).
    free_cpus: queue.Queue[int | None] = queue.Queue()
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    for i in range(a.jobs):
        free_cpus.put(cores[i] if a.pin and a.jobs > 1 and a.jobs <= len(cores) else None)

    def run(job):
        side, algo, task, seed = job
        name = run_name(side, algo, task, seed, tag, a.theirs_args, a.match)
        record = RECORDS / f"{name}-{a.steps}.json"
        if record.exists():  # finished in an earlier clone
            ev = json.loads(record.read_text())
            print(f"{side} {algo} {task} seed {seed}: {ev['mean_return']:.1f} (stored in {record.name})", flush=True)
            return job, ev
        t0 = time.time()
        cpu = free_cpus.get()
        try:
            ev = (_ours(algo, task, seed, a.steps, root / name, a.ours_args.split(), cpu) if side == "ours"
                  else _theirs(algo, task, seed, a.steps, root / name, a.theirs_args.split(), cpu, a.match))
        finally:
            free_cpus.put(cpu)
        record.parent.mkdir(parents=True, exist_ok=True)
        stamp = {"command": shlex.join(sys.argv), "date": time.strftime("%Y-%m-%d")}
        record.write_text(json.dumps({**stamp, **ev}) + "\n")
        print(f"{side} {algo} {task} seed {seed}: {ev['mean_return']:.1f} ({time.time() - t0:.0f} s)", flush=True)
        return job, ev

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with ThreadPoolExecutor(a.jobs) as ex:
        done = dict(ex.map(run, jobs))
    if a.theirs_only:
        return

    rows, summary = [], []
    for algo in algos:
        for task in tasks:
            entry = {"algo": algo, "task": task}
            for side in ("ours", "theirs") if a.sb3 else ("ours",):
                vals = [done[(side, algo, task, s)]["mean_return"] for s in seeds]
                entry[side] = vals
            summary.append(entry)
            cells = []
            for side in ("ours", "theirs") if a.sb3 else ("ours",):
                v = entry[side]
                sd = statistics.stdev(v) if len(v) > 1 else 0.0
                fmt = ",.0f" if max(abs(x) for x in v) >= 100 else ".2f"
                cell = f"{statistics.mean(v):{fmt}} +- {sd:{fmt}} ({', '.join(f'{x:{fmt}}' for x in v)})"
                rates = [done[(side, algo, task, s)].get("success_rate") for s in seeds]
                if all(r is not None for r in rates):
                    cell += f"; success rate {statistics.mean(rates):.0%} ({', '.join(f'{r:.0%}' for r in rates)})"
                    entry[f"{side}_success_rate"] = rates
                cells.append(cell)
            rows.append(f"| {algo.upper()} | {task} | " + " | ".join(cells) + " |")
    save_json(a.section, {"machine": machine(), "steps": a.steps, "seeds": seeds, "results": summary})
    cmd = ("python bench/returns.py " + shlex.join(sys.argv[1:])).strip()
    header = "| algorithm | task | robotrl " + (f"({tag[1:]}) " if tag else "") + "|" + \
        ((" SB3 with our settings (--match: networks, batch, warm-up, learning rate, noise) |" if a.match
          else " reference (same algorithm, library defaults) |") if a.sb3 else "")
    lines = [
        f"Command: `{cmd}` ({time.strftime('%Y-%m-%d')}; {machine()}; "
        f"{versions('stable-baselines3', 'sb3-contrib', 'gymnasium', 'mujoco')}).",
        "",
        f"Final deterministic evaluation after {a.steps:,} steps: mean over seeds {seeds} of each seed's mean "
        "return over 10 episodes, +- std over seeds (each seed's value in brackets). Both sides evaluated by "
        "`robotrl.run.evaluate` with the same episode seeds.",
        "",
        header,
        "| --- | --- | --- |" + (" --- |" if a.sb3 else ""),
        *rows,
    ]
    update_section(a.section, "\n".join(lines))


if __name__ == "__main__":
    main()
