"""Time of one DDPG update (critic + actor + targets), robotrl against Stable-Baselines3, learner only.

    python bench/ddpg_update.py [--updates 300] [--net 256,256] [--batch 256] [--actor-update sequential]

Both fill their replay buffers with 2,000 HalfCheetah-v5 steps, then time `updates` gradient steps,
alternating three rounds. Torch runs one intra-op thread (--threads; two are slower for both at these
sizes); with actor_update "concurrent" (our default) our actor step runs in a second thread. Prints
ms per update and the ratio; with --profile, the torch.profiler table of ours. The arithmetic of one
update with 256x256 networks and batch 256 is about 366 MFLOP (critic forward + backward, target
actor and critic forward, actor forward + backward through the critic), ten 256x256x256 products
among it (3.35 ms at the ~100 GFLOP/s one core does on them).
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--updates", type=int, default=300)
    p.add_argument("--net", default="256,256")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (both libraries)")
    p.add_argument("--actor-update", default="concurrent", choices=["concurrent", "sequential"])
    p.add_argument("--profile", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    hidden = tuple(int(h) for h in a.net.split(","))

    import gymnasium as gym
    from stable_baselines3 import DDPG as SB3DDPG

    from robotrl.ddpg import DDPG, DDPGConfig
    from robotrl.envs import EnvFactory, task_spec
    from robotrl.vec_env import ShardedVectorEnv

    cfg = DDPGConfig(hidden_sizes=hidden, batch_size=a.batch, learning_starts=1000, iteration_steps=1000,
                     actor_update=a.actor_update)
    ours = DDPG(cfg, task_spec("HalfCheetah-v5"), ShardedVectorEnv(EnvFactory("HalfCheetah-v5"), 1, 0), seed=0,
                total_steps=100_000)
    ours.iterate()
    ours.iterate()
    theirs = SB3DDPG("MlpPolicy", gym.make("HalfCheetah-v5"), policy_kwargs={"net_arch": list(hidden)},
                     batch_size=a.batch, learning_starts=1000, device="cpu", seed=0)
    theirs.learn(2000)
    t_ours, t_theirs = [], []
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(a.updates):
            ours.update()
        t_ours.append((time.perf_counter() - t) / a.updates * 1e3)
        t = time.perf_counter()
        theirs.train(gradient_steps=a.updates, batch_size=a.batch)
        t_theirs.append((time.perf_counter() - t) / a.updates * 1e3)
    mo, mt = sorted(t_ours)[1], sorted(t_theirs)[1]
    print(f"robotrl {mo:.2f} ms/update, Stable-Baselines3 {mt:.2f} ms/update: {mt / mo:.2f}x "
          f"(rounds: {', '.join(f'{x:.2f}' for x in t_ours)} vs {', '.join(f'{x:.2f}' for x in t_theirs)})")
    if a.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(50):
                ours.update()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    ours.close()


if __name__ == "__main__":
    main()
