"""Train Stable-Baselines3 / sb3-contrib on a task with the library's defaults; the comparison side of bench/.

    python bench/sb3_train.py ppo|trpo|ddpg|td3|sac TASK STEPS SEED [--save PATH] [--net 256,256] [--batch 256]
        [--noise ou|gaussian] [--learning-starts N] [--lr 3e-4] [--threads N]

Runs the whole process the way a user of those libraries would (model constructor defaults, one
environment), so that `bench/throughput.py` can time it as a whole process. With --save the model
is stored for `bench/returns.py` to evaluate with robotrl's evaluation protocol, and a partial model
(plus the replay buffer of an off-policy algorithm) is saved every --checkpoint-every steps: a run stopped part-way
(a session ended) continues from it when started again with the same arguments (the random number
streams restart there, which only a benchmark that ran uninterrupted would not see).
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np


def build(algo: str, task: str, seed: int, net: list[int] | None, batch: int | None, noise: str | None,
          learning_starts: int | None = None, lr: float | None = None):
    env = gym.make(task)
    kw: dict = {"seed": seed, "device": "cpu", "verbose": 0}
    if learning_starts is not None:
        kw["learning_starts"] = learning_starts
    if lr is not None:
        kw["learning_rate"] = lr
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
    if algo in ("ddpg", "td3"):
        import stable_baselines3
        from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

        n = env.action_space.shape[0]
        if noise == "ou":
            kw["action_noise"] = OrnsteinUhlenbeckActionNoise(np.zeros(n), 0.2 * np.ones(n))
        elif noise == "gaussian":
            kw["action_noise"] = NormalActionNoise(np.zeros(n), 0.1 * np.ones(n))
        return getattr(stable_baselines3, algo.upper())("MlpPolicy", env, **kw)
    if algo == "sac":
        from stable_baselines3 import SAC

        return SAC("MlpPolicy", env, **kw)
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
    p.add_argument("--learning-starts", type=int, help="off-policy: random steps before learning")
    p.add_argument("--lr", type=float, help="learning rate (SB3 uses one for actor and critics)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's, one per core)")
    p.add_argument("--checkpoint-every", type=int, default=25_000, help="with --save: partial saves (0: none)")
    a = p.parse_args()
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    model = build(a.algo, a.task, a.seed, [int(x) for x in a.net.split(",")] if a.net else None, a.batch, a.noise,
                  a.learning_starts, a.lr)
    partial = f"{a.save}.partial" if a.save else None
    callback = None
    if partial and a.checkpoint_every > 0:
        import os

        if os.path.exists(partial + ".zip"):
            model = type(model).load(partial + ".zip", env=model.get_env(), device="cpu")
            if os.path.exists(partial + ".replay.pkl"):
                model.load_replay_buffer(partial + ".replay.pkl")
            print(f"resumed at {model.num_timesteps} steps", flush=True)
        from stable_baselines3.common.callbacks import BaseCallback

        class Checkpoint(BaseCallback):
            def _on_step(self) -> bool:
                if self.num_timesteps % a.checkpoint_every == 0:
                    self.model.save(partial + ".tmp.zip")
                    os.replace(partial + ".tmp.zip", partial + ".zip")
                    if hasattr(self.model, "save_replay_buffer"):
                        self.model.save_replay_buffer(partial + ".tmp.pkl")
                        os.replace(partial + ".tmp.pkl", partial + ".replay.pkl")
                return True

        callback = Checkpoint()
    model.learn(max(0, a.steps - model.num_timesteps), callback=callback, reset_num_timesteps=False)
    print(f"learn_s={time.perf_counter() - t0:.2f}")
    if a.save:
        model.save(a.save)
        if partial:
            import contextlib
            import os

            for f in (partial + ".zip", partial + ".replay.pkl"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(f)


if __name__ == "__main__":
    main()
