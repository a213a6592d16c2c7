"""Time of one off-policy update (critics + actor + targets), robotrl against Stable-Baselines3, learner only.

    python bench/offpolicy_update.py [--algo ddpg|td3|sac] [--updates 300] [--net 256,256] [--batch 256]
                                     [--actor-update sequential] [--profile]
    python bench/offpolicy_update.py --twin-batched [--net 256,256] [--batch 256]

Both fill their replay buffers with 2,000 HalfCheetah-v5 steps, then time `updates` gradient steps,
alternating three rounds (the median round is reported). Torch runs one intra-op thread (--threads;
two are slower for both at these sizes); with actor_update "concurrent" (our default) our actor step
runs in a second thread. Prints ms per update and the ratio; with --profile, the torch.profiler table
of ours. For TD3 an "update" is one critic step, and every second one also an actor and target step,
for both libraries (policy_delay 2).

The arithmetic of one DDPG update with 256x256 networks and batch 256 is about 366 MFLOP (critic
forward + backward, target actor and critic forward, actor forward + backward through the critic),
ten 256x256x256 products among it (3.35 ms at the ~100 GFLOP/s one core does on them).

--twin-batched answers whether TD3's and SAC's two critics should be one batched call: one core
times a forward + backward of the two 256x256 critics as two `QCritic` calls (what `TwinQCritic`
does) against the same two networks stacked and run as one `torch.func.vmap` over their parameters
(batched matrix products).
"""

from __future__ import annotations

import argparse
import time

import torch


def twin_batched(hidden: tuple[int, ...], batch: int, rounds: int = 5, reps: int = 200) -> None:
    from torch.func import functional_call, stack_module_state, vmap

    from robotrl.policies import TwinQCritic

    obs_dim, act_dim = 17, 6  # HalfCheetah
    twin = TwinQCritic(obs_dim, act_dim, hidden, "relu")
    obs, act, y = torch.randn(batch, obs_dim), torch.randn(batch, act_dim), torch.randn(batch)
    params, buffers = stack_module_state([twin.q1, twin.q2])
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    base = twin.q1

    def stacked(p: dict) -> torch.Tensor:
        return vmap(lambda pp, bb: functional_call(base, (pp, bb), (obs, act)))(p, buffers)

    def separate() -> None:
        twin.zero_grad()
        ((twin(obs, act) - y) ** 2).mean(-1).sum().backward()

    def batched() -> None:
        for v in params.values():
            v.grad = None
        ((stacked(params) - y) ** 2).mean(-1).sum().backward()

    with torch.no_grad():  # the same numbers either way
        assert torch.allclose(stacked(params), twin(obs, act), atol=1e-5)
    times: dict[str, list[float]] = {"separate": [], "batched": []}
    for _ in range(rounds):
        for name, fn in (("separate", separate), ("batched", batched)):
            for _ in range(20):
                fn()
            t = time.perf_counter()
            for _ in range(reps):
                fn()
            times[name].append((time.perf_counter() - t) / reps * 1e3)
    ms = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    print(f"twin critics {hidden}, batch {batch}, forward + backward on one core: two calls {ms['separate']:.3f} ms, "
          f"one vmap call {ms['batched']:.3f} ms ({ms['batched'] / ms['separate'] - 1:+.0%})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algo", default="ddpg", choices=["ddpg", "td3", "sac"])
    p.add_argument("--updates", type=int, default=300)
    p.add_argument("--net", default="256,256")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (both libraries)")
    p.add_argument("--actor-update", default="concurrent", choices=["concurrent", "sequential"])
    p.add_argument("--profile", action="store_true")
    p.add_argument("--twin-batched", action="store_true", help="time the twin critics as two calls against one")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    hidden = tuple(int(h) for h in a.net.split(","))
    if a.twin_batched:
        twin_batched(hidden, a.batch)
        return

    import gymnasium as gym
    import stable_baselines3

    from robotrl.algorithms import registry as algos
    from robotrl.envs import EnvFactory, task_spec
    from robotrl.run.vec_env import ShardedVectorEnv

    Algo, Config = algos.get(a.algo).load()
    lr = Config().actor_learning_rate
    cfg = Config(hidden_sizes=hidden, batch_size=a.batch, learning_starts=1000, iteration_steps=1000,
                 actor_update=a.actor_update)
    ours = Algo(cfg, task_spec("HalfCheetah-v5"), ShardedVectorEnv(EnvFactory("HalfCheetah-v5"), 1, 0), seed=0,
                total_steps=100_000)
    ours.iterate()
    ours.iterate()
    theirs = getattr(stable_baselines3, a.algo.upper())(
        "MlpPolicy", gym.make("HalfCheetah-v5"), policy_kwargs={"net_arch": list(hidden)}, batch_size=a.batch,
        learning_starts=1000, learning_rate=lr, device="cpu", seed=0)
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
    print(f"{a.algo}: robotrl {mo:.2f} ms/update, Stable-Baselines3 {mt:.2f} ms/update: {mt / mo:.2f}x "
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
