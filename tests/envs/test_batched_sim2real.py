"""Sim-to-real settings on the worlds of a batched template task (envs/sim2real.py `WorldsSim2Real`).

World i of a batch with sim-to-real settings must give what one env in the sim-to-real wrappers
(``make(task, sim2real=...)``) reset with seed ``seed + i`` gives: observations bit for bit, terminations and
truncations exactly, rewards to rounding (a sum over a row of a [N, k] array), autoresets included, each setting
alone and all together, in one group of worlds or several.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from batching import same_as_singles

from robotrl.envs import make, make_vector
from robotrl.envs.sim2real import RANDOMIZED, DomainRandomization, WorldsSim2Real
from robotrl.envs.templates.legged import SIM2REAL as LEGGED_SIM2REAL
from robotrl.envs.vector import TaskVectorEnv
from robotrl.errors import UserError

ASSETS = Path(__file__).resolve().parents[1] / "assets"
LEGGED = {"quadruped": "robotrl/Quadruped-v0", "critter": f"legged:{ASSETS / 'critter.toml'}"}
ALL = {"randomize_mass": 0.3, "randomize_friction": 0.3, "randomize_damping": 0.3, "randomize_gain": 0.3,
       "base_payload": (-0.1, 0.3), "base_com": 0.03, "latency": (0.0, 0.03), "obs_noise": 0.05, "sensor_noise": 1.0,
       "action_delay": 2}  # a latency of up to 0.03 s: up to 2 control steps late on both robots
SETTINGS = {**{k: {k: v} for k, v in ALL.items()}, "all": ALL, "legged defaults": LEGGED_SIM2REAL}
SHORT = {"episode_s": 1.0, "push_interval_s": 0.5}  # resets (falls and time limits) and pushes within the test


def _dr(env):
    while not isinstance(env, DomainRandomization):
        env = env.env
    return env


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("name", sorted(LEGGED))
def test_each_world_with_sim2real_is_the_wrapped_single_env_seeded_alike(name, setting):
    task, n, s2r = LEGGED[name], 3, SETTINGS[setting]
    vec = make_vector(task, n, s2r, **SHORT)
    assert isinstance(vec, TaskVectorEnv) and isinstance(vec.task, WorldsSim2Real)
    singles = [make(task, sim2real=s2r, **SHORT) for _ in range(n)]
    assert same_as_singles(vec, singles, 120, 10) > n  # autoresets were compared too
    if vec.task.settings.randomizes:  # each world's model is its wrapped env's, drawn alike
        for i, e in enumerate(singles):
            assert vec.task.factors[i].keys() == _dr(e).factors.keys()
            for k in vec.task.factors[i]:
                np.testing.assert_array_equal(vec.task.factors[i][k], _dr(e).factors[k])
            for field in RANDOMIZED:
                np.testing.assert_array_equal(getattr(vec.task.models[i], field), getattr(e.unwrapped.model, field))
    # a reset without seeds goes on with each world's streams, as the wrappers' do
    obs, _ = vec.reset()
    np.testing.assert_array_equal(obs, np.stack([e.reset()[0] for e in singles]))
    vec.close()
    for e in singles:
        e.close()


def test_randomisation_gives_each_world_its_own_model_and_never_compounds():
    vec = make_vector("robotrl/Quadruped-v0", 4, {"randomize_mass": 0.2, "randomize_gain": 0.2})
    s2r = vec.task
    nominal = {f: getattr(s2r.worlds.model, f).copy() for f in RANDOMIZED}
    vec.reset(seed=0)
    models = s2r.models
    assert len({id(m) for m in models}) == 4 and all(m is not s2r.worlds.model for m in models)
    assert len({m.body_mass.tobytes() for m in models}) == 4  # four different draws
    for _ in range(3):
        vec.reset()
        for i, m in enumerate(models):
            nz = nominal["body_mass"] > 0
            ratio = m.body_mass[nz] / nominal["body_mass"][nz]
            assert np.all((ratio >= 0.8 - 1e-12) & (ratio <= 1.2 + 1e-12))
            np.testing.assert_array_equal(m.body_mass, nominal["body_mass"] * s2r.factors[i]["mass"])
            np.testing.assert_array_equal(m.actuator_biasprm[:, 1], nominal["actuator_biasprm"][:, 1]
                                          * s2r.factors[i]["gain"])
            np.testing.assert_array_equal(m.geom_friction, nominal["geom_friction"])  # not asked for
    for f in RANDOMIZED:  # the nominal model is left as built
        np.testing.assert_array_equal(getattr(s2r.worlds.model, f), nominal[f])
    vec.close()


def test_action_delay_applies_the_action_of_k_steps_ago_per_world():
    """World 1 ends its episode in between: its queue starts again with its new episode's first action."""
    vec = make_vector("robotrl/Quadruped-v0", 2, {"action_delay": 2})
    s2r = vec.task
    vec.reset(seed=0)
    applied = []
    s2r.task.apply = lambda a, apply=s2r.task.apply: (applied.append(np.array(a)), apply(a))[1]
    acts = [np.full((2, len(s2r.low)), 0.01 * k) for k in range(6)]
    for k, a in enumerate(acts):
        if k == 3:
            s2r.reset([1])
        s2r.step(a)
    np.testing.assert_array_equal([x[0, 0] for x in applied], [0.0, 0.0, 0.0, 0.01, 0.02, 0.03])
    np.testing.assert_array_equal([x[1, 0] for x in applied], [0.0, 0.0, 0.0, 0.03, 0.03, 0.03])
    vec.close()


def test_observe_adds_the_noise_of_the_last_draw_without_drawing_again():
    vec = make_vector("robotrl/Quadruped-v0", 2, {"obs_noise": 0.05})
    obs, _ = vec.reset(seed=0)
    s2r = vec.task
    clean = s2r.task.observe()
    np.testing.assert_array_equal(s2r.observe(), obs)
    assert 0.02 < np.std(obs - clean) < 0.1
    obs2, *_ = vec.step(np.tile((s2r.low + s2r.high) / 2, (2, 1)))
    np.testing.assert_array_equal(s2r.observe(), obs2)
    assert not np.allclose(obs2 - s2r.task.observe(), obs - clean)  # a new draw at the step
    vec.close()


def test_make_vector_with_sim2real_batches_template_tasks_and_checks_the_settings():
    assert make_vector("Hopper-v5", 2, {"obs_noise": 0.1}) is None  # Gymnasium's tasks keep the wrapped single envs
    vec = make_vector(LEGGED["critter"], 2, {})
    assert isinstance(vec, TaskVectorEnv) and not isinstance(vec.task, WorldsSim2Real)  # nothing on: the task itself
    vec.close()
    with pytest.raises(UserError, match=r"randomize_mass must be in \[0, 1\)"):
        make_vector(LEGGED["critter"], 2, {"randomize_mass": 1.5})


def test_batched_evaluation_with_sim2real_gives_what_one_wrapped_env_per_episode_gives():
    from robotrl.deploy.runtime import OnnxPolicy, resolve
    from robotrl.run.evaluate import evaluate

    policy = OnnxPolicy(resolve("pretrained:quadruped"))
    kwargs = {"episode_s": 2.0, "push_interval_s": 1.0, "sim2real": ALL}
    batched = evaluate(policy, "robotrl/Quadruped-v0", 3, 7, num_envs=2, env_kwargs=kwargs)
    one_by_one = evaluate(policy, "robotrl/Quadruped-v0", 3, 7, num_envs=2, env_kwargs=kwargs, watch=lambda *a: None)
    assert batched["lengths"] == one_by_one["lengths"]
    np.testing.assert_allclose(batched["returns"], one_by_one["returns"], rtol=1e-12)


def test_a_training_run_with_sim2real_steps_the_batched_worlds_and_its_card_records_the_settings():
    from robotrl.run.train import _build, resolve_config

    run_cfg, cfg = resolve_config("ppo", "robotrl/Quadruped-v0",
                                  algo_flags={"num_envs": "4", "rollout_steps": "16", "minibatch_size": "32"},
                                  run_flags={"randomize_mass": "0.2", "obs_noise": "0.01", "action_delay": "1",
                                             "randomize": False})  # none of the legged template's own
    algo, spec = _build("ppo", "robotrl/Quadruped-v0", run_cfg, cfg)
    try:
        assert isinstance(algo.envs, TaskVectorEnv) and isinstance(algo.envs.task, WorldsSim2Real)
        assert algo.envs.task.settings == run_cfg.sim2real()
        assert spec.extras["sim2real"] == {"randomize_mass": 0.2, "randomize_friction": 0.0, "randomize_damping": 0.0,
                                           "randomize_gain": 0.0, "base_payload": (0.0, 0.0), "base_com": 0.0,
                                           "latency": (0.0, 0.0), "obs_noise": 0.01, "sensor_noise": 0.0,
                                           "action_delay": 1}
    finally:
        algo.envs.close()
