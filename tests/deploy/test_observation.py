"""The robot side's observation builder on hand-written cards and hand-computed values (no MuJoCo): every
element kind, frames and clips, which sources a card needs, the staleness limits at their boundaries, and
each plausibility check at its boundary, with the reading refused whole and nothing stored."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robotrl.deploy.observation import BadInput, MissingInput, ObservationBuilder, quat_xyzw_to_matrix

S = math.sqrt(0.5)
YAW90 = (0.0, 0.0, S, S)  # x, y, z, w: 90 degrees about z
IDENTITY = (0.0, 0.0, 0.0, 1.0)


def _about(axis: str, angle: float) -> tuple[float, float, float, float]:
    v = {"x": (1, 0, 0), "y": (0, 1, 0), "z": (0, 0, 1)}[axis]
    s = math.sin(angle / 2)
    return (v[0] * s, v[1] * s, v[2] * s, math.cos(angle / 2))


def test_quaternion_to_matrix_by_hand_and_its_norm_check():
    np.testing.assert_allclose(quat_xyzw_to_matrix(IDENTITY), np.eye(3))
    np.testing.assert_allclose(quat_xyzw_to_matrix(YAW90), [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-15)
    np.testing.assert_allclose(quat_xyzw_to_matrix(_about("x", math.pi / 2)), [[1, 0, 0], [0, 0, -1], [0, 1, 0]],
                               atol=1e-15)
    np.testing.assert_allclose(quat_xyzw_to_matrix(_about("y", math.pi / 2)), [[0, 0, 1], [0, 1, 0], [-1, 0, 0]],
                               atol=1e-15)
    # a driver's rounding is normalised away: up to 20 % off unit norm
    np.testing.assert_allclose(quat_xyzw_to_matrix(np.array(YAW90) * 1.2), quat_xyzw_to_matrix(YAW90), atol=1e-15)
    np.testing.assert_allclose(quat_xyzw_to_matrix(np.array(YAW90) * 0.8), quat_xyzw_to_matrix(YAW90), atol=1e-15)
    for bad in (np.array(YAW90) * 1.21, np.array(YAW90) * 0.79, (0.0, 0.0, 0.0, 0.0), (np.nan, 0.0, 0.0, 1.0)):
        with pytest.raises(BadInput, match="base orientation quaternion has norm"):
            quat_xyzw_to_matrix(bad)
    with pytest.raises(BadInput, match=r"^base orientation quaternion has norm 2, not 1 \(x, y, z, w = 0, 0, 0, 2\)$"):
        quat_xyzw_to_matrix((0.0, 0.0, 0.0, 2.0))


def _joints(**kw):
    spec = [{"kind": "joint_pos", "name": "b"}, {"kind": "joint_vel", "name": "b"}, {"kind": "joint_pos", "name": "a"},
            {"kind": "joint_cos", "name": "a"}, {"kind": "joint_sin", "name": "a"},
            {"kind": "joint_pos_rel", "name": "a", "offset": 0.25}]
    return ObservationBuilder(spec, ["a", "b"], **kw)


def test_joint_elements_by_name_in_any_order():
    b = _joints()
    assert b.joints == ["a", "b"] and b.need_velocity and not b.need_base and not b.need_odom
    assert not (b.need_goal or b.points or b.need_prev_action or b.need_command)
    b.joint_state(["b", "x", "a"], [0.5, 9.0, 1.0], [-2.0, 9.0, 3.0], 0.0)
    np.testing.assert_allclose(b.build(0.0, 0.1), [0.5, -2.0, 1.0, math.cos(1.0), math.sin(1.0), 0.75])
    b.joint_state(["a", "b"], [0.2, 0.4], [0.0, 1.0], 0.01)  # another order: the name cache follows
    np.testing.assert_allclose(b.build(0.01, 0.1), [0.4, 1.0, 0.2, math.cos(0.2), math.sin(0.2), -0.05])
    assert b.label(1) == "joint_vel(b)" and b.label(5) == "joint_pos_rel(a)"


def test_joint_state_lengths_must_agree():
    b = _joints()
    with pytest.raises(BadInput, match=r"^JointState has 2 names but 1 positions$"):
        b.joint_state(["a", "b"], [0.0], [0.0, 0.0], 0.0)
    with pytest.raises(BadInput, match=r"^JointState has 2 names but 3 velocities$"):
        b.joint_state(["a", "b"], [0.0, 0.0], [0.0, 0.0, 0.0], 0.0)
    p = ObservationBuilder([{"kind": "joint_pos", "name": "a"}], ["a"])  # no velocity element: none needed
    p.joint_state(["a"], [0.3], [], 0.0)
    assert p.build(0.0, 0.1).tolist() == [0.3]
    assert np.isnan(p.dq).all()  # and none stored


def _refused(b, names, q, dq, stamp, message):
    before = (b.q.copy(), b.dq.copy(), b.q_stamp.copy())
    with pytest.raises(BadInput) as e:
        b.joint_state(names, q, dq, stamp)
    assert str(e.value) == message
    for old, new in zip(before, (b.q, b.dq, b.q_stamp), strict=True):
        np.testing.assert_array_equal(old, new)  # refused whole: nothing stored


def test_non_finite_readings_are_refused_and_named():
    b = _joints()
    _refused(b, ["a", "b"], [np.nan, 0.0], [0.0, 0.0], 0.0, "NaN or Inf in joint a position (nan)")
    _refused(b, ["a", "b"], [0.0, 1e39], [0.0, 0.0], 0.0, "a value beyond 32-bit float range in joint b position "
                                                          "(1e+39)")
    _refused(b, ["a", "b"], [0.0, 0.0], [0.0, -np.inf], 0.0, "NaN or Inf in joint b velocity (-inf)")
    _refused(b, ["a", "b"], [0.0, 0.0], [-1e39, 0.0], 0.0, "a value beyond 32-bit float range in joint a velocity "
                                                           "(-1e+39)")
    _refused(b, ["a", "b"], [np.nan, np.nan], [np.nan, 0.0], 0.0, "NaN or Inf in joint a position (nan) (and 2 more)")
    b.joint_state(["a", "b"], [3.4e38, -3.4e38], [0.0, 0.0], 0.0)  # the largest float32s are fine


def test_positions_outside_the_joint_range_by_more_than_the_margin_are_refused():
    b = _joints(joint_ranges={"a": (-1.0, 1.0)}, range_margin=0.5, max_joint_speed=0.0)
    for q in (1.5, -1.5, 0.0):  # the margin itself is allowed
        b.joint_state(["a", "b"], [q, 100.0], [0.0, 0.0], 0.0)  # b has no range: anything finite
    _refused(b, ["a", "b"], [1.5001, 0.0], [0.0, 0.0], 1.0, "implausible reading: joint a position 1.5001 is outside "
                                                            "its range [-1, 1] by more than 0.5")
    _refused(b, ["a", "b"], [-1.5001, 0.0], [0.0, 0.0], 1.0, "implausible reading: joint a position -1.5001 is "
                                                             "outside its range [-1, 1] by more than 0.5")
    d = _joints(joint_ranges={"a": (-1.0, 1.0)})  # the default margin is 0.5 too
    d.joint_state(["a", "b"], [1.5, 0.0], [0.0, 0.0], 0.0)
    with pytest.raises(BadInput, match=r"by more than 0\.5"):
        d.joint_state(["a", "b"], [-1.51, 0.0], [0.0, 0.0], 1.0)


def test_velocities_and_jumps_faster_than_the_plausible_speed_are_refused():
    b = _joints(max_joint_speed=100.0)
    b.joint_state(["a", "b"], [0.0, 0.0], [100.0, -100.0], 0.0)  # the limit itself is plausible
    _refused(b, ["a", "b"], [0.0, 0.0], [0.0, -100.5], 0.0, "implausible reading: joint b velocity -100.5 exceeds "
                                                            "the plausible speed 100")
    # a position may move vmax x (time since the last good reading), here 100 x 0.1 = 10
    b.joint_state(["a", "b"], [10.0, -10.0], [0.0, 0.0], 0.1)
    _refused(b, ["a", "b"], [20.01, -10.0], [0.0, 0.0], 0.2, "implausible reading: joint a position jumped 10.01 in "
                                                             "0.100 s (faster than the plausible speed 100)")
    _refused(b, ["a", "b"], [10.0, -20.01], [0.0, 0.0], 0.2, "implausible reading: joint b position jumped 10.01 in "
                                                             "0.100 s (faster than the plausible speed 100)")
    np.testing.assert_array_equal(b.q, [10.0, -10.0])  # the last good pose, for a hold
    off = _joints(max_joint_speed=0.0)  # 0: no speed or jump check
    off.joint_state(["a", "b"], [0.0, 0.0], [1e6, 0.0], 0.0)
    off.joint_state(["a", "b"], [1e6, 0.0], [0.0, 0.0], 0.001)


def test_a_jump_is_measured_over_at_least_one_control_period():
    b = _joints(max_joint_speed=10.0, period=0.02)
    b.joint_state(["a", "b"], [0.0, 0.0], [0.0, 0.0], 0.0)
    b.joint_state(["a", "b"], [0.2, 0.0], [0.0, 0.0], 0.001)  # 1 ms later, but up to 10 x 0.02 = 0.2 is allowed
    _refused(b, ["a", "b"], [0.41, 0.0], [0.0, 0.0], 0.002, "implausible reading: joint a position jumped 0.21 in "
                                                            "0.020 s (faster than the plausible speed 10)")
    first = _joints(max_joint_speed=10.0)
    first.joint_state(["a"], [5.0], [0.0], 0.0)  # a first reading is never a jump (nothing to compare), nor b
    first.joint_state(["b"], [5.0], [0.0], 0.0)
    first.joint_state(["a", "b"], [5.0, 5.0], [0.0, 0.0], 0.0)  # same time, no motion: fine


def _base(kinds, **kw):
    spec = [{"kind": k, "name": "root", "axis": axis, **({"frame": f} if f else {})} for k, axis, f in kinds]
    return ObservationBuilder(spec, [], **kw)


def test_odometry_elements_in_world_and_base_frames():
    b = _base([("base_pos", "x", ""), ("base_pos", "z", ""), ("base_quat", "w", ""), ("base_quat", "z", ""),
               ("base_lin_vel", "x", "base"), ("base_lin_vel", "y", "world"), ("base_lin_vel", "x", ""),
               ("base_ang_vel", "x", "base"), ("base_ang_vel", "y", "world"), ("projected_gravity", "z", ""),
               ("projected_gravity", "x", "")])
    assert b.need_base and b.need_odom and not b.use_imu
    b.base_state((1.0, 2.0, 3.0), YAW90, (1.0, 0.0, 0.5), (0.5, 0.0, 2.0), 0.0)
    # yawed 90 degrees: the base's x axis is the world's y
    expected = [1.0, 3.0, S, S, 1.0, 1.0, 0.0, 0.5, 0.5, -1.0, 0.0]
    np.testing.assert_allclose(b.build(0.0, 0.1), expected, atol=1e-12)
    assert b.label(4) == "base_lin_vel(root).x"


@pytest.mark.parametrize("axis", ["x", "y", "z"])
def test_planar_base_angle_about_each_axis(axis):
    b = _base([("base_angle", axis, "")])
    for angle in (0.3, -2.5):
        b.base_state((0.0, 0.0, 0.0), _about(axis, angle), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), 0.0)
        assert b.build(0.0, 0.1)[0] == pytest.approx(angle)


def test_projected_gravity_of_a_tilted_base():
    b = _base([("projected_gravity", "x", ""), ("projected_gravity", "y", ""), ("projected_gravity", "z", "")])
    b.base_state((0.0, 0.0, 0.0), _about("y", math.pi / 2), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), 0.0)
    # pitched 90 degrees nose down about y: gravity (0, 0, -1) seen from the base lies along +x
    np.testing.assert_allclose(b.build(0.0, 0.1), [1.0, 0.0, 0.0], atol=1e-12)
    b.base_state((0.0, 0.0, 0.0), _about("x", math.pi / 2), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), 0.0)
    np.testing.assert_allclose(b.build(0.0, 0.1), [0.0, -1.0, 0.0], atol=1e-12)


def test_an_imu_supplies_orientation_and_angular_velocity_and_odometry_the_rest():
    spec = [("base_ang_vel", "z", "base"), ("base_ang_vel", "x", "world"), ("base_quat", "z", ""),
            ("projected_gravity", "z", "")]
    only_imu = _base(spec, use_imu=True)
    assert only_imu.use_imu and not only_imu.need_odom  # orientation and angular velocity only: no odometry
    only_imu.imu(YAW90, (1.0, 0.0, 3.0), 0.0)
    np.testing.assert_allclose(only_imu.build(0.0, 0.1), [3.0, 0.0, S, -1.0], atol=1e-12)
    both = _base([*spec, ("base_lin_vel", "y", "world")], use_imu=True)
    assert both.use_imu and both.need_odom  # a linear velocity needs odometry
    both.imu(YAW90, (1.0, 0.0, 3.0), 0.0)
    both.base_state((0.0, 0.0, 0.0), IDENTITY, (2.0, 0.0, 0.0), (9.0, 9.0, 9.0), 0.0)
    # the IMU's yaw turns the odometry's base-frame velocity: x in the base is y in the world
    np.testing.assert_allclose(both.build(0.0, 0.1), [3.0, 0.0, S, -1.0, 2.0], atol=1e-12)
    no_imu_kinds = _base([("base_pos", "x", "")], use_imu=True)
    assert not no_imu_kinds.use_imu and no_imu_kinds.need_odom  # nothing an IMU measures: it is not used


@pytest.mark.parametrize("call, message", [
    (lambda b: b.base_state((0.0, 0.0), IDENTITY, (0.0,) * 3, (0.0,) * 3, 0.0), "odometry position has 2 values, "
                                                                                "expected 3"),
    (lambda b: b.base_state((0.0,) * 3, (0.0, 0.0, 1.0), (0.0,) * 3, (0.0,) * 3, 0.0), "odometry orientation has 3 "
                                                                                       "values, expected 4"),
    (lambda b: b.base_state((0.0,) * 3, IDENTITY, (0.0, np.nan, 0.0), (0.0,) * 3, 0.0),
     "NaN, Inf or a value beyond 32-bit float range in odometry linear velocity (0, nan, 0)"),
    (lambda b: b.base_state((0.0,) * 3, IDENTITY, (0.0,) * 3, (1e39, 0.0, 0.0), 0.0),
     "NaN, Inf or a value beyond 32-bit float range in odometry angular velocity (1e+39, 0, 0)"),
    (lambda b: b.imu((0.0, 0.0, 0.0, np.inf), (0.0,) * 3, 0.0), "NaN, Inf or a value beyond 32-bit float range in IMU "
                                                                "orientation (0, 0, 0, inf)"),
    (lambda b: b.imu(IDENTITY, (0.0, 0.0), 0.0), "IMU angular velocity has 2 values, expected 3"),
    (lambda b: b.goal((0.0, 0.0, np.nan), 0.0), "NaN, Inf or a value beyond 32-bit float range in goal (0, 0, nan)"),
    (lambda b: b.point("tip", (0.0, 0.0, 0.0, 0.0), 0.0), "point tip has 4 values, expected 3"),
    (lambda b: b.velocity_command(0.0, np.inf, 0.0, 0.0), "NaN, Inf or a value beyond 32-bit float range in velocity "
                                                          "command (0, inf, 0)"),
])
def test_bad_sources_are_refused_naming_them(call, message):
    b = _base([("base_pos", "x", "")], use_imu=True)
    with pytest.raises(BadInput) as e:
        call(b)
    assert str(e.value) == message
    assert b.base is None and b.imu_q is None and b.goal_xyz is None and not b.point_xyz  # nothing stored
    assert b.base_stamp == b.imu_stamp == b.goal_stamp == -np.inf


def test_goal_points_and_relative_positions():
    spec = [{"kind": "goal", "name": "target", "axis": "x"}, {"kind": "goal", "name": "target", "axis": "z"},
            {"kind": "body_pos", "name": "tip", "axis": "x", "frame": "world"},
            {"kind": "body_pos", "name": "tip", "axis": "y"},
            {"kind": "body_pos", "name": "tip", "axis": "z", "frame": "target"},  # relative to the goal
            {"kind": "body_pos", "name": "tip", "axis": "x", "frame": "palm"},  # relative to another point
            {"kind": "object_pos", "name": "cube", "axis": "y"}]
    b = ObservationBuilder(spec, [])
    assert b.need_goal and b.points == ["cube", "palm", "tip"] and not b.need_base
    b.goal((1.0, 2.0, 3.0), 0.0)
    b.point("tip", (0.5, -0.5, 4.0), 0.0)
    b.point("palm", (0.25, 0.0, 0.0), 0.0)
    b.point("cube", (0.0, 7.0, 0.0), 0.0)
    np.testing.assert_allclose(b.build(0.0, 0.1), [1.0, 3.0, 0.5, -0.5, 1.0, 0.25, 7.0])


def test_previous_action_clips_and_non_finite_elements():
    spec = [{"kind": "prev_action", "name": "b"}, {"kind": "prev_action", "name": "a"},
            {"kind": "joint_pos", "name": "a", "clip": 1.0}]
    b = ObservationBuilder(spec, ["a", "b"])
    assert b.need_prev_action and b.prev_action.tolist() == [0.0, 0.0]  # before the first command: zero
    b.joint_state(["a"], [3.0], [], 0.0)
    b.set_prev_action(np.array([0.5, -0.25]))
    np.testing.assert_allclose(b.build(0.0, 0.1), [-0.25, 0.5, 1.0])
    b.joint_state(["a"], [-3.0], [], 1.0)
    np.testing.assert_allclose(b.build(1.0, 0.1), [-0.25, 0.5, -1.0])
    b.set_prev_action(np.array([np.nan, np.inf]))
    with pytest.raises(BadInput, match=r"^NaN or Inf in prev_action\(b\), prev_action\(a\)$"):
        b.build(1.0, 0.1)
    many = ObservationBuilder([{"kind": "prev_action", "name": f"j{i}"} for i in range(7)], [f"j{i}" for i in range(7)])
    many.set_prev_action(np.full(7, np.nan))
    with pytest.raises(BadInput, match=r"^NaN or Inf in prev_action\(j0\), .*prev_action\(j4\) \.\.\.$"):
        many.build(0.0, 0.1)


def test_an_element_a_robot_cannot_measure_is_refused():
    with pytest.raises(BadInput, match=r"^observation kind 'obs' cannot be measured on a robot$"):
        ObservationBuilder([{"kind": "obs", "name": "obs_0"}], [])  # refused when built, not at the first step


def test_staleness_at_its_boundaries_and_what_each_source_is_called():
    spec = [{"kind": "joint_pos", "name": "a"}, {"kind": "base_pos", "name": "root", "axis": "x"},
            {"kind": "base_quat", "name": "root", "axis": "w"}, {"kind": "goal", "name": "target", "axis": "x"},
            {"kind": "body_pos", "name": "tip", "axis": "x"}]
    b = ObservationBuilder(spec, ["a"], use_imu=True)
    assert b.missing(0.0, 0.1) == ["joint a", "base odometry", "imu", "goal", "point tip"]
    b.joint_state(["a"], [0.0], [], 1.0)
    b.base_state((0.0,) * 3, IDENTITY, (0.0,) * 3, (0.0,) * 3, 1.0)
    b.imu(IDENTITY, (0.0,) * 3, 1.0)
    b.goal((0.0,) * 3, 1.0)
    b.point("tip", (0.0,) * 3, 1.0)
    assert b.missing(1.5, 0.5) == []  # exactly max_age old: still fresh
    assert b.missing(1.5001, 0.5) == ["joint a", "base odometry", "imu", "point tip"]  # a goal once sent stays
    assert b.missing(100.0, 0.1, goal_max_age=99.0) == ["joint a", "base odometry", "imu", "point tip"]
    assert b.missing(100.0, 200.0, goal_max_age=98.0) == ["goal"]
    with pytest.raises(MissingInput, match=r"^no recent goal$"):
        b.build(100.0, 200.0, goal_max_age=98.0)
    with pytest.raises(MissingInput, match=r"^no recent joint a, base odometry, imu, point tip$"):
        b.build(2.0, 0.5)


def test_the_velocity_command_is_clamped_and_goes_stale_to_zero():
    spec = [{"kind": "velocity_command", "name": "cmd", "axis": "x", "range": [-0.5, 1.0]},
            {"kind": "velocity_command", "name": "cmd", "axis": "yaw", "range": [-1.0, 1.0]},
            {"kind": "velocity_command", "name": "cmd", "axis": "y"}]  # no range: not clamped
    b = ObservationBuilder(spec, [])
    assert b.need_command and b.command_ranges == {"x": (-0.5, 1.0), "yaw": (-1.0, 1.0), "y": (-np.inf, np.inf)}
    assert b.current_command(0.0, 0.5) == {"x": 0.0, "y": 0.0, "yaw": 0.0}  # nothing received: stand
    b.velocity_command(2.0, 5.0, -3.0, 1.0)
    assert b.current_command(1.5, 0.5) == {"x": 1.0, "y": 5.0, "yaw": -1.0}  # exactly 0.5 s old: in force
    assert b.current_command(1.5001, 0.5) == {"x": 0.0, "y": 0.0, "yaw": 0.0}
    assert b.current_command(100.0, None) == {"x": 1.0, "y": 5.0, "yaw": -1.0}  # no timeout
    b.velocity_command(-2.0, 0.0, 0.25, 2.0)
    np.testing.assert_allclose(b.build(2.0, 0.1), [-0.5, 0.25, 0.0])
    np.testing.assert_allclose(b.build(2.6, 0.1), [0.0, 0.0, 0.0])  # default command timeout 0.5 s
    np.testing.assert_allclose(b.build(2.6, 0.1, command_max_age=1.0), [-0.5, 0.25, 0.0])


@pytest.mark.parametrize("kind", ["joint_pos", "joint_pos_rel", "joint_vel", "joint_cos", "joint_sin"])
def test_every_joint_kind_alone_needs_that_joints_state(kind):
    b = ObservationBuilder([{"kind": kind, "name": "knee"}], ["knee"])
    assert b.joints == ["knee"] and b.missing(0.0, 0.1) == ["joint knee"]
    b.joint_state(["knee"], [0.5], [2.0], 0.0)
    value = {"joint_pos": 0.5, "joint_pos_rel": 0.5, "joint_vel": 2.0, "joint_cos": math.cos(0.5),
             "joint_sin": math.sin(0.5)}[kind]
    np.testing.assert_allclose(b.build(0.0, 0.1), [value])


@pytest.mark.parametrize("kind, axis, frame, expected", [
    ("base_angle", "z", "", math.pi / 2),  # a planar robot's heading from the IMU's orientation
    ("base_ang_vel", "z", "base", 3.0),
    ("base_quat", "w", "", S),
    ("projected_gravity", "z", "", -1.0),
])
def test_each_kind_an_imu_measures_is_read_from_the_imu_alone(kind, axis, frame, expected):
    b = _base([(kind, axis, frame)], use_imu=True)
    assert b.need_base and b.use_imu and not b.need_odom
    b.imu(YAW90, (1.0, 0.0, 3.0), 0.0)
    np.testing.assert_allclose(b.build(0.0, 0.1), [expected], atol=1e-12)


def test_the_default_joint_speed_limit_is_100_per_second():
    b = ObservationBuilder([{"kind": "joint_vel", "name": "a"}], ["a"])
    b.joint_state(["a"], [0.0], [100.0], 0.0)  # at the limit: accepted
    with pytest.raises(BadInput):
        b.joint_state(["a"], [0.0], [100.5], 0.01)


def test_a_slow_joint_speed_limit_below_one_applies_and_zero_turns_the_check_off():
    b = ObservationBuilder([{"kind": "joint_vel", "name": "a"}, {"kind": "joint_vel", "name": "b"}], ["a", "b"],
                           max_joint_speed=0.5)
    b.joint_state(["a", "b"], [0.0, 0.0], [0.4, 0.0], 0.0)
    with pytest.raises(BadInput, match=r"^implausible reading: joint a velocity 0.6 exceeds the plausible speed 0.5 "
                                       r"\(and 1 more\)$"):  # both joints at once: the first named, the count
        b.joint_state(["a", "b"], [0.0, 0.0], [0.6, -0.7], 0.1)
    off = ObservationBuilder([{"kind": "joint_vel", "name": "a"}], ["a"], max_joint_speed=0.0)
    off.joint_state(["a"], [0.0], [1e6], 0.0)


def test_a_body_position_in_the_world_frame_needs_only_its_own_point():
    for frame in ("", "world"):
        b = ObservationBuilder([{"kind": "body_pos", "name": "tip", "axis": "x", "frame": frame}], [])
        assert b.points == ["tip"]
