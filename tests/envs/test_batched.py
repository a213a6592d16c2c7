"""Batched template tasks: N worlds in one process (envs/worlds.py, envs/vector.py, envs/legged.py).

Real MuJoCo throughout. A world of a batch must give what a single world seeded alike gives: the observation bit for
bit, terminations and truncations exactly, rewards to rounding (a sum over a row of a [N, k] array may be added in
another order for another N); and the single-world view is what evaluation, videos and the simulated robot use.
"""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np
import pytest
from batching import same_as_singles

from robotrl.envs import make, make_vector
from robotrl.envs.legged import TERMS, LeggedVelocityTask
from robotrl.envs.vector import TaskVectorEnv
from robotrl.envs.worlds import Worlds

ASSETS = Path(__file__).resolve().parents[1] / "assets"
LEGGED = {"quadruped": "robotrl/Quadruped-v0", "critter": f"legged:{ASSETS / 'critter.toml'}"}


@pytest.mark.parametrize("name", sorted(LEGGED))
def test_each_world_of_a_batch_is_the_single_world_seeded_alike(name):
    task, n = LEGGED[name], 5
    vec = make_vector(task, n, episode_s=2.0, push_interval_s=0.5)  # short: resets and pushes within the test
    assert isinstance(vec, TaskVectorEnv)
    singles = [make(task, episode_s=2.0, push_interval_s=0.5) for _ in range(n)]
    ends = same_as_singles(vec, singles, 500, 10)
    assert ends > 0  # random actions make the robots fall: resets were compared too
    vec.close()


def test_a_world_steps_alike_in_any_batch_and_any_number_of_threads():
    model = make("robotrl/Quadruped-v0").unwrapped.model
    data = mujoco.MjData(model)
    state = np.zeros(mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_FULLPHYSICS))
    mujoco.mj_getState(model, data, state, mujoco.mjtState.mjSTATE_FULLPHYSICS)
    one, four = Worlds(model, 1, threads=0), Worlds(model, 4, threads=2)
    np.testing.assert_array_equal(one.state[0], state)
    np.testing.assert_array_equal(one.qpos[0], model.qpos0)  # qpos is where MuJoCo's state layout has it
    rng = np.random.default_rng(1)
    four.qpos[:, 2] += rng.uniform(0, 0.3, 4)
    one.state[0] = four.state[2]
    for _ in range(20):
        ctrl = rng.uniform(-1, 1, (4, model.nu))
        four.step(ctrl, 4)
        one.step(ctrl[2:3], 4)
        np.testing.assert_array_equal(one.state[0], four.state[2])
        np.testing.assert_array_equal(one.sensordata[0], four.sensordata[2])
    # the same four steps with mj_step from the same state: the physics is MuJoCo's (a cold solver start per call
    # is the one difference, so positions agree closely, not bitwise)
    mujoco.mj_setState(model, data, four.state[0], mujoco.mjtState.mjSTATE_FULLPHYSICS)
    data.ctrl[:] = 0.3
    four.step(np.full((4, model.nu), 0.3), 4)
    mujoco.mj_step(model, data, 4)
    np.testing.assert_allclose(data.qpos, four.qpos[0], atol=1e-6)
    one.close()
    four.close()


def test_contact_and_force_sensors_say_what_mujoco_contacts_say():
    """The template reads foot contacts, the base touching the ground and servo torques from sensors it adds;
    they must agree with MjData after mj_step (contacts found at the start of the last physics step)."""
    env = make("robotrl/Quadruped-v0")
    u = env.unwrapped
    t = u.task
    m = t.model
    d = mujoco.MjData(m)
    feet = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, f) for f in u.robot.config.feet]
    rng = np.random.default_rng(0)
    d.qpos[:] = t._rest_qpos
    seen = {"foot": 0, "hit": 0}
    for k in range(1500):
        if k % 250 == 0:  # drop it tumbling from a random orientation
            d.qpos[t._qb + 2] = 0.5
            d.qpos[t._qb + 3:t._qb + 7] = rng.normal(size=4)
        d.ctrl[:] = rng.uniform(-1.5, 1.5, m.nu)
        mujoco.mj_step(m, d, 2)
        bodies = m.geom_bodyid[d.contact.geom[:d.ncon]] if d.ncon else np.zeros((0, 2), int)
        down = [bool(np.any(bodies == b)) for b in feet]
        hit = bool(np.any((bodies[:, 0] == t.base_body) & (bodies[:, 1] == 0)
                          | (bodies[:, 1] == t.base_body) & (bodies[:, 0] == 0)))
        assert list(d.sensordata[t._feet_cols] > 0) == down
        assert bool(np.any(d.sensordata[t._hit_cols] > 0)) == hit
        np.testing.assert_allclose(d.sensordata[t._torque_cols], d.actuator_force[t._act], atol=1e-9)
        seen["foot"] += sum(down)
        seen["hit"] += hit
    assert seen["foot"] > 100 and seen["hit"] > 100


def test_reward_terms_are_registered_and_weights_are_checked_against_the_registry():
    assert list(TERMS.defaults())[:2] == ["track_lin", "track_yaw"]
    assert all(t.doc for t in TERMS)
    with pytest.raises(ValueError, match=r"unknown reward terms \['track_lni'\]; known: track_lin, track_yaw"):
        LeggedVelocityTask(make("robotrl/Quadruped-v0").unwrapped.robot, reward_weights={"track_lni": 1.0})
    env = make("robotrl/Quadruped-v0")
    env.reset(seed=0)
    _, r, _, _, info = env.step(env.unwrapped.robot.default)
    assert set(info["reward_terms"]) == set(TERMS.defaults())
    assert r == pytest.approx(max(0.0, sum(info["reward_terms"].values())), abs=1e-12)


def test_make_vector_batches_template_tasks_only():
    assert make_vector("Hopper-v5", 2) is None  # Gymnasium's tasks keep the sharded vector env
    assert make_vector("Hopper-v5", 2, {"randomize_mass": 0.1}) is None  # with sim-to-real settings too
    vec = make_vector(f"legged:{ASSETS / 'critter.toml'}", 3)
    assert vec.num_envs == 3 and vec.observation_space.shape[0] == 3
    vec.close()


def test_a_world_whose_simulation_diverges_is_named_and_the_others_go_on():
    model = make("robotrl/Quadruped-v0").unwrapped.model
    worlds = Worlds(model, 3, threads=0)
    worlds.step(np.zeros((3, model.nu)), 4)
    assert not worlds.diverged.any()
    worlds.qvel[1, 6:] = 1e12  # joint speeds no physics survives: MuJoCo resets world 1
    before = worlds.state[[0, 2]].copy()
    worlds.step(np.zeros((3, model.nu)), 4)
    assert worlds.diverged.tolist() == [False, True, False]
    assert worlds.state[0, 0] == pytest.approx(before[0, 0] + 4 * model.opt.timestep)


def test_evaluation_on_worlds_gives_what_one_env_per_episode_gives():
    """`robotrl.run.evaluate.evaluate` plays a template task's episodes on the worlds of one batch; with a `watch` (as
    videos film) it steps one env per episode slot. Same seeds, same episodes, same returns and lengths."""
    from robotrl.deploy.runtime import OnnxPolicy, resolve
    from robotrl.run.evaluate import evaluate

    policy = OnnxPolicy(resolve("pretrained:quadruped"))
    kwargs = {"episode_s": 3.0, "push_interval_s": 1.0}
    batched = evaluate(policy, "robotrl/Quadruped-v0", 5, 7, num_envs=2, env_kwargs=kwargs)
    one_by_one = evaluate(policy, "robotrl/Quadruped-v0", 5, 7, num_envs=2, env_kwargs=kwargs,
                          watch=lambda *a: None)
    assert batched["lengths"] == one_by_one["lengths"] == [150] * 5
    np.testing.assert_allclose(batched["returns"], one_by_one["returns"], rtol=1e-12)
    assert len(set(np.round(batched["returns"], 6))) == 5  # five different episodes (seeds 7..11)

