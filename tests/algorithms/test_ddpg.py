"""DDPG: parameter-noise mechanics on a real actor, learning a small task with OU and parameter noise,
and the CLI commands on a DDPG run."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from robotrl.algorithms.ddpg import DDPG, DDPGConfig
from robotrl.cli import main
from robotrl.envs import EnvFactory, task_spec
from robotrl.run.train import resume, train
from robotrl.run.vec_env import ShardedVectorEnv

TASK = "InvertedPendulum-v5"


def _agent(**kw) -> DDPG:
    cfg = DDPGConfig(hidden_sizes=(64, 64), learning_starts=200, batch_size=64, **kw)
    envs = ShardedVectorEnv(EnvFactory(TASK), cfg.num_envs)
    return DDPG(cfg, task_spec(TASK), envs, seed=0, total_steps=10_000)


def test_parameter_noise_leaves_layer_norm_alone_and_perturbs_each_env_separately():
    agent = _agent(noise="param", num_envs=3, param_noise_initial_std=0.5)
    try:
        params = dict(agent.actor.named_parameters())
        ln = {n for n, m in agent.actor.named_modules() if isinstance(m, torch.nn.LayerNorm)}
        assert ln, "the actor must have LayerNorm layers for parameter noise"
        for name, stacked in agent.noise.perturbed.items():
            assert stacked.shape == (3, *params[name].shape)
            if name.rsplit(".", 1)[0] in ln:
                assert torch.equal(stacked[0], params[name].detach()) and torch.equal(stacked[1], stacked[2])
            else:
                assert not torch.equal(stacked[0], stacked[1])
                if params[name].numel() >= 64:
                    assert float((stacked[0] - params[name]).detach().std()) == pytest.approx(0.5, rel=0.2)
    finally:
        agent.close()


def test_parameter_noise_adaptation_tracks_the_desired_action_distance():
    agent = _agent(noise="param", param_noise_initial_std=0.5, param_noise_desired_std=0.1,
                   param_noise_alpha=1.05)
    try:
        agent.iterate()  # fills the replay buffer
        with torch.no_grad():  # a non-trivial actor: larger output weights than at initialisation
            agent.actor.mu[-2].weight.mul_(10.0)
        distances = []
        for _ in range(700):
            agent.adapt_noise()
            distances.append(agent.noise.process.last_distance)
        assert distances[0] > 0.1  # started too far: sigma had to shrink
        assert agent.noise.sigma < 0.5
        # sigma moves up when d < target and down when d > target, so it settles where half the
        # measurements exceed the target: the median distance tracks it.
        assert np.median(distances[-400:]) == pytest.approx(0.1, rel=0.25)
    finally:
        agent.close()


def test_concurrent_actor_step_gives_the_same_result_on_one_core_and_two():
    # actor_update="concurrent" runs the actor step in a second thread next to the critic step; the
    # arithmetic must not depend on whether that thread exists.
    finals = []
    for threaded in (True, False):
        agent = _agent()
        try:
            if not threaded and agent._pool is not None:
                agent._pool.shutdown()
                agent._pool = None
            if threaded and agent._pool is None:  # a one-core machine: give it the thread anyway, or this
                from concurrent.futures import ThreadPoolExecutor  # test would compare one path with itself

                agent._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="robotrl-second-core")
            agent.iterate()  # 1000 steps: 800 updates
            used = any(t.name.startswith("robotrl-second-core") for t in threading.enumerate())
            assert used == threaded  # the threaded run really ran the actor step in its own thread
            # the actor stepped through the critic as it was before the update's critic step
            before = [p.detach().clone() for p in agent.critic.parameters()]
            agent.update()
            for a, b, c in zip(agent.actor_q.parameters(), before, agent.critic.parameters(), strict=True):
                assert torch.equal(a, b) and not torch.equal(b, c)
            finals.append(torch.cat([p.detach().flatten() for p in [*agent.actor.parameters(),
                                                                    *agent.critic.parameters()]]))
        finally:
            agent.close()
    assert torch.equal(finals[0], finals[1])
    sequential = _agent(actor_update="sequential")
    try:
        sequential.iterate()
        other = torch.cat([p.detach().flatten() for p in sequential.actor.parameters()])
    finally:
        sequential.close()
    assert not torch.equal(other, finals[0][:other.numel()])  # the orders differ, so do the results


@pytest.mark.slow
@pytest.mark.parametrize("noise", ["ou", "param"])
def test_ddpg_learns_pendulum(tmp_path, noise, random_policy_return):
    # Pendulum-v1: swing up and hold; 200-step episodes end only by time limit, so every episode end is
    # a truncation that must bootstrap. A uniform-random policy scores about -1,200; a good one about -150.
    task = "Pendulum-v1"
    random_return = random_policy_return(task, 10, seed=0)
    assert random_return < -900
    run = train("ddpg", task, algo_flags={"noise": noise, "hidden_sizes": "128,128", "learning_starts": "1000"},
                run_flags={"total_steps": "5000", "seed": "0", "workers": "0"}, out=tmp_path / noise, progress=False)
    ev = json.loads((run / "eval.json").read_text())
    assert ev["mean_return"] >= -400, (ev, random_return)
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "train/noise_sigma" in header
    if noise == "param":
        assert "train/param_noise_distance" in header


def test_ddpg_run_with_every_cli_command(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "ddpg", TASK, "--noise", "gaussian", "--steps", "1500", "--learning-starts", "500",
                 "--hidden-sizes", "32,32", "--batch-size", "32", "--iteration-steps", "500",
                 "--checkpoint-every", "500", "--out", str(out), "--eval-episodes", "2", "--no-progress"])
    assert code == 0
    state = torch.load(out / "checkpoints" / "latest.pt", weights_only=True)
    assert state["algorithm"]["replay"]["obs"].shape[0] > 1500  # the replay buffer travels with the checkpoint
    assert main(["resume", str(out), "--steps", "2000", "--no-progress"]) == 0
    assert int(torch.load(out / "checkpoints" / "latest.pt", weights_only=True)["num_steps"]) == 2000
    capsys.readouterr()
    assert main(["eval", str(out), "--episodes", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 2
    assert main(["plot", str(out)]) == 0
    assert (out / "learning_curve.png").exists()
    assert resume is not None
