"""Train Stable-Baselines3 / sb3-contrib on a task with the library's defaults; the comparison side of bench/.

    python bench/sb3_train.py ppo|trpo|ddpg TASK STEPS SEED [--save PATH] [--net 256,256] [--batch 256]
        [--noise ou|gaussian] [--learning-starts N] [--threads N]

Runs the whole process the way a user of those libraries would (model constructor defaults, one
environment), so that `bench/throughput.py` can time it as a whole process. With --save the model
is stored for `bench/returns.py` to evaluate with robotrl's evaluation protocol.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np


def build(algo: str, task: str, seed: int, net: list[int] | None, batch: int | None, noise: str | None,
          learning_starts: int | None = None):
    env = gym.make(task)
    kw: dict = {"seed": seed, "device": "cpu", "verbose": 0}
    if learning_starts is not None:
        kw["learning_starts"] = learning_starts
    if net:
        kw["policy_kwargs"] = {"net_arch": net}
    if batch:
        kw["batch_size"] = batch
    if algo == "ppo":
        from stable_baselines3 import PPO

        return PPO("MlpPolicy", env, **kw)
    if algo == "trpo":
        from sb3_contrib import TRPO

        return TRPO("MlpPolicy", env, **kw)
    if algo == "ddpg":
        from stable_baselines3 import DDPG
        from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

        n = env.action_space.shape[0]
        if noise == "ou":
            kw["action_noise"] = OrnsteinUhlenbeckActionNoise(np.zeros(n), 0.2 * np.ones(n))
        elif noise == "gaussian":
            kw["action_noise"] = NormalActionNoise(np.zeros(n), 0.1 * np.ones(n))
        return DDPG("MlpPolicy", env, **kw)
    raise SystemExit(f"unknown algo {algo}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("algo")
    p.add_argument("task")
    p.add_argument("steps", type=int)
    p.add_argument("seed", type=int)
    p.add_argument("--save")
    p.add_argument("--net", help="hidden sizes, e.g. 256,256")
    p.add_argument("--batch", type=int)
    p.add_argument("--noise", choices=["ou", "gaussian"])
    p.add_argument("--learning-starts", type=int, help="DDPG: random steps before learning")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's, one per core)")
    a = p.parse_args()
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    model = build(a.algo, a.task, a.seed, [int(x) for x in a.net.split(",")] if a.net else None, a.batch, a.noise,
                  a.learning_starts)
    model.learn(a.steps)
    print(f"learn_s={time.perf_counter() - t0:.2f}")
    if a.save:
        model.save(a.save)


if __name__ == "__main__":
    main()
