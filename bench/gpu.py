"""The learner on a CUDA GPU: every algorithm's CLI with --device cuda, and what a GPU buys per update.

Needs a machine with a CUDA build of torch and a GPU; these 2-core development machines have neither, so
this ran on a lent GPU machine (bench/gpu.sh sets it up from wheels there). Three parts:

1. Each algorithm trains its CI learning task with ``--device cuda`` (the tests' settings and thresholds),
   continues on the CPU (``robotrl resume RUN --device cpu``: a GPU run moved to a laptop), exports, and the
   exported actor (onnxruntime, CPU) scores what the run's own evaluation scored.
2. Off-policy update time (DDPG, TD3, SAC on HalfCheetah-v5) on the GPU against one CPU core and all cores,
   at our default size (256x256, batch 256) and a large one (1024x1024, batch 1024).
3. Whole process, ``robotrl train td3|sac Hopper-v5`` for a few thousand steps, cuda against cpu.

    python bench/gpu.py --out DIR          # on the GPU machine: DIR/gpu.json, DIR/gpu.md
    python bench/gpu.py --write DIR/gpu.json # here: put the figures into BENCHMARKS.md (section gpu)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import run_timed, update_section

# The CI learning tests' settings and thresholds (tests/algorithms/test_learning.py, test_ddpg.py, test_offpolicy.py).
LEARN = {
    "ppo": ("InvertedPendulum-v5", 50_000, 950.0),
    "trpo": ("InvertedPendulum-v5", 50_000, 950.0),
    "ddpg": ("Pendulum-v1", 5_000, -400.0),
    "td3": ("Pendulum-v1", 5_000, -400.0),
    "sac": ("Pendulum-v1", 5_000, -400.0),
}


def cli(*args: str) -> tuple[float, str]:
    """`robotrl ARGS` in its own process: (wall seconds, stdout); a failure stops the benchmark."""
    return run_timed([sys.executable, "-m", "robotrl", *args])


def part_cli(tmp: Path, algos: list[str], device: str, scale: float) -> list[dict]:
    rows = []
    for algo in algos:
        task, steps, threshold = LEARN[algo]
        steps = int(steps * scale)
        run = tmp / f"{algo}-cuda"
        extra = ["--workers", "0"] if task == "Pendulum-v1" else []
        wall, _ = cli("train", algo, task, "--steps", str(steps), "--seed", "0", "--device", device, "--no-progress",
                      "--out", str(run), *extra)
        trained = json.loads((run / "eval.json").read_text())
        more = trained["step"] + max(1, steps // 10)
        cli("resume", str(run), "--steps", str(more), "--device", "cpu", "--no-progress")
        resumed = json.loads((run / "eval.json").read_text())
        config = json.loads((run / "config.json").read_text())
        cli("export", str(run))
        _, out = cli("eval", "--onnx", str(run / "actor.onnx"), "--json")
        onnx = json.loads(out)
        row = {"algo": algo, "task": task, "steps": steps, "wall_s": wall, "cuda_return": trained["mean_return"],
               "threshold": threshold, "learned": trained["mean_return"] >= threshold,
               "resumed_on": config["run"]["device"], "resumed_steps": resumed["step"],
               "resumed_return": resumed["mean_return"], "onnx_return": onnx["mean_return"],
               "onnx_matches": abs(onnx["mean_return"] - resumed["mean_return"]) <= 1e-3 * max(1.0, abs(
                   resumed["mean_return"]))}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def _time_updates(algo, updates: int, device: str) -> list[float]:
    import torch

    rounds = []
    for _ in range(3):
        if device != "cpu":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(updates):
            algo.update()
        if device != "cpu":
            torch.cuda.synchronize()
        rounds.append((time.perf_counter() - t) / updates * 1e3)
    return rounds


def part_updates(algos: list[str], gpu: str, scale: float) -> list[dict]:
    import torch

    from robotrl.algorithms import registry as registry
    from robotrl.envs import EnvFactory, task_spec
    from robotrl.run.vec_env import ShardedVectorEnv

    cores = os.cpu_count() or 1
    rows = []
    for name in algos:
        Algo, Config = registry.get(name).load()
        for hidden, batch, updates in (((256, 256), 256, 300), ((1024, 1024), 1024, 40)):
            updates = max(1, int(updates * scale))
            for i, (device, threads) in enumerate(((gpu, 1), ("cpu", 1), ("cpu", cores))):
                torch.set_num_threads(threads)
                cfg = Config(hidden_sizes=hidden, batch_size=batch, learning_starts=2000, iteration_steps=2000)
                algo = Algo(cfg, task_spec("HalfCheetah-v5"), ShardedVectorEnv(EnvFactory("HalfCheetah-v5"), 1, 0),
                            seed=0, total_steps=100_000, device=device)
                try:
                    algo.iterate()  # 2,000 random steps into the replay buffer, no update yet
                    for _ in range(max(1, updates // 3)):  # warm caches, CUDA kernels and the allocator
                        algo.update()
                    rounds = _time_updates(algo, updates, device)
                finally:
                    algo.close()
                row = {"algo": name, "hidden": list(hidden), "batch": batch, "device": device, "threads": threads,
                       "gpu": i == 0, "ms_per_update": statistics.median(rounds), "rounds": rounds}
                print(json.dumps(row), flush=True)
                rows.append(row)
    torch.set_num_threads(cores)
    return rows


def part_process(tmp: Path, algos: list[str], steps: int, gpu: str) -> list[dict]:
    rows = []
    for algo in algos:
        for i, device in enumerate((gpu, "cpu")):
            run = tmp / f"{algo}-hopper-{i}"
            wall, _ = cli("train", algo, "Hopper-v5", "--steps", str(steps), "--learning-starts", "1000",
                          "--eval-episodes", "1", "--device", device, "--threads", "1", "--no-progress",
                          "--out", str(run))
            row = {"algo": algo, "device": "gpu" if i == 0 else "cpu", "steps": steps, "wall_s": wall}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def report(res: dict) -> str:
    lines = [f"Command: `python bench/gpu.py --out DIR` on a lent GPU machine ({res['date']}; {res['gpu']}, "
             f"{res['cpus']} CPU cores, Python {res['python']}, torch {res['torch']}; the wheels of bench/gpu.sh), "
             "then `python bench/gpu.py --write DIR/gpu.json` here.", "",
             "**Every algorithm on `--device cuda`**: trained with the CI learning test's settings, continued on the "
             "CPU for 10 % more steps (`robotrl resume RUN --steps N --device cpu`, N = 1.1 x the run's steps), "
             "exported, and the exported actor evaluated with onnxruntime.", "",
             "| algorithm | task, steps | wall (s) | return on cuda | test threshold | resumed on | return after | "
             "ONNX return |", "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: |"]
    for r in res.get("cli", []):
        lines.append(f"| {r['algo'].upper()} | {r['task']}, {r['steps']:,} | {r['wall_s']:.1f} | "
                     f"{r['cuda_return']:,.1f} | {r['threshold']:,.0f} | {r['resumed_on']} at {r['resumed_steps']:,} | "
                     f"{r['resumed_return']:,.1f} | {r['onnx_return']:,.1f} |")
    lines += ["", "**One update** (critic(s) + actor + targets; ms, median of 3 rounds), HalfCheetah-v5:", "",
              "| algorithm | network, batch | GPU | 1 CPU core | all cores | GPU vs 1 core |",
              "| --- | --- | ---: | ---: | ---: | ---: |"]
    by = {}
    for r in res.get("updates", []):
        key = (r["algo"], tuple(r["hidden"]), r["batch"])
        by.setdefault(key, {})["gpu" if r["gpu"] else f"cpu{r['threads']}"] = r["ms_per_update"]
    for (algo, hidden, batch), v in by.items():
        one = v.get("cpu1")
        many = next((x for k, x in v.items() if k.startswith("cpu") and k != "cpu1"), None)
        lines.append(f"| {algo.upper()} | {'x'.join(map(str, hidden))}, {batch} | {v['gpu']:.2f} | {one:.2f} | "
                     f"{many:.2f} | {one / v['gpu']:.2f}x |")
    if not res.get("process"):
        return "\n".join(lines)
    lines += ["", f"**Whole process**, `robotrl train ALGO Hopper-v5 --steps {res['process'][0]['steps']:,} "
              "--learning-starts 1000 --eval-episodes 1 --threads 1 --device D` (start-up, 1,000 random steps and the "
              "evaluation included):", "", "| algorithm | cuda (s) | cpu (s) |", "| --- | ---: | ---: |"]
    walls = {}
    for r in res["process"]:
        walls.setdefault(r["algo"], {})[r["device"]] = r["wall_s"]
    for algo, w in walls.items():
        lines.append(f"| {algo.upper()} | {w['gpu']:.1f} | {w['cpu']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="write gpu.json and gpu.md here (on the GPU machine)")
    p.add_argument("--write", type=Path, metavar="GPU.json", help="put a run's report into BENCHMARKS.md (section gpu)")
    p.add_argument("--algos", default="ppo,trpo,ddpg,td3,sac")
    p.add_argument("--process-steps", type=int, default=5000)
    p.add_argument("--device", default="cuda", help="the GPU (cpu only to try this script without one)")
    p.add_argument("--scale", type=float, default=1.0, help="steps and updates x this (below 1: a quick try)")
    a = p.parse_args()
    if a.write:
        update_section("gpu", report(json.loads(a.write.read_text())))
        return
    if a.out is None:
        p.error("give --out DIR (on a GPU machine) or --write GPU.json")
    import torch

    if a.device != "cpu" and not torch.cuda.is_available():
        raise SystemExit("bench/gpu.py: this torch sees no CUDA GPU")
    a.out.mkdir(parents=True, exist_ok=True)
    algos = a.algos.split(",")
    gpu = torch.cuda.get_device_name(0) if a.device != "cpu" else "no GPU: cpu standing in"
    res = {"date": time.strftime("%Y-%m-%d"), "gpu": gpu, "cpus": os.cpu_count(),
           "python": platform.python_version(), "torch": torch.__version__}
    with tempfile.TemporaryDirectory(prefix="robotrl-gpu-") as tmp:  # each part saved as it ends
        res["cli"] = part_cli(Path(tmp), algos, a.device, a.scale)
        (a.out / "gpu.json").write_text(json.dumps(res, indent=1))
        res["updates"] = part_updates([x for x in algos if x in ("ddpg", "td3", "sac")], a.device, a.scale)
        (a.out / "gpu.json").write_text(json.dumps(res, indent=1))
        res["process"] = part_process(Path(tmp), [x for x in algos if x in ("td3", "sac")], a.process_steps, a.device)
    (a.out / "gpu.json").write_text(json.dumps(res, indent=1))
    (a.out / "gpu.md").write_text(report(res) + "\n")
    print(report(res))


if __name__ == "__main__":
    main()
