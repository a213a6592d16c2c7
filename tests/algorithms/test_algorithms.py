"""The parts of PPO, TRPO and the off-policy algorithms that end-to-end learning tests would not catch when broken:
PPO's clipped objective and KL-penalty adaptation, TRPO's trust region, resume restoring everything the checkpoint
holds (the replay buffer included), and the sim-to-real settings reaching the envs a training run steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robotrl.algorithms.ppo import adapt_kl_beta, clipped_surrogate
from robotrl.run.rundir import RunDir
from robotrl.run.train import _build, resolve_config, train

TASK = "Pendulum-v1"


def test_clipped_surrogate_hand_computed_cases():
    eps = 0.2
    r = torch.tensor([1.0, 1.5, 0.5, 1.5, 0.5, 1.1], requires_grad=True)
    a = torch.tensor([2.0, 2.0, 2.0, -2.0, -2.0, -1.0])
    out = clipped_surrogate(r, a, eps)
    # r A vs clip(r) A, the smaller: 2; min(3, 2.4) = 2.4; min(1, 1) = 1; min(-3, -2.4) = -3; min(-1, -1.6) = -1.6; -1.1
    np.testing.assert_allclose(out.detach().numpy(), [2.0, 2.4, 1.0, -3.0, -1.6, -1.1], rtol=1e-6)
    out.sum().backward()
    # d/dr: A where the unclipped term is the minimum, 0 where the clipped one is (it no longer depends on r)
    np.testing.assert_allclose(r.grad.numpy(), [2.0, 0.0, 2.0, -2.0, 0.0, -1.0])


@pytest.mark.parametrize("kl, beta", [(0.001, 0.5), (0.0066, 0.5), (0.0067, 1.0), (0.01, 1.0), (0.0149, 1.0),
                                      (0.0151, 2.0), (0.5, 2.0)])
def test_kl_beta_adaptation_follows_the_papers_rule(kl, beta):
    assert adapt_kl_beta(1.0, kl, 0.01) == beta


def _algo(algo: str, flags: dict, run_flags: dict | None = None):
    run_cfg, cfg = resolve_config(algo, TASK, algo_flags=flags, run_flags={"workers": "0", **(run_flags or {})})
    built, _ = _build(algo, TASK, run_cfg, cfg)
    return built


def test_kl_penalty_beta_moves_the_right_way_in_a_real_update():
    small = {"num_envs": "2", "rollout_steps": "128", "minibatch_size": "64", "objective": "kl_penalty",
             "anneal_lr": "false"}
    still = _algo("ppo", {**small, "learning_rate": "1e-12"})  # the policy cannot move: KL ~ 0 -> halve beta
    jump = _algo("ppo", {**small, "learning_rate": "0.05", "kl_beta_init": "0"})  # it lurches: KL >> target
    try:
        still.iterate()
        jump.iterate()
        assert still.kl_beta == 0.5
        beta_after_jump = jump.kl_beta
        assert beta_after_jump == 0.0  # 0 doubled stays 0; the KL itself must have been large:
        jump.kl_beta = 1.0
        m = jump.iterate().metrics
        assert m["train/kl"] > 0.015 and jump.kl_beta == 2.0, m
    finally:
        still.close()
        jump.close()


def test_trpo_steps_stay_inside_the_trust_region_and_use_it():
    algo = _algo("trpo", {"num_envs": "2", "rollout_steps": "256", "max_kl": "0.005"})
    try:
        kls, accepted = [], []
        for _ in range(4):
            m = algo.iterate().metrics
            kls.append(m["train/kl"])
            accepted.append(m["train/step_accepted"])
        assert all(kl <= 0.005 * (1 + 1e-6) for kl in kls), kls  # the line search never accepts more
        assert any(accepted) and max(kls) > 0.5 * 0.005, (kls, accepted)  # and the step fills most of it
    finally:
        algo.close()


SMALL = {
    "ppo": {"num_envs": "2", "rollout_steps": "128", "minibatch_size": "64"},
    "trpo": {"num_envs": "2", "rollout_steps": "256"},
    "ddpg": {"num_envs": "1", "learning_starts": "300", "batch_size": "32", "hidden_sizes": "32,32"},
    "td3": {"num_envs": "1", "learning_starts": "300", "batch_size": "32", "hidden_sizes": "32,32"},
    "sac": {"num_envs": "1", "learning_starts": "300", "batch_size": "32", "hidden_sizes": "32,32"},
}


def _same(a, b, where="state"):
    """Recursive equality of two checkpoint states: tensors bit for bit, arrays, numbers, nested dicts."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (where, sorted(set(a) ^ set(b)))
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert a == b, (where, a, b)


@pytest.mark.parametrize("algo", ["ppo", "trpo", "ddpg", "td3", "sac"])
def test_resume_puts_back_everything_the_checkpoint_holds(tmp_path, algo):
    """Weights, optimisers, normaliser, random generators, noise, SAC's temperature and (off-policy) the replay
    buffer: a fresh algorithm loaded from the checkpoint has exactly the state that was saved. (A resumed run is
    not bit-identical to an unbroken one: its envs start fresh episodes, as the checkpoint does not hold MuJoCo's
    mid-episode state; tests/algorithms/test_offpolicy.py shows that the restored state makes bit-identical updates.)"""
    run = train(algo, TASK, algo_flags=SMALL[algo], run_flags={"workers": "0", "eval_episodes": "0", "seed": "3",
                                                               "total_steps": "1024"},
                out=tmp_path / "run", progress=False)
    saved = RunDir(run).load_checkpoint()["algorithm"]
    fresh = _algo(algo, SMALL[algo])
    try:
        before = fresh.state_dict()
        fresh.load_state_dict(saved)
        _same(saved, fresh.state_dict())
        if algo in ("ddpg", "td3", "sac"):  # the buffer was saved with what it learned from, and it went back in
            assert int(saved["replay"]["high"]) >= 1024 and int(before["replay"]["high"]) == 0
            assert fresh.buffer.high == int(saved["replay"]["high"])
            assert np.abs(fresh.buffer.obs[:fresh.buffer.high]).sum() > 0
    finally:
        fresh.close()


def test_sim_to_real_settings_reach_the_envs_of_a_training_run():
    run_cfg, cfg = resolve_config("ppo", "robotrl/Hopper-v5", algo_flags=SMALL["ppo"],
                                  run_flags={"workers": "0", "randomize_mass": "0.3", "obs_noise": "0.05",
                                             "action_delay": "2"})
    algo, _ = _build("ppo", "robotrl/Hopper-v5", run_cfg, cfg)
    try:
        env = algo.envs._local.envs[0]  # the shard stepped in this process (workers=0: every env)
        names = []
        e = env
        while hasattr(e, "env"):
            names.append(type(e).__name__)
            e = e.env
        model = env.unwrapped.model
        masses = []
        for k in range(3):
            env.reset(seed=k)
            masses.append(model.body_mass.copy())
        assert not np.allclose(masses[0], masses[1]) and not np.allclose(masses[1], masses[2]), names
        assert {"DomainRandomization", "ObservationNoise", "ActionDelay"} <= set(names), names
        obs, _ = env.reset(seed=7)
        clean = env.unwrapped._get_obs()  # what the simulation shows without the noise
        assert 0.01 < float(np.std(obs - clean)) < 0.2
    finally:
        algo.close()
