"""The safety filter, case by case with hand-computed commands: its settings, bounds from the card and the
joint limits, the soft start, the rate limit, the clamp report and the safe action in every lifecycle order."""

from __future__ import annotations

import numpy as np
import pytest

from robotrl.deploy.safety import MODES, SafetyConfig, SafetyFilter

# a position joint in [-1, 1] and an effort joint in [-10, 10]
ACTION = [{"joint": "a", "kind": "position", "low": -1.0, "high": 1.0},
          {"joint": "b", "kind": "effort", "low": -10.0, "high": 10.0}]


@pytest.mark.parametrize("kwargs, needle", [
    ({"safe_action": "freeze"}, "safe_action must be 'hold' or 'zero', got 'freeze'"),
    ({"ramp_s": -0.1}, "ramp_s must be >= 0, got -0.1"),
    ({"max_rate": 0.0}, "max_rate must be positive, got 0.0"),
    ({"max_rate": -1.0}, "max_rate must be positive, got -1.0"),
])
def test_settings_the_filter_cannot_use_are_refused(kwargs, needle):
    with pytest.raises(ValueError) as e:
        SafetyConfig(**kwargs)
    assert str(e.value) == needle


def test_the_limits_of_each_setting_are_accepted():
    assert SafetyConfig().ramp_s == 1.0 and SafetyConfig().max_rate is None and SafetyConfig().safe_action == "hold"
    SafetyConfig(ramp_s=0.0)  # no soft start
    SafetyConfig(max_rate=1e-6)
    SafetyConfig(safe_action="zero")


def test_joint_limits_tighten_only_position_joints_and_must_name_commanded_joints():
    f = SafetyFilter(ACTION, SafetyConfig(), joint_limits={"a": (-2.0, 0.5), "b": (-1.0, 1.0)})
    np.testing.assert_array_equal(f.low, [-1.0, -10.0])  # the card's -1 is tighter than the limit's -2
    np.testing.assert_array_equal(f.high, [0.5, 10.0])  # an effort joint keeps the card's bounds
    assert f.joints == ["a", "b"] and f.position.tolist() == [True, False]
    g = SafetyFilter(ACTION, SafetyConfig())  # no limits: the card's bounds
    np.testing.assert_array_equal(g.low, [-1.0, -10.0])
    np.testing.assert_array_equal(g.high, [1.0, 10.0])
    with pytest.raises(ValueError, match=r"joint_limits names 'c', which the policy does not command \(it commands "
                                         r"a, b\)"):
        SafetyFilter(ACTION, SafetyConfig(), joint_limits={"c": (0.0, 1.0)})


@pytest.mark.parametrize("limits", [(1.0, 2.0), (1.5, 2.0), (-3.0, -1.0)])
def test_joint_limits_that_leave_no_room_are_refused(limits):
    # [1, 2] meets the card's [-1, 1] in one point only: no room either
    with pytest.raises(ValueError, match="leave no room inside the card's bounds"):
        SafetyFilter(ACTION, SafetyConfig(), joint_limits={"a": limits})


def test_before_activation_and_after_a_fault_filter_refuses():
    f = SafetyFilter(ACTION, SafetyConfig())
    assert f.mode == "inactive" and f.fault_reason == "" and not f.last_clamped.any()
    with pytest.raises(RuntimeError, match="safety filter is inactive: activate"):
        f.filter(np.zeros(2), 0.0, 0.01)
    f.activate(0.0, None)
    f.fault("e-stop", None)
    with pytest.raises(RuntimeError, match="safety filter is fault: activate"):
        f.filter(np.zeros(2), 0.0, 0.01)


def test_clamp_at_the_bounds_is_not_reported_as_a_clamp():
    f = SafetyFilter(ACTION, SafetyConfig(ramp_s=0.0))
    f.activate(0.0, None)
    assert f.mode == "run"  # no soft start
    np.testing.assert_array_equal(f.filter(np.array([1.0, -10.0]), 0.01, 0.01), [1.0, -10.0])
    assert f.last_clamped.tolist() == [False, False]
    np.testing.assert_array_equal(f.filter(np.array([-1.5, 10.5]), 0.02, 0.01), [-1.0, 10.0])
    assert f.last_clamped.tolist() == [True, True]


def test_soft_start_begins_at_the_measured_pose_clamped_to_the_bounds():
    f = SafetyFilter(ACTION, SafetyConfig(ramp_s=2.0))
    f.activate(10.0, np.array([5.0, 7.0]))  # the arm reads beyond its bound; effort starts from 0 regardless
    assert f.mode == "ramp"
    np.testing.assert_allclose(f.filter(np.array([0.0, 4.0]), 10.0, 0.01), [1.0, 0.0])  # alpha 0: the start
    np.testing.assert_allclose(f.filter(np.array([0.0, 4.0]), 10.5, 0.01), [0.75, 1.0])  # alpha 1/4
    assert f.mode == "ramp"
    np.testing.assert_allclose(f.filter(np.array([0.0, 4.0]), 12.0, 0.01), [0.0, 4.0])  # alpha exactly 1
    assert f.mode == "run"
    np.testing.assert_allclose(f.filter(np.array([0.2, -4.0]), 12.01, 0.01), [0.2, -4.0])
    g = SafetyFilter(ACTION, SafetyConfig(ramp_s=1.0))
    g.activate(0.0, None)  # nothing measured: start from zero
    np.testing.assert_allclose(g.filter(np.array([0.8, 8.0]), 0.5, 0.01), [0.4, 4.0])


def test_rate_limit_in_both_directions_from_the_start_pose():
    f = SafetyFilter(ACTION, SafetyConfig(ramp_s=0.0, max_rate=10.0))
    f.activate(0.0, np.array([0.5, 0.0]))
    np.testing.assert_allclose(f.filter(np.array([-1.0, 5.0]), 0.01, 0.02), [0.3, 0.2])  # 10/s x 0.02 s
    np.testing.assert_allclose(f.filter(np.array([-1.0, -5.0]), 0.02, 0.01), [0.2, 0.1])
    np.testing.assert_allclose(f.filter(np.array([0.3, 0.2]), 0.03, 0.01), [0.3, 0.2])  # exactly one step: as is
    assert f.last_clamped.tolist() == [False, False]  # the rate limit is not the clamp


def test_safe_action_hold_and_zero():
    f = SafetyFilter(ACTION, SafetyConfig(ramp_s=0.0))
    f.activate(0.0, None)
    f.filter(np.array([0.9, 9.0]), 0.01, 0.01)
    # the measured pose where it is finite (and clamped to the bounds), else the last command; effort 0
    np.testing.assert_array_equal(f.fault("stale", np.array([4.0, 3.0])), [1.0, 0.0])
    assert f.mode == "fault" and f.fault_reason == "stale"
    np.testing.assert_array_equal(f.safe_action(None), [1.0, 0.0])
    np.testing.assert_array_equal(f.fault("e-stop", np.array([0.0, 0.0])), [1.0, 0.0])  # the first hold stays
    assert f.fault_reason == "e-stop"  # the latest reason is reported
    g = SafetyFilter(ACTION, SafetyConfig(ramp_s=0.0))
    g.activate(0.0, None)
    g.filter(np.array([0.9, 9.0]), 0.01, 0.01)
    np.testing.assert_array_equal(g.fault("stale", np.array([np.nan, 3.0])), [0.9, 0.0])  # NaN: last command
    np.testing.assert_array_equal(g.fault("stale", None), [0.9, 0.0])
    h = SafetyFilter(ACTION, SafetyConfig(ramp_s=0.0))
    np.testing.assert_array_equal(h.fault("never activated", None), [0.0, 0.0])  # nothing known: zero
    z = SafetyFilter(ACTION, SafetyConfig(ramp_s=0.0, safe_action="zero"))
    z.activate(0.0, None)
    z.filter(np.array([0.9, 9.0]), 0.01, 0.01)
    np.testing.assert_array_equal(z.fault("stale", np.array([0.5, 3.0])), [0.0, 0.0])


def test_deactivation_holds_and_a_later_fault_holds_the_safe_action_not_the_policy_command():
    f = SafetyFilter(ACTION, SafetyConfig(ramp_s=0.0))
    f.activate(0.0, None)
    f.filter(np.array([0.9, 9.0]), 0.01, 0.01)
    np.testing.assert_array_equal(f.deactivate(np.array([0.3, 1.0])), [0.3, 0.0])
    assert f.mode == "inactive" and f.fault_reason == "deactivated"
    np.testing.assert_array_equal(f.fault("stale", None), [0.3, 0.0])  # the last command sent was the hold
    f.activate(1.0, np.array([0.1, 0.0]))  # activation clears the fault and starts from the new pose
    assert f.mode == "run" and f.fault_reason == ""
    np.testing.assert_array_equal(f.fault("stale", None), [0.1, 0.0])


def test_every_mode_the_filter_enters_is_one_it_reports():
    f = SafetyFilter(ACTION, SafetyConfig(ramp_s=1.0))
    seen = [f.mode]
    f.activate(0.0, None)
    seen.append(f.mode)
    f.filter(np.zeros(2), 1.0, 0.01)
    seen.append(f.mode)
    f.fault("x", None)
    seen.append(f.mode)
    assert seen == ["inactive", "ramp", "run", "fault"] and tuple(seen) == MODES


def test_a_late_tick_after_the_soft_start_sends_the_command_itself_not_beyond_it():
    # A control tick that comes after the ramp time (a scheduling hiccup) must not extrapolate the ramp: the
    # command is sent as it is, inside the bounds, and the ramp is over.
    f = SafetyFilter(ACTION, SafetyConfig(ramp_s=1.0))
    f.activate(0.0, np.array([-0.5, 0.0]))
    np.testing.assert_allclose(f.filter(np.array([0.8, 9.0]), 0.5, 0.02), [0.15, 4.5])  # half way
    out = f.filter(np.array([0.9, 10.0]), 1.5, 0.02)
    np.testing.assert_array_equal(out, [0.9, 10.0])
    assert f.mode == "run" and np.all(out <= f.high)
