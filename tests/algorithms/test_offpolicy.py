"""TD3 and SAC (and the off-policy core they share with DDPG): the TD3 target and the SAC log-probability
against hand-computed cases, the temperature moving the right way, delayed updates on schedule, a resumed
algorithm making bit-identical updates, the second core changing nothing but the time, export of SAC's
deterministic action, and both learning Pendulum-v1."""

from __future__ import annotations

import copy
import json
import math
import threading

import numpy as np
import pytest
import torch

from robotrl.algorithms.sac import squashed_gaussian_log_prob
from robotrl.algorithms.td3 import td3_target
from robotrl.cli import main
from robotrl.run.train import _build, resolve_config, train

TASK = "Pendulum-v1"
SMALL = {"learning_starts": "200", "batch_size": "32", "hidden_sizes": "32,32", "iteration_steps": "300"}


def _algo(algo: str, flags: dict | None = None, seed: int = 0):
    run_cfg, cfg = resolve_config(algo, TASK, algo_flags={**SMALL, **(flags or {})},
                                  run_flags={"workers": "0", "seed": str(seed)})
    built, _ = _build(algo, TASK, run_cfg, cfg)
    return built


def _params(*modules: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for m in modules for p in m.parameters()])


# -------------------------------------------------------------------------------------------------
# Hand-computed cases


def test_td3_target_smooths_clips_and_takes_the_smaller_critic():
    # Two "target critics" with known values: Q'_1(s, a) = a_0 + a_1, Q'_2(s, a) = 2 a_0 - s_0.
    def q_target(s, a):
        return torch.stack([a[:, 0] + a[:, 1], 2 * a[:, 0] - s[:, 0]])

    next_obs = torch.tensor([[0.0], [1.0], [0.5]])
    mu_next = torch.tensor([[0.2, -0.3], [0.9, 0.9], [-0.8, 0.0]])
    eps = torch.tensor([[0.1, 0.0], [0.7, -0.2], [-0.9, 0.3]])  # 0.7 and -0.9 lie beyond c = 0.5
    rewards, terminated = torch.tensor([1.0, 2.0, -1.0]), torch.tensor([0.0, 0.0, 1.0])
    y = td3_target(rewards, terminated, mu_next, eps, q_target, next_obs, gamma=0.9, noise_clip=0.5)
    # row 0: a~ = (0.3, -0.3); Q'_1 = 0, Q'_2 = 0.6 - 0 = 0.6; min 0 -> y = 1 + 0.9 * 0 = 1
    # row 1: eps clipped to (0.5, -0.2); a~ = clip((1.4, 0.7)) = (1, 0.7); Q'_1 = 1.7, Q'_2 = 2 - 1 = 1; min 1
    #        -> y = 2 + 0.9 * 1 = 2.9
    # row 2: terminated: y = r = -1 whatever the critics say
    np.testing.assert_allclose(y.numpy(), [1.0, 2.9, -1.0], rtol=0, atol=1e-6)


def test_sac_log_prob_with_the_tanh_correction_hand_computed():
    # u = 0.5 under N(0, 1): log N = -0.5 * 0.25 - 0.5 log(2 pi) = -1.0439385; a = tanh(0.5) = 0.4621172,
    # log(1 - a^2) = log(0.7864477) = -0.2402290; log pi(a) = -1.0439385 + 0.2402290 = -0.8037095
    u, mean, log_std = torch.tensor([[0.5]]), torch.tensor([[0.0]]), torch.tensor([[0.0]])
    assert float(squashed_gaussian_log_prob(u, mean, log_std)) == pytest.approx(-0.8037095, abs=1e-6)
    # two dimensions, std 0.5 (log_std = -log 2), mean (0.2, -1): sum of the two 1-D terms
    u = torch.tensor([[0.0, -1.5]])
    mean, log_std = torch.tensor([[0.2, -1.0]]), torch.full((1, 2), -math.log(2.0))
    expected = 0.0
    for ui, mi in ((0.0, 0.2), (-1.5, -1.0)):
        z = (ui - mi) / 0.5
        expected += -0.5 * z * z - math.log(0.5) - 0.5 * math.log(2 * math.pi) - math.log(1 - math.tanh(ui) ** 2)
    assert float(squashed_gaussian_log_prob(u, mean, log_std)) == pytest.approx(expected, abs=1e-5)
    # the same as torch's own change of variables on random values, and finite where tanh(u) rounds to 1
    g = torch.Generator().manual_seed(0)
    mean, log_std = torch.randn(64, 3, generator=g), 0.5 * torch.randn(64, 3, generator=g)
    u = mean + log_std.exp() * torch.randn(64, 3, generator=g)
    dist = torch.distributions.TransformedDistribution(torch.distributions.Normal(mean, log_std.exp()),
                                                       [torch.distributions.TanhTransform()])
    ref = dist.log_prob(torch.tanh(u).clamp(-1 + 1e-6, 1 - 1e-6)).sum(-1)
    ok = torch.tanh(u).abs() < 0.999  # where torch's atanh of a rounded a is still accurate
    torch.testing.assert_close(squashed_gaussian_log_prob(u, mean, log_std)[ok.all(-1)], ref[ok.all(-1)],
                               rtol=1e-4, atol=1e-4)
    far = squashed_gaussian_log_prob(torch.tensor([[30.0]]), torch.tensor([[30.0]]), torch.tensor([[0.0]]))
    assert torch.isfinite(far).all()  # log(1 - tanh(30)^2) = 2 (log 2 - 30 - softplus(-60)) = -58.6


@pytest.mark.parametrize("target_entropy, direction", [(5.0, 1), (-20.0, -1)])
def test_sac_temperature_moves_toward_the_target_entropy(target_entropy, direction):
    # A target above the policy's entropy must raise alpha (more exploration), one below must lower it.
    agent = _algo("sac", {"target_entropy": str(target_entropy), "alpha_learning_rate": "0.01"})
    try:
        agent.iterate()  # 300 steps: warm-up, then 100 updates
        alphas = [float(agent.temperature())]
        for _ in range(50):
            entropy = float(agent.update()["entropy"])
            alphas.append(float(agent.temperature()))
        steps = np.sign(np.diff(alphas))
        assert np.all(steps == direction), (alphas[:5], entropy)
        assert direction * (entropy - target_entropy) < 0  # the policy is on the side the target says
    finally:
        agent.close()
    fixed = _algo("sac", {"alpha": "0.2"})
    try:
        fixed.iterate()
        assert float(fixed.temperature()) == pytest.approx(0.2) and "train/alpha_loss" not in fixed.iterate().metrics
    finally:
        fixed.close()


@pytest.mark.parametrize("actor_update", ["concurrent", "sequential"])
def test_td3_updates_actor_and_targets_every_policy_delay_updates(actor_update):
    agent = _algo("td3", {"policy_delay": "3", "actor_update": actor_update})
    try:
        agent.iterate()  # warm-up and some updates
        done = agent.updates
        changed = []
        for _ in range(7):
            before = (_params(agent.actor), _params(agent.actor_target, agent.critic_target), _params(agent.critic))
            stats = agent.update()
            after = (_params(agent.actor), _params(agent.actor_target, agent.critic_target), _params(agent.critic))
            moved = [not torch.equal(x, y) for x, y in zip(before, after, strict=True)]
            assert moved[2]  # the critics learn on every update
            assert moved[0] == moved[1] == ("actor_loss" in stats)
            changed.append(moved[0])
        expected = [(done + k + 1) % 3 == 0 for k in range(7)]
        assert changed == expected and sum(expected) >= 2
    finally:
        agent.close()


# -------------------------------------------------------------------------------------------------
# State: resume and the second core


@pytest.mark.parametrize("algo", ["ddpg", "td3", "sac"])
def test_restored_algorithm_makes_bit_identical_updates(algo):
    """A fresh algorithm loaded from a state_dict continues exactly as the original: same minibatches, same
    noise, same weights after each update. (A resumed *run* also restarts its envs' episodes, which the
    checkpoint cannot hold; tests/algorithms/test_algorithms.py checks that everything else is restored.)"""
    a = _algo(algo, seed=5)
    b = _algo(algo, seed=9)  # different weights and generators until the state is loaded
    try:
        a.iterate()
        saved = copy.deepcopy(a.state_dict())
        b.load_state_dict(saved)
        for _ in range(5):
            sa, sb = a.update(), b.update()
            assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
        modules = [n for n in a.checkpointed if isinstance(getattr(a, n), torch.nn.Module)]
        assert torch.equal(_params(*[getattr(a, n) for n in modules]), _params(*[getattr(b, n) for n in modules]))
        a.load_state_dict(saved)  # both resume from the checkpoint: fresh episodes from the same RNG state
        b.load_state_dict(saved)
        ma, mb = a.iterate().metrics, b.iterate().metrics
        assert ma["train/critic_loss"] == mb["train/critic_loss"] and torch.equal(_params(a.actor), _params(b.actor))
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("algo", ["td3", "sac"])
def test_second_core_gives_the_same_result_as_one(algo):
    finals = []
    for threaded in (True, False):
        agent = _algo(algo)
        try:
            if not threaded and agent._pool is not None:
                agent._pool.shutdown()
                agent._pool = None
            if threaded and agent._pool is None:  # a one-core machine: give it the thread anyway
                from concurrent.futures import ThreadPoolExecutor

                agent._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="robotrl-second-core")
            agent.iterate()
            agent.iterate()
            used = any(t.name.startswith("robotrl-second-core") for t in threading.enumerate())
            assert used == threaded
            finals.append(_params(agent.actor, agent.critic))
        finally:
            agent.close()
    assert torch.equal(finals[0], finals[1])


# -------------------------------------------------------------------------------------------------
# Export and the CLI


def test_sac_exports_tanh_of_the_mean_in_robot_units(tmp_path, capsys):
    from robotrl.deploy.runtime import OnnxPolicy
    from robotrl.policies.export import PARITY_TOL
    from robotrl.run.rundir import RunDir

    task = "robotrl/ArmReach-v0"
    run = train("sac", task, algo_flags={**SMALL, "normalize_obs": "true"},
                run_flags={"total_steps": "600", "workers": "0", "eval_episodes": "1"}, out=tmp_path / "sac",
                progress=False)
    assert main(["export", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["parity_max_abs_diff"] <= PARITY_TOL
    onnx_policy = OnnxPolicy(run / "actor.onnx")
    assert onnx_policy.card["algo"] == "sac"
    state = RunDir(run).load_checkpoint()
    run_cfg, cfg = resolve_config("sac", task, algo_flags={**SMALL, "normalize_obs": "true"},
                                  run_flags={"workers": "0"})
    agent, spec = _build("sac", task, run_cfg, cfg)
    try:
        agent.load_state_dict(state["algorithm"])
        obs = np.random.default_rng(0).normal(0.0, 1.0, size=(128, spec.obs_dim)).astype(np.float32)
        with torch.no_grad():
            a = agent.actor.deterministic(torch.from_numpy(agent._normalize(obs))).numpy()
            mean, _ = agent.actor(torch.from_numpy(agent._normalize(obs)))
        np.testing.assert_allclose(a, np.tanh(mean.numpy()), rtol=0, atol=1e-6)
        expected = agent.act_offset + agent.act_scale * a  # the trained actor's deterministic action, robot units
        np.testing.assert_allclose((onnx_policy(obs) - expected) / agent.act_scale, 0.0, atol=PARITY_TOL)
    finally:
        agent.close()


def test_td3_and_sac_help_documents_every_hyper_parameter(capsys):
    import dataclasses

    from robotrl.algorithms.registry import get
    from robotrl.config import cli_flag, field_docs

    for algo in ("td3", "sac"):
        _, Config = get(algo).load()
        with pytest.raises(SystemExit):
            main(["train", algo, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        docs = field_docs(Config)
        for f in dataclasses.fields(Config):
            assert docs.get(f.name), f"{algo}: {f.name} has no docstring"
            assert cli_flag(f.name) in text, f"{algo}: {cli_flag(f.name)} missing from --help"


# -------------------------------------------------------------------------------------------------
# Learning


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["td3", "sac"])
def test_learns_pendulum(tmp_path, algo, random_policy_return):
    # Pendulum-v1's per-task defaults (128x128, lr 1e-3, 1,000 random steps); a uniform-random policy scores
    # about -1,200, a swing-up and hold about -150.
    assert random_policy_return(TASK, 10, seed=0) < -900
    run = train(algo, TASK, run_flags={"total_steps": "5000", "seed": "0", "workers": "0"}, out=tmp_path / algo,
                progress=False)
    ev = json.loads((run / "eval.json").read_text())
    assert ev["mean_return"] >= -400, ev
