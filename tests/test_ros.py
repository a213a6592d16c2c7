"""The policy node over real rclpy and Fast DDS on loopback (a test-specific ROS_DOMAIN_ID).

A test robot node publishes JointState / goal / points the way drivers do (any joint order, extra
joints) and listens to the commands with a RELIABLE and a BEST_EFFORT subscription. Every fault
(stale input, NaN, e-stop, inference error, missing joint) must end in the safe action within one
control period; a clamp must clamp; and the node against the simulated robot must return within
10 % of the in-process evaluation for the shipped walker and arm.
"""

from __future__ import annotations

import os
import random
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) not installed: pip install 'robotrl[ros]' (x86_64)")

from geometry_msgs.msg import PointStamped  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Bool, Float64MultiArray  # noqa: E402

from robotrl.deploy.node import PolicyNode  # noqa: E402
from robotrl.deploy.sim_sources import RobotSensors  # noqa: E402
from robotrl.envs import make  # noqa: E402

os.environ["ROS_DOMAIN_ID"] = str(random.Random(os.getpid()).randint(100, 200))
ARM = "pretrained:arm-reach"
PERIOD = 0.02  # the arm's 50 Hz


class Harness:
    """Both nodes on one executor in their own context; they meet only through DDS."""

    def __init__(self, **params):
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        overrides = [Parameter(k, value=v) for k, v in {"policy": ARM, "ramp_s": 0.0, **params}.items()]
        self.node = PolicyNode(context=self.ctx, parameter_overrides=overrides)
        self.robot = rclpy.create_node("test_robot", context=self.ctx)
        be = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        rel = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_js = self.robot.create_publisher(JointState, "/joint_states", be)
        self.pub_goal = self.robot.create_publisher(PointStamped, "/goal", be)
        self.pub_tip = self.robot.create_publisher(PointStamped, "/points/fingertip", be)
        self.pub_estop = self.robot.create_publisher(Bool, "/estop", rel)
        self.reliable: list[np.ndarray] = []
        self.best_effort: list[np.ndarray] = []
        self.robot.create_subscription(Float64MultiArray, "/policy_controller/commands",
                                       lambda m: self.reliable.append(np.array(m.data)), rel)
        self.robot.create_subscription(Float64MultiArray, "/policy_controller/commands",
                                       lambda m: self.best_effort.append(np.array(m.data)), be)
        self.ex.add_node(self.node)
        self.ex.add_node(self.robot)
        env = make("robotrl/ArmReach-v0")
        env.reset(seed=0)
        self.env = env
        spec = env.get_wrapper_attr("task_spec").to_dict()
        self.sensors = RobotSensors(env.unwrapped.model, spec["observation"])
        self.joints = [a["joint"] for a in spec["action"]]

    def publish(self, *, order=None, extra=False, nan=None, drop=None):
        data = self.env.unwrapped.data
        names, q, dq = self.sensors.joint_state(data)
        q, dq = q.copy(), dq.copy()
        if nan is not None:
            dq[names.index(nan)] = np.nan
        idx = list(range(len(names))) if order is None else list(order)
        if drop is not None:
            idx = [i for i in idx if names[i] != drop]
        js = JointState()
        js.name = [names[i] for i in idx] + (["gripper_left", "gripper_right"] if extra else [])
        js.position = [float(q[i]) for i in idx] + ([0.01, 0.02] if extra else [])
        js.velocity = [float(dq[i]) for i in idx] + ([0.0, 0.0] if extra else [])
        tip = self.sensors.points(data)["fingertip"]
        for pub, xyz in ((self.pub_goal, self.sensors.goal(data)), (self.pub_tip, tip)):
            m = PointStamped()
            m.point.x, m.point.y, m.point.z = (float(v) for v in xyz)
            pub.publish(m)
        self.pub_js.publish(js)

    def spin(self, seconds, publish=True, **kw):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if publish:
                self.publish(**kw)
            self.ex.spin_once(timeout_sec=0.005)

    def start(self):
        assert self.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        self.spin(0.5)
        assert self.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        self.spin(0.3)

    def close(self):
        if self.node._active:
            self.node.trigger_deactivate()
        self.node.destroy_node()
        self.robot.destroy_node()
        self.ex.shutdown()
        rclpy.shutdown(context=self.ctx)
        self.env.close()

    def hold_pose(self):
        names, q, _ = self.sensors.joint_state(self.env.unwrapped.data)
        return np.array([q[names.index(j)] for j in self.joints])


@pytest.fixture
def harness():
    hs: list[Harness] = []

    def make_harness(**params):
        hs.append(Harness(**params))
        return hs[-1]

    yield make_harness
    for h in hs:
        h.close()


def test_both_reliable_and_best_effort_subscribers_receive(harness):
    h = harness()
    h.start()
    assert len(h.reliable) > 5 and len(h.best_effort) > 5
    assert h.node.safety.mode == "run"
    np.testing.assert_allclose(h.reliable[-1], h.best_effort[-1])


def test_joint_order_and_extra_joints_do_not_change_the_command(harness):
    h = harness()
    h.start()
    h.spin(0.2)
    plain = h.node.last_command.copy()
    h.spin(0.2, order=[3, 1, 5, 0, 4, 2], extra=True)
    shuffled = h.node.last_command.copy()
    np.testing.assert_array_equal(plain, shuffled)  # the robot does not move: same state, same command


def _assert_safe_within_one_period(h, **kw):
    hold = h.hold_pose()
    t0 = time.monotonic()
    while h.node.safety.mode != "fault" and time.monotonic() - t0 < 2.0:
        h.spin(0.002, **kw)
    return time.monotonic() - t0, hold


def test_stale_input_gives_the_safe_action_within_one_period_after_the_watchdog(harness):
    h = harness(watchdog_s=0.06)
    h.start()
    hold = h.hold_pose()
    t0 = time.monotonic()
    while h.node.safety.mode != "fault" and time.monotonic() - t0 < 2.0:
        h.spin(0.002, publish=False)
    waited = time.monotonic() - t0
    assert h.node.safety.mode == "fault" and "no recent" in h.node.safety.fault_reason
    assert waited < 0.06 + PERIOD + 0.02, waited
    h.spin(0.1, publish=False)
    np.testing.assert_allclose(h.reliable[-1], hold, atol=1e-9)  # hold: the measured pose, every joint


def test_nan_estop_inference_error_and_missing_joint_end_in_the_safe_action(harness):
    cases = {
        "nan": ({"nan": "elbow_pitch"}, "NaN or Inf"),
        "missing joint": ({"drop": "wrist_pitch"}, "joint wrist_pitch"),
    }
    for name, (kw, needle) in cases.items():
        h = harness(safe_action="hold", watchdog_s=0.06)
        h.start()
        waited, hold = _assert_safe_within_one_period(h, **kw)
        assert h.node.safety.mode == "fault" and needle in h.node.safety.fault_reason, (name, h.node.status())
        limit = PERIOD + 0.02 if name == "nan" else 0.06 + PERIOD + 0.02
        assert waited < limit, (name, waited)
        h.spin(0.05)
        np.testing.assert_allclose(h.reliable[-1], hold, atol=1e-9)

    h = harness(safe_action="zero")
    h.start()
    h.pub_estop.publish(Bool(data=True))
    t0 = time.monotonic()
    while h.node.safety.mode != "fault" and time.monotonic() - t0 < 1.0:
        h.spin(0.002)
    assert h.node.safety.fault_reason == "e-stop" and time.monotonic() - t0 < PERIOD + 0.02
    h.spin(0.05)
    np.testing.assert_array_equal(h.reliable[-1], np.zeros(6))
    h.node.trigger_deactivate()  # while the e-stop is still asserted, activation is refused
    assert h.node.trigger_activate() != TransitionCallbackReturn.SUCCESS
    h.pub_estop.publish(Bool(data=False))
    h.spin(0.1)
    assert h.node.trigger_activate() == TransitionCallbackReturn.SUCCESS

    h = harness()
    h.start()

    def broken(obs):
        raise RuntimeError("simulated onnxruntime failure")

    h.node.policy = broken
    t0 = time.monotonic()
    while h.node.safety.mode != "fault" and time.monotonic() - t0 < 1.0:
        h.spin(0.002)
    assert "inference error" in h.node.safety.fault_reason and time.monotonic() - t0 < PERIOD + 0.02


def test_activation_is_refused_naming_missing_joints(harness):
    h = harness()
    assert h.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    h.spin(0.3, drop="elbow_pitch")
    assert h.node.missing_joints() == ["elbow_pitch"]
    assert h.node.trigger_activate() != TransitionCallbackReturn.SUCCESS
    assert not h.node._active


def test_clamp_really_clamps(harness):
    h = harness(joint_limits='{"shoulder_pitch": [0.0, 0.05], "elbow_pitch": [-0.1, 0.1]}')
    h.start()
    h.spin(0.2)
    i, j = h.joints.index("shoulder_pitch"), h.joints.index("elbow_pitch")
    cmds = np.array(h.reliable[-5:])
    assert np.all(cmds[:, i] <= 0.05 + 1e-12) and np.all(cmds[:, j] <= 0.1 + 1e-12)
    assert h.node.safety.last_clamped[j]  # the home pose needs elbow 1.2 rad: it was clamped


def test_bad_card_refuses_to_configure(harness, tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"not onnx")
    h = harness(policy=str(bad))
    assert h.node.trigger_configure() != TransitionCallbackReturn.SUCCESS


@pytest.mark.parametrize("actor,episodes", [("pretrained:arm-reach", 3), ("pretrained:hopper", 1)])
def test_sim_to_sim_within_ten_percent(actor, episodes):
    from robotrl.deploy.sim2sim import run

    result = run(actor, episodes=episodes, log=lambda *a: None, timeout_s=120)
    assert result["ok"], result
    assert result["ros_mean"] >= result["in_process_mean"] - 0.1 * abs(result["in_process_mean"])
    assert result["node_status"]["mode"] == "run"


def test_deploy_command_in_its_own_process_drives_the_robot_and_holds_on_sigterm(harness):
    """`robotrl deploy` as a robot would run it: a separate process over DDS; SIGTERM sends the safe
    action before it exits."""
    import signal
    import subprocess
    import sys

    h = harness()  # only its robot side is used; its own node stays unconfigured
    proc = subprocess.Popen([sys.executable, "-m", "robotrl.deploy", ARM, "--ros-args", "-p", "ramp_s:=0.0",
                             "-p", "watchdog_s:=1.0", "-r", "__node:=deployed_policy"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()
        while len(h.reliable) < 20 and time.monotonic() - t0 < 30:
            h.spin(0.05)
        assert len(h.reliable) >= 20, "the deployed node sent no commands"
        hold = h.hold_pose()
        n = len(h.reliable)
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        while proc.poll() is None and time.monotonic() - t0 < 10:
            h.spin(0.02)
        h.spin(0.2, publish=False)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    assert len(h.reliable) > n
    np.testing.assert_allclose(h.reliable[-1], hold, atol=1e-9)  # its last word: hold the measured pose
