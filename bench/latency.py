"""Single-observation inference latency of an exported actor, p50/p99, one run, one thread.

    python bench/latency.py [--calls 20000] [--hidden 256,256] [--obs-dim 17] [--act-dim 6]

Four ways to compute the same kind of network (obs_dim -> 256 -> 256 -> act_dim, ReLU, tanh out,
with observation normalisation and action scaling):
  robotrl OnnxPolicy    our robot-side runtime call, input checks included (`robotrl.deploy.runtime`)
  bare onnxruntime      InferenceSession.run on the same file with a prepared float32 array
  torch eager           the torch actor (`DeployedPolicy`) under inference_mode
  SB3 predict           Stable-Baselines3 TD3/DDPG policy.predict, net_arch [256, 256], deterministic
Blocks of calls alternate between the four (three rounds) so that machine noise hits all of them;
each figure is the percentile over all calls. Writes the `latency` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, save_json, update_section, versions


def timed(fn, x: np.ndarray, calls: int) -> np.ndarray:
    out = np.empty(calls)
    for i in range(calls):
        t = time.perf_counter_ns()
        fn(x)
        out[i] = time.perf_counter_ns() - t
    return out / 1e3  # microseconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=20_000)
    p.add_argument("--hidden", default="256,256")
    p.add_argument("--obs-dim", type=int, default=17)
    p.add_argument("--act-dim", type=int, default=6)
    a = p.parse_args()
    import onnxruntime as ort
    import torch

    torch.set_num_threads(1)
    from robotrl.deploy.runtime import OnnxPolicy
    from robotrl.policies import RunningMeanStd, from_record, make_record
    from robotrl.policies.export import build_model
    from robotrl.policies.networks import DeterministicActor

    hidden = tuple(int(h) for h in a.hidden.split(","))
    actor = DeterministicActor(a.obs_dim, a.act_dim, hidden, "relu", layer_norm=False)
    rms = RunningMeanStd((a.obs_dim,))
    rms.update(np.random.default_rng(0).normal(size=(1000, a.obs_dim)))
    record = make_record(actor.mu, obs_dim=a.obs_dim, act_dim=a.act_dim, hidden_sizes=hidden, activation="relu",
                         layer_norm=False, out_activation="tanh", obs_rms=rms, obs_clip=10.0,
                         action_low=[-1.0] * a.act_dim, action_high=[1.0] * a.act_dim)
    obs_elems = [{"kind": "obs", "name": str(i)} for i in range(a.obs_dim)]
    act_elems = [{"joint": f"j{i}", "kind": "effort", "low": -1.0, "high": 1.0} for i in range(a.act_dim)]
    card = {"format": "robotrl-card/1", "task_id": "bench", "algo": "ddpg", "spec": {"observation": obs_elems,
            "action": act_elems}, "normalizer": {}, "training": {"steps": 0, "seed": 0}, "robotrl_version": "bench"}
    tmp = Path(tempfile.mkdtemp()) / "actor.onnx"
    tmp.write_bytes(build_model(record, card).SerializeToString())

    ours = OnnxPolicy(tmp)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(tmp), sess_options=opts, providers=["CPUExecutionProvider"])
    torch_policy = from_record(record)

    import gymnasium as gym
    from stable_baselines3 import DDPG

    env = gym.make("HalfCheetah-v5") if (a.obs_dim, a.act_dim) == (17, 6) else None
    if env is None:
        raise SystemExit("SB3 side needs --obs-dim 17 --act-dim 6 (HalfCheetah-v5 spaces)")
    sb3 = DDPG("MlpPolicy", env, policy_kwargs={"net_arch": list(hidden)}, device="cpu", seed=0)

    x32 = np.random.default_rng(1).normal(size=(1, a.obs_dim)).astype(np.float32)
    x1 = x32[0].astype(np.float64)  # what a robot hands over: one float64 vector
    feeds = {"obs": x32}

    def bare(_x):
        return sess.run(None, feeds)

    def eager(_x):
        with torch.inference_mode():
            return torch_policy(torch.from_numpy(x32))

    cases = {
        "robotrl OnnxPolicy (input checks included)": (ours, x1),
        "bare onnxruntime": (bare, x32),
        "torch eager": (eager, x32),
        "SB3 predict": (lambda x: sb3.predict(x, deterministic=True), x1.astype(np.float32)),
    }
    samples: dict[str, list[np.ndarray]] = {k: [] for k in cases}
    for fn, x in cases.values():  # warm-up
        timed(fn, x, 500)
    for _ in range(3):
        for name, (fn, x) in cases.items():
            samples[name].append(timed(fn, x, a.calls // 3))
    results = {}
    for name, parts in samples.items():
        us = np.concatenate(parts)
        results[name] = {"p50_us": float(np.percentile(us, 50)), "p99_us": float(np.percentile(us, 99)),
                         "calls": int(us.size)}
        print(f"{name:45s} p50 {results[name]['p50_us']:7.2f} us   p99 {results[name]['p99_us']:7.2f} us", flush=True)
    bare50 = results["bare onnxruntime"]["p50_us"]
    ratio = results["robotrl OnnxPolicy (input checks included)"]["p50_us"] / bare50
    save_json("latency", {"machine": machine(), "hidden": hidden, "results": results, "ours_over_bare_p50": ratio})
    cmd = ("python bench/latency.py " + shlex.join(sys.argv[1:])).strip()
    lines = [f"Command: `{cmd}` ({time.strftime('%Y-%m-%d')}; {machine()}; "
             f"{versions('onnxruntime', 'torch', 'stable-baselines3')}).", "",
             f"One observation per call, {a.obs_dim} -> {' -> '.join(map(str, hidden))} -> {a.act_dim} MLP, "
             "one thread, "
             f"{a.calls:,} calls per method in three alternating blocks.", "",
             "| method | p50 | p99 |", "| --- | --- | --- |"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['p50_us']:.1f} us | {r['p99_us']:.1f} us |")
    lines += ["", f"Our runtime call over bare onnxruntime at p50: **{ratio:.2f}x** (target: within 1.5x)."]
    update_section("latency", "\n".join(lines))


if __name__ == "__main__":
    main()
