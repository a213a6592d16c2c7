"""Observation kinds defined once (robotrl/kinds.py): the spec, the simulation, the card schema and the robot side all
read the one registry, so a new kind is one entry."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

import robotrl.kinds as K
from robotrl.deploy.observation import ObservationBuilder
from robotrl.envs import TASKS, Observer, make
from robotrl.spec import OBS_KINDS, ObsElement


def test_every_kind_a_robot_can_measure_is_used_by_a_task_the_robot_side_test_covers():
    """tests/deploy/test_deploy_core.py rebuilds every task's observation from the simulated robot's messages;
    together the tasks must use every kind that has a robot recipe, so no kind goes unchecked on both sides."""
    used = set()
    for task in TASKS:
        used |= {e.kind for e in make(task).get_wrapper_attr("task_spec").observation}
    measurable = {name for name, k in K.KINDS.items() if k.robot is not None}
    assert measurable - used == set()
    assert set(OBS_KINDS) == set(K.KINDS)
    assert all(k.sim is not None for k in K.KINDS.values() if k.robot is not None)


@pytest.fixture
def joint_speed_squared():
    """A new kind, registered as a user would: one entry. Removed again after the test."""
    entry = K.kind(K.Kind(
        "joint_speed_sq", "velocity of joint `name` squared [rad^2/s^2]", sources=(K.JOINT_VELOCITIES,),
        sim=lambda model, elements: (lambda f: K._joint_columns("qvel", "jnt_dofadr")(model, elements)(f) ** 2),
        robot=lambda f, e: f.dq[f.joint_index[e["name"]]] ** 2))
    yield entry
    del K.KINDS["joint_speed_sq"]


def test_a_new_kind_is_one_entry_read_by_the_spec_the_simulation_and_the_robot_side(joint_speed_squared):
    env = make("robotrl/Hopper-v5")
    env.reset(seed=0)
    for _ in range(5):
        env.step(env.action_space.sample())
    u = env.unwrapped
    elements = [ObsElement("joint_speed_sq", "thigh_joint"), ObsElement("joint_pos", "foot_joint")]
    sim = Observer(u.model, elements)(u.data)
    j = mujoco.mj_name2id(u.model, mujoco.mjtObj.mjOBJ_JOINT, "thigh_joint")
    assert sim[0] == pytest.approx(u.data.qvel[u.model.jnt_dofadr[j]] ** 2)
    builder = ObservationBuilder([{"kind": e.kind, "name": e.name} for e in elements], [])
    assert builder.need_velocity and builder.joints == ["foot_joint", "thigh_joint"]
    names = ["thigh_joint", "foot_joint"]
    ids = [mujoco.mj_name2id(u.model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in names]
    builder.joint_state(names, [u.data.qpos[u.model.jnt_qposadr[i]] for i in ids],
                        [u.data.qvel[u.model.jnt_dofadr[i]] for i in ids], 0.0)
    np.testing.assert_allclose(builder.build(0.0, 1.0), sim, atol=1e-12)


def test_a_kind_registered_twice_is_refused_and_a_kind_without_a_recipe_is_named():
    with pytest.raises(ValueError, match="registered twice"):
        K.kind(K.Kind("joint_pos", "again"))
    with pytest.raises(KeyError, match="kind 'obs' have no simulation recipe"):
        Observer(make("robotrl/Hopper-v5").unwrapped.model, [ObsElement("obs", "obs_0")])


def test_batched_recipes_give_each_world_its_own_values():
    """A kind's simulation recipe runs over [N, ...] arrays: world i's values are those of its own state."""
    env = make("robotrl/Quadruped-v0")
    spec = env.get_wrapper_attr("task_spec")
    compute = K.sim_observer(env.unwrapped.model, spec.observation)
    rng = np.random.default_rng(0)
    n, m = 4, env.unwrapped.model
    qpos = np.tile(m.qpos0, (n, 1)) + rng.normal(0, 0.1, (n, m.nq))
    frame = type("F", (), {})()
    frame.qpos, frame.qvel = qpos, rng.normal(size=(n, m.nv))
    frame.command, frame.prev_action = rng.normal(size=(n, 3)), rng.normal(size=(n, 12))
    frame.action_joints = tuple(env.unwrapped.robot.joints)
    batch = compute(frame)
    d = mujoco.MjData(m)
    for i in range(n):
        d.qpos[:], d.qvel[:] = qpos[i], frame.qvel[i]
        one = Observer(m, spec.observation)(d, prev_action=dict(zip(frame.action_joints, frame.prev_action[i],
                                                                   strict=True)),
                                            command=dict(zip(("x", "y", "yaw"), frame.command[i], strict=True)))
        np.testing.assert_array_equal(batch[i], one)
        g = batch[i][3:6]  # projected gravity is a unit vector
        assert math.isclose(float(np.linalg.norm(g)), 1.0, rel_tol=1e-12)
