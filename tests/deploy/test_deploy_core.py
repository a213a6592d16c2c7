"""The robot-side core without ROS: the observation assembled from robot-convention sources (JointState
by name, odometry with an x-y-z-w quaternion and a base-frame twist, goal and points) equals the
observation the policy was trained on; missing and bad input are named; the safety filter clamps,
ramps, rate-limits and falls back to its safe action."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robotrl.deploy.observation import BadInput, MissingInput, ObservationBuilder
from robotrl.deploy.safety import SafetyConfig, SafetyFilter
from robotrl.envs import TASKS, make
from robotrl.simrobot.sensors import RobotSensors


def _feed(builder, sensors, data, t, rng=None, extra=True, env=None):
    names, q, dq = sensors.joint_state(data)
    if rng is not None:  # the wire order is not ours, and drivers publish joints we do not use
        order = rng.permutation(len(names))
        names, q, dq = [names[i] for i in order], q[order], dq[order]
        if extra:
            names, q, dq = [*names, "gripper_finger"], np.r_[q, 0.3], np.r_[dq, -0.1]
    builder.joint_state(names, q, dq, t)
    if sensors.has_base:
        builder.base_state(*sensors.odometry(data), t)
        if builder.use_imu:
            builder.imu(*sensors.imu(data), t)
    u = env.unwrapped if env is not None else None
    if builder.need_command:  # what the operator says on /cmd_vel, and what the node sent last
        builder.velocity_command(*u.command, t)
    if builder.need_prev_action:
        builder.set_prev_action(u.prev_action)
    goal = sensors.goal(data)
    if goal is not None:
        builder.goal(goal, t)
    for n, p in sensors.points(data).items():
        builder.point(n, p, t)


@pytest.mark.parametrize("task,imu", [(t, False) for t in sorted(TASKS)] + [("robotrl/Quadruped-v0", True)])
def test_robot_sources_reassemble_the_training_observation(task, imu):
    env = make(task)
    spec = env.get_wrapper_attr("task_spec").to_dict()
    sensors = RobotSensors(env.unwrapped.model, spec["observation"])
    builder = ObservationBuilder(spec["observation"], [a["joint"] for a in spec["action"]], use_imu=imu)
    assert builder.use_imu == imu and builder.need_odom == (sensors.has_base and not imu)
    angle = [i for i, e in enumerate(spec["observation"]) if e["kind"] == "base_angle"]
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=5)
    env.action_space.seed(5)
    for t in range(120):
        _feed(builder, sensors, env.unwrapped.data, float(t), rng, env=env)
        got = builder.build(float(t), max_age=0.5)
        diff = got - obs
        diff[angle] = (diff[angle] + math.pi) % (2 * math.pi) - math.pi  # an angle is an angle modulo 2 pi
        assert np.abs(diff).max() < 1e-9, (task, t, builder.label(int(np.abs(diff).argmax())))
        obs, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            obs, _ = env.reset()
    env.close()


def _arm_builder():
    env = make("robotrl/ArmReach-v0")
    spec = env.get_wrapper_attr("task_spec").to_dict()
    env.reset(seed=0)
    sensors = RobotSensors(env.unwrapped.model, spec["observation"])
    return env, spec, sensors, ObservationBuilder(spec["observation"], [a["joint"] for a in spec["action"]])


def test_shuffled_order_and_extra_joints_give_the_same_observation():
    env, _, sensors, b1 = _arm_builder()
    _, _, _, b2 = _arm_builder()
    _feed(b1, sensors, env.unwrapped.data, 0.0)
    _feed(b2, sensors, env.unwrapped.data, 0.0, np.random.default_rng(3))
    np.testing.assert_array_equal(b1.build(0.0, 0.1), b2.build(0.0, 0.1))


def test_missing_stale_and_bad_input_are_named():
    env, _, sensors, b = _arm_builder()
    with pytest.raises(MissingInput, match=r"joint elbow_pitch.*goal.*point fingertip"):
        b.build(0.0, 0.1)
    names, q, dq = sensors.joint_state(env.unwrapped.data)
    keep = [i for i, n in enumerate(names) if n != "wrist_pitch"]
    b.joint_state([names[i] for i in keep], q[keep], dq[keep], 0.0)  # a driver that lacks one joint
    b.goal(sensors.goal(env.unwrapped.data), 0.0)
    b.point("fingertip", sensors.points(env.unwrapped.data)["fingertip"], 0.0)
    with pytest.raises(MissingInput, match=r"^no recent joint wrist_pitch$"):
        b.build(0.0, 0.1)
    b.joint_state(names, q, dq, 0.0)
    b.build(0.05, 0.1)
    with pytest.raises(MissingInput, match="joint shoulder_yaw"):  # everything went stale
        b.build(0.5, 0.1)
    dq = dq.copy()
    dq[names.index("elbow_pitch")] = np.nan  # some drivers send NaN velocities
    before = b.dq.copy()
    with pytest.raises(BadInput, match=r"NaN or Inf in joint elbow_pitch velocity"):
        b.joint_state(names, q, dq, 1.0)  # refused on arrival, nothing stored
    np.testing.assert_array_equal(b.dq, before)
    b.goal(sensors.goal(env.unwrapped.data), 1.0)
    b.point("fingertip", sensors.points(env.unwrapped.data)["fingertip"], 1.0)
    with pytest.raises(MissingInput, match="joint shoulder_yaw"):  # the refused message refreshed nothing
        b.build(1.0, 0.1)
    with pytest.raises(BadInput, match="6 names but 5 positions"):
        b.joint_state(names, q[:5], dq, 1.0)


ACTION = [{"joint": "a", "kind": "position", "low": -1.0, "high": 1.0},
          {"joint": "b", "kind": "effort", "low": -10.0, "high": 10.0}]


def test_clamp_really_clamps_and_joint_limits_tighten_bounds():
    f = SafetyFilter(ACTION, SafetyConfig(ramp_s=0.0), joint_limits={"a": (-0.5, 0.8)})
    f.activate(0.0, np.array([0.0, 0.0]))
    out = f.filter(np.array([5.0, -50.0]), 0.01, 0.01)
    np.testing.assert_array_equal(out, [0.8, -10.0])
    assert f.last_clamped.tolist() == [True, True]
    out = f.filter(np.array([0.1, 3.0]), 0.02, 0.01)
    np.testing.assert_array_equal(out, [0.1, 3.0])
    assert not f.last_clamped.any()


def test_soft_start_blends_from_measured_pose_and_rate_limit_holds():
    f = SafetyFilter(ACTION, SafetyConfig(ramp_s=1.0))
    f.activate(10.0, np.array([0.4, 123.0]))  # effort joints start from 0, whatever is measured
    out = f.filter(np.array([-0.6, 8.0]), 10.5, 0.01)
    np.testing.assert_allclose(out, [0.5 * 0.4 + 0.5 * -0.6, 4.0])
    assert f.mode == "ramp"
    out = f.filter(np.array([-0.6, 8.0]), 11.0, 0.01)
    np.testing.assert_allclose(out, [-0.6, 8.0])
    assert f.mode == "run"
    g = SafetyFilter(ACTION, SafetyConfig(ramp_s=0.0, max_rate=2.0))
    g.activate(0.0, np.array([0.0, 0.0]))
    np.testing.assert_allclose(g.filter(np.array([1.0, 10.0]), 0.01, 0.01), [0.02, 0.02])
    np.testing.assert_allclose(g.filter(np.array([1.0, 10.0]), 0.02, 0.01), [0.04, 0.04])


@pytest.mark.parametrize("mode,expected", [("hold", [0.3, 0.0]), ("zero", [0.0, 0.0])])
def test_fault_gives_the_safe_action(mode, expected):
    f = SafetyFilter(ACTION, SafetyConfig(ramp_s=0.0, safe_action=mode))
    f.activate(0.0, np.array([0.0, 0.0]))
    f.filter(np.array([0.9, 9.0]), 0.01, 0.01)
    out = f.fault("stale joint states", np.array([0.3, np.nan]))
    np.testing.assert_array_equal(out, expected)
    assert f.mode == "fault" and f.fault_reason == "stale joint states"
    np.testing.assert_array_equal(f.fault("still stale", np.array([0.7, 0.0])), expected)  # holds the first pose
    with pytest.raises(RuntimeError, match="activate"):
        f.filter(np.array([0.0, 0.0]), 0.02, 0.01)
    with pytest.raises(ValueError, match="safe_action"):
        SafetyConfig(safe_action="freeze")


def test_imu_supplies_orientation_and_angular_velocity():
    """Ant with an IMU: orientation and body angular velocity from the IMU, position and linear velocity
    from odometry (whose orientation is deliberately wrong here, so using it would show)."""
    env = make("robotrl/Ant-v5")
    spec = env.get_wrapper_attr("task_spec").to_dict()
    sensors = RobotSensors(env.unwrapped.model, spec["observation"])
    b = ObservationBuilder(spec["observation"], [a["joint"] for a in spec["action"]], use_imu=True)
    assert b.need_odom and b.use_imu
    obs, _ = env.reset(seed=2)
    for _ in range(30):
        obs, *_ = env.step(env.action_space.sample())
    data = env.unwrapped.data
    names, q, dq = sensors.joint_state(data)
    pos, quat, v_base, w_base = sensors.odometry(data)
    b.joint_state(names, q, dq, 0.0)
    b.imu(quat, w_base, 0.0)
    b.base_state(pos, (0.0, 0.0, 0.0, 1.0), v_base, (9.0, 9.0, 9.0), 0.0)
    wrong = _built_without_imu(spec, names, q, dq, pos, v_base)
    assert np.abs(wrong - obs).max() > 1e-3  # the odometry's orientation is wrong: not what the IMU path uses
    _assert_close(b.build(0.0, 0.1), obs)
    b.imu_stamp = -np.inf  # the IMU goes quiet
    with pytest.raises(MissingInput, match="imu"):
        b.build(0.0, 0.1)


def _built_without_imu(spec, names, q, dq, pos, v_base):
    b = ObservationBuilder(spec["observation"], [a["joint"] for a in spec["action"]])
    b.joint_state(names, q, dq, 0.0)
    b.base_state(pos, (0.0, 0.0, 0.0, 1.0), v_base, (9.0, 9.0, 9.0), 0.0)
    return b.build(0.0, 0.1)


def _assert_close(a, b):
    assert np.abs(np.asarray(a) - np.asarray(b)).max() < 1e-9


def test_the_velocity_command_is_clamped_to_the_trained_range_and_falls_back_to_zero():
    env = make("robotrl/Quadruped-v0")
    env.reset(seed=0)
    spec = env.get_wrapper_attr("task_spec").to_dict()
    sensors = RobotSensors(env.unwrapped.model, spec["observation"])
    b = ObservationBuilder(spec["observation"], [a["joint"] for a in spec["action"]], use_imu=True)
    idx = {e["axis"]: i for i, e in enumerate(spec["observation"]) if e["kind"] == "velocity_command"}
    ranges = {e["axis"]: e["range"] for e in spec["observation"] if e["kind"] == "velocity_command"}
    _feed(b, sensors, env.unwrapped.data, 0.0, env=env)
    b.cmd_stamp = -np.inf  # nothing on /cmd_vel yet: stand
    got = b.build(0.0, 0.1, command_max_age=0.5)
    assert [got[idx[a]] for a in ("x", "y", "yaw")] == [0.0, 0.0, 0.0]
    b.velocity_command(5.0, -5.0, 0.3, 0.0)  # beyond the trained range: clamped to it
    got = b.build(0.2, 0.5, command_max_age=0.5)
    assert [got[idx[a]] for a in ("x", "y", "yaw")] == [ranges["x"][1], ranges["y"][0], 0.3]
    with pytest.raises(BadInput, match="velocity command"):
        b.velocity_command(float("nan"), 0.0, 0.0, 0.3)  # refused; the last good one stays
    assert b.build(0.4, 0.5, command_max_age=0.5)[idx["yaw"]] == 0.3
    got = b.build(0.6, 0.7, command_max_age=0.5)  # 0.6 s old: stale -> zero, not a fault
    assert [got[idx[a]] for a in ("x", "y", "yaw")] == [0.0, 0.0, 0.0]
    assert b.build(0.6, 0.7, command_max_age=None)[idx["yaw"]] == 0.3  # timeout 0: never stale
