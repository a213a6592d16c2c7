"""Black-box tests of the robotrl policy node, from outside, over DDS only.

Written against README.md ("On the robot"), deploy/config/policy.yaml, deploy/launch/policy.launch.py and
the CLI's help / `robotrl card pretrained:arm-reach`. The node runs in a separate process; this process
talks to it with rclpy only and keeps its own clock (time.monotonic) for every timing.

Run:  .venv/bin/python -m pytest -q bench/outside/test_node_outside.py
Not part of the CI suite.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

# A random domain before anything touches DDS, so that parallel runs do not collide.
os.environ["ROS_DOMAIN_ID"] = str(random.randint(100, 200))

import contextlib
import itertools

import pytest
import rclpy
from geometry_msgs.msg import PointStamped
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
ENV = dict(os.environ)

# The card of pretrained:arm-reach (robotrl card pretrained:arm-reach): action order and joint ranges.
JOINTS = ["shoulder_yaw", "shoulder_pitch", "elbow_pitch", "wrist_roll1", "wrist_pitch", "wrist_roll2"]
RANGES = {"shoulder_yaw": (-2.9, 2.9), "shoulder_pitch": (-1.9, 1.9), "elbow_pitch": (-2.4, 2.4),
          "wrist_roll1": (-2.9, 2.9), "wrist_pitch": (-2.0, 2.0), "wrist_roll2": (-2.9, 2.9)}
POSE = [0.0, 0.3, 1.2, 0.0, 0.8, 0.0]          # a static pose inside the card's ranges
GOAL = (0.25, 0.15, 0.35)
TIP = (0.30, 0.00, 0.40)
CONTROL_PERIOD = 0.02
STATUS_PERIOD = 0.1                             # status_rate_hz default 10
SIGNAL_EXIT_S = 1.0                             # README promises ~0.2 s; we allow 1 s
SLACK = 0.05                                    # scheduling slack on a loaded 2-core machine

LATENCIES: dict[str, list[float]] = {}


def record_latency(key, value):
    LATENCIES.setdefault(key, []).append(value)


# ----------------------------------------------------------------------------------------------------------
# the test side of DDS
# ----------------------------------------------------------------------------------------------------------

class Ros:
    def __init__(self):
        rclpy.init()
        self.executor = SingleThreadedExecutor()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self._stop = False
        self.thread.start()

    def _spin(self):
        while not self._stop and rclpy.ok():
            with contextlib.suppress(Exception):
                self.executor.spin_once(timeout_sec=0.02)

    def close(self):
        self._stop = True
        self.thread.join(2)
        rclpy.shutdown()


RELIABLE = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)


def close(a, b, tol=1e-6):
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b, strict=False))


class Probe:
    """One policy node process plus everything the test publishes to it / hears from it."""

    def __init__(self, ros: Ros, tag: str, params=(), *, node_args=None, autostart_cmd=True,
                 topics=True, policy="pretrained:arm-reach", extra_ros_args=(), name=None, remap=True):
        self.ros = ros
        self.name = name or f"ot_{tag}_{random.randint(0, 10**6)}"
        ns = f"/{self.name}"
        if topics:
            self.t_js, self.t_goal, self.t_pts = f"{ns}/joint_states", f"{ns}/goal", f"{ns}/points/"
            self.t_estop, self.t_cmd = f"{ns}/estop", f"{ns}/commands"
            topic_params = [f"joint_states_topic:={self.t_js}", f"goal_topic:={self.t_goal}",
                            f"points_prefix:={self.t_pts}", f"estop_topic:={self.t_estop}",
                            f"command_topic:={self.t_cmd}"]
        else:  # the documented defaults
            self.t_js, self.t_goal, self.t_pts = "/joint_states", "/goal", "/points/"
            self.t_estop, self.t_cmd = "/estop", "/policy_controller/commands"
            topic_params = []
        self.node = rclpy.create_node(self.name + "_tester")
        n = self.node
        self.lock = threading.Lock()
        self.status: list[tuple[float, dict]] = []
        self.cmds: list[tuple[float, list[float]]] = []
        self.stamped: list[tuple[float, JointState]] = []
        self.js_sent: list[tuple[float, tuple[int, int]]] = []
        self.tip_sent: list[float] = []
        n.create_subscription(String, f"{ns}/status", self._on_status, RELIABLE)
        n.create_subscription(Float64MultiArray, self.t_cmd, self._on_cmd, RELIABLE)
        n.create_subscription(JointState, f"{ns}/command_stamped", self._on_stamped, RELIABLE)
        self.pub_js = n.create_publisher(JointState, self.t_js, 50)
        self.pub_goal = n.create_publisher(PointStamped, self.t_goal, RELIABLE)
        self.pub_tip = n.create_publisher(PointStamped, self.t_pts + "fingertip", 50)
        self.pub_estop = n.create_publisher(Bool, self.t_estop, RELIABLE)
        ros.executor.add_node(n)

        # feeder state
        self.names = list(JOINTS)
        self.pos = list(POSE)
        self.vel = [0.0] * 6
        self.feed_js = False
        self.feed_tip = False
        self.feed_goal = False      # periodic goal
        self.feed_hz = 100.0
        self._feeding = True
        self._feeder = threading.Thread(target=self._feed, daemon=True)
        self._feeder.start()

        args = ["--ros-args"] + (["-r", f"__node:={self.name}"] if remap else [])
        for p in topic_params + list(params):
            args += ["-p", p]
        args += list(extra_ros_args)
        if node_args is not None:
            cmd = node_args + args
        elif autostart_cmd:
            cmd = [str(REPO / ".venv/bin/robotrl"), "deploy", policy, *args]
        else:  # the node without autostart
            cmd = [PY, "-c", "import sys; from robotrl.deploy.node import main; sys.exit(main())", *args]
        self.cmd = cmd
        self.log_path = Path(f"/tmp/{self.name}.log")
        self.log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop())
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO, env=ENV)

    # ---- callbacks (own clock)
    def _on_status(self, msg):
        t = time.monotonic()
        try:
            d = json.loads(msg.data)
        except ValueError:
            d = {"_raw": msg.data}
        with self.lock:
            self.status.append((t, d))

    def _on_cmd(self, msg):
        t = time.monotonic()
        with self.lock:
            self.cmds.append((t, list(msg.data)))

    def _on_stamped(self, msg):
        t = time.monotonic()
        with self.lock:
            self.stamped.append((t, msg))

    # ---- publishing
    def now_stamp(self):
        return self.node.get_clock().now().to_msg()

    def make_js(self, names=None, pos=None, vel=None, stamp=None):
        m = JointState()
        m.header.stamp = stamp if stamp is not None else self.now_stamp()
        m.name = list(self.names if names is None else names)
        m.position = [float(x) for x in (self.pos if pos is None else pos)]
        m.velocity = [float(x) for x in (self.vel if vel is None else vel)]
        return m

    def publish_js(self, m):
        t = time.monotonic()
        self.pub_js.publish(m)
        with self.lock:
            self.js_sent.append((t, (m.header.stamp.sec, m.header.stamp.nanosec)))
        return t

    def send_goal(self, xyz=GOAL):
        m = PointStamped()
        m.header.stamp = self.now_stamp()
        m.header.frame_id = "world"
        m.point.x, m.point.y, m.point.z = xyz
        self.pub_goal.publish(m)
        return time.monotonic()

    def send_tip(self):
        m = PointStamped()
        m.header.stamp = self.now_stamp()
        m.header.frame_id = "world"
        m.point.x, m.point.y, m.point.z = TIP
        self.pub_tip.publish(m)
        with self.lock:
            self.tip_sent.append(time.monotonic())

    def estop(self, value: bool):
        t = time.monotonic()
        self.pub_estop.publish(Bool(data=value))
        return t

    def _feed(self):
        nxt = time.monotonic()
        while self._feeding:
            with self.lock:
                fj, ft, fg = self.feed_js, self.feed_tip, self.feed_goal
                hz = self.feed_hz
                pos, vel, names = list(self.pos), list(self.vel), list(self.names)
            try:
                if fj:
                    self.publish_js(self.make_js(names, pos, vel))
                if ft:
                    self.send_tip()
                if fg:
                    self.send_goal()
            except Exception:
                return
            nxt += 1.0 / hz
            d = nxt - time.monotonic()
            if d > 0:
                time.sleep(d)
            else:
                nxt = time.monotonic()

    def feed(self, js=True, tip=True, goal_periodic=False, hz=100.0):
        with self.lock:
            self.feed_js, self.feed_tip, self.feed_goal, self.feed_hz = js, tip, goal_periodic, hz

    def wait_sub(self, pub, timeout=10.0):
        t = time.monotonic() + timeout
        while pub.get_subscription_count() == 0:
            if time.monotonic() > t:
                raise AssertionError(f"no subscriber matched {pub.topic_name} within {timeout} s; "
                                     f"log: {self.output()}")
            time.sleep(0.02)

    # ---- queries
    def last_status(self):
        with self.lock:
            return self.status[-1][1] if self.status else None

    def statuses_since(self, t0):
        with self.lock:
            return [(t, d) for t, d in self.status if t >= t0]

    def cmds_since(self, t0):
        with self.lock:
            return [(t, c) for t, c in self.cmds if t >= t0]

    def wait_status(self, pred, timeout, what=""):
        t_end = time.monotonic() + timeout
        seen = 0
        while True:
            with self.lock:
                new = self.status[seen:]
                seen = len(self.status)
            for t, d in new:
                if pred(d):
                    return t, d
            if time.monotonic() > t_end:
                raise AssertionError(f"status never showed {what} within {timeout} s; last: "
                                     f"{self.last_status()}; log: {self.output()}")
            if self.proc.poll() is not None and not new:
                raise AssertionError(f"node exited rc={self.proc.returncode} waiting for {what}; "
                                     f"log: {self.output()}")
            time.sleep(0.005)

    def wait_mode(self, modes, timeout=10.0):
        modes = (modes,) if isinstance(modes, str) else modes
        return self.wait_status(lambda d: d.get("mode") in modes, timeout, f"mode in {modes}")

    def wait_cmd(self, pred, t0, timeout):
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            for t, c in self.cmds_since(t0):
                if pred(c):
                    return t, c
            time.sleep(0.002)
        return None

    def output(self):
        try:
            if not self.log.closed:
                self.log.flush()
            return self.log_path.read_text()[-3000:]
        except OSError:
            return ""

    def start_running(self, timeout=15.0):
        """Feed every source, send the goal once matched, and wait for mode run (after the ramp)."""
        self.feed(js=True, tip=True)
        self.wait_sub(self.pub_goal)
        self.send_goal()
        self.wait_mode(("ramp", "run"), timeout)
        return self.wait_mode("run", 5.0)

    def signal_and_wait(self, sig, timeout=5.0):
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
        return rc, time.monotonic() - t0, t0

    def change_state(self, transition_id, timeout=5.0):
        cli = self.node.create_client(ChangeState, f"/{self.name}/change_state")
        try:
            assert cli.wait_for_service(timeout_sec=timeout), "no change_state service"
            req = ChangeState.Request()
            req.transition = Transition(id=transition_id)
            fut = cli.call_async(req)
            t_end = time.monotonic() + timeout
            while not fut.done() and time.monotonic() < t_end:
                time.sleep(0.01)
            assert fut.done(), "change_state timed out"
            return fut.result().success
        finally:
            self.node.destroy_client(cli)

    def get_state(self, timeout=5.0):
        cli = self.node.create_client(GetState, f"/{self.name}/get_state")
        try:
            assert cli.wait_for_service(timeout_sec=timeout), "no get_state service"
            fut = cli.call_async(GetState.Request())
            t_end = time.monotonic() + timeout
            while not fut.done() and time.monotonic() < t_end:
                time.sleep(0.01)
            assert fut.done(), "get_state timed out"
            return fut.result().current_state.label
        finally:
            self.node.destroy_client(cli)

    def close(self):
        if getattr(self, "_closed", False):
            return
        self._closed = True
        self._feeding = False
        self._feeder.join(2)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(3)
        self.ros.executor.remove_node(self.node)
        self.node.destroy_node()
        self.log.close()


@pytest.fixture(scope="module")
def ros():
    r = Ros()
    yield r
    r.close()
    if LATENCIES:
        lines = ["measured latencies (own clock, ms):"]
        for k, v in LATENCIES.items():
            lines.append(f"  {k}: " + ", ".join(f"{x * 1000:.1f}" for x in v))
        text = "\n".join(lines) + "\n"
        (Path(__file__).parent / "latencies.txt").write_text(text)
        sys.__stderr__.write("\n" + text)


@pytest.fixture
def probes(ros, request):
    made = []

    def make(*a, **k):
        p = Probe(ros, request.node.name.replace("test_", "")[:24].replace("[", "_").replace("]", "")
                  .replace("-", "_").replace(".", "_"), *a, **k)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


# ----------------------------------------------------------------------------------------------------------
# helpers shared by the tests
# ----------------------------------------------------------------------------------------------------------

def wait_configured(p, timeout=15.0):
    """The only outside evidence that the node is configured: ~/status says so."""
    return p.wait_status(lambda d: d.get("state") == "inactive", timeout, "state inactive (configured)")


def run_node(p, timeout=15.0):
    """Bring the node to mode run. The goal is re-sent every 0.5 s until the node is active: a one-shot
    goal can be lost (see test_goal_sent_once_as_soon_as_subscription_matched), which is tested apart."""
    p.feed(js=True, tip=True)
    wait_configured(p, timeout)
    t_end = time.monotonic() + timeout
    while True:
        p.send_goal()
        try:
            p.wait_mode(("ramp", "run"), 0.5)
            break
        except AssertionError:
            if time.monotonic() > t_end or p.proc.poll() is not None:
                raise
    p.wait_mode("run", timeout)


def in_bounds(c):
    return len(c) == 6 and all(math.isfinite(x) and RANGES[j][0] - 1e-9 <= x <= RANGES[j][1] + 1e-9
                               for j, x in zip(JOINTS, c, strict=False))


def gaps(times):
    return [b - a for a, b in itertools.pairwise(times)]


def one_line_exit2(cmd, timeout=10.0):
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=ENV, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = ((e.stdout or b"") + (e.stderr or b"")).decode(errors="replace")
        raise AssertionError(f"not refused: still running after {timeout} s; output: {out!r}") from None
    dt = time.monotonic() - t0
    out = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
    return r.returncode, out, dt


# ----------------------------------------------------------------------------------------------------------
# 1. implausible joint readings: safe action at once, hold = last GOOD measured pose, latched
# ----------------------------------------------------------------------------------------------------------

def _bad(kind, good_pos):
    pos, vel = list(good_pos), [0.0] * 6
    if kind == "pos_1e300":
        pos[2] = 1e300
    elif kind == "pos_1e39":         # beyond 32-bit float range
        pos[4] = -1e39
    elif kind == "pos_1e6":
        pos[1] = 1e6
    elif kind == "pos_inf":
        pos[5] = float("inf")
    elif kind == "pos_nan":
        pos[0] = float("nan")
    elif kind == "jump_2p5":         # inside the card's range, but 2.5 rad in one 10 ms message
        pos[0] += 2.5
    elif kind == "vel_1e4":
        vel[3] = 1e4
    elif kind == "vel_nan":
        vel[1] = float("nan")
    elif kind == "fewer_positions":
        pos = pos[:5]
    elif kind == "fewer_velocities":
        vel = vel[:4]
    return pos, vel


@pytest.mark.parametrize("kind", ["pos_1e300", "pos_1e39", "pos_1e6", "pos_inf", "pos_nan", "jump_2p5",
                                  "vel_1e4", "vel_nan", "fewer_positions", "fewer_velocities"])
def test_implausible_reading_holds_last_good_pose_latched(probes, kind):
    p = probes(["ramp_s:=0.3"])
    run_node(p)
    time.sleep(0.2)
    # a last good pose different from the one streamed so far (0.01 rad: 1 rad/s, plausible)
    good = list(POSE)
    good[3] += 0.01
    good[5] -= 0.01
    with p.lock:
        p.feed_js = False
    time.sleep(0.012)
    p.publish_js(p.make_js(pos=good))
    time.sleep(0.010)
    pre = p.cmds_since(time.monotonic() - 0.2)
    assert pre and not close(pre[-1][1], good, 1e-3), "policy command equals the pose: test would be void"
    bad_pos, bad_vel = _bad(kind, good)
    t0 = p.publish_js(p.make_js(pos=bad_pos, vel=bad_vel))
    # after the fault, good readings again (the same good pose): the fault must stay latched
    time.sleep(0.010)
    with p.lock:
        p.pos = list(good)
        p.feed_js = True
    hit = p.wait_cmd(lambda c: close(c, good), t0, 1.0)
    time.sleep(1.2)
    after = p.cmds_since(t0)
    st = p.statuses_since(t0)
    assert hit is not None, (f"{kind}: no hold of the last good pose {good} within 1 s; commands after "
                             f"injection: {[c for _, c in after[:5]]}; status: {p.last_status()}")
    lat = hit[0] - t0
    record_latency(f"sensor fault {kind} -> hold", lat)
    assert lat < 3 * CONTROL_PERIOD, f"{kind}: hold {lat * 1000:.1f} ms after the reading ('at once')"
    first = next(i for i, (t, c) in enumerate(after) if close(c, good))
    bad_cmds = [c for _, c in after[first:] if not close(c, good)]
    assert not bad_cmds, f"{kind}: fault not latched, commands left the hold: {bad_cmds[:3]}"
    assert all(in_bounds(c) for _, c in after), f"{kind}: a command out of bounds or non-finite"
    assert len(after) - first >= 40, f"{kind}: only {len(after) - first} hold commands in 1.2 s"
    faults = [(t, d) for t, d in st if d.get("mode") == "fault"]
    assert faults, f"{kind}: status never said mode fault: {p.last_status()}"
    assert faults[0][0] - t0 < STATUS_PERIOD + SLACK, f"{kind}: fault status {faults[0][0] - t0:.3f} s late"
    assert "sensor" in faults[0][1].get("fault", ""), faults[0][1]
    assert st[-1][1].get("mode") == "fault", f"{kind}: not latched, status {st[-1][1]}"
    assert p.proc.poll() is None, f"{kind}: node died: {p.output()}"


# ----------------------------------------------------------------------------------------------------------
# e-stop: at once, status within one period, activation refused while asserted, latched until re-activation
# ----------------------------------------------------------------------------------------------------------

def test_estop(probes):
    p = probes(["ramp_s:=0.3"])
    run_node(p)
    p.wait_sub(p.pub_estop)
    time.sleep(0.3)
    t0 = p.estop(True)
    hit = p.wait_cmd(lambda c: close(c, POSE), t0, 1.0)
    assert hit is not None, f"no hold after the e-stop; status {p.last_status()}"
    record_latency("e-stop -> hold", hit[0] - t0)
    assert hit[0] - t0 < 3 * CONTROL_PERIOD
    ts, d = p.wait_status(lambda d: d.get("mode") == "fault", 1.0, "mode fault")
    record_latency("e-stop -> status fault", ts - t0)
    assert ts - t0 < STATUS_PERIOD + SLACK, f"fault status {ts - t0:.3f} s after the e-stop"
    assert "stop" in d.get("fault", "").lower() and d.get("estop") is True, d
    # releasing the e-stop does not clear the latched fault
    p.estop(False)
    time.sleep(0.5)
    assert p.last_status().get("mode") == "fault", p.last_status()
    assert all(close(c, POSE) for _, c in p.cmds_since(hit[0])), "commands left the hold after release"
    # activation refused while asserted
    p.estop(True)
    time.sleep(0.2)
    assert p.change_state(Transition.TRANSITION_DEACTIVATE) is True
    assert p.change_state(Transition.TRANSITION_ACTIVATE) is False, "activated with the e-stop asserted"
    assert p.get_state() == "inactive"
    p.estop(False)
    time.sleep(0.2)
    assert p.change_state(Transition.TRANSITION_ACTIVATE) is True, p.output()
    p.wait_mode(("ramp", "run"), 3.0)
    assert p.last_status().get("fault", "") in ("",), p.last_status()


def test_safe_action_zero(probes):
    p = probes(["ramp_s:=0.3", "safe_action:=zero"])
    run_node(p)
    p.wait_sub(p.pub_estop)
    t0 = p.estop(True)
    hit = p.wait_cmd(lambda c: close(c, [0.0] * 6, 0.0), t0, 1.0)
    assert hit is not None, f"safe_action zero: {p.cmds_since(t0)[:3]}"


# ----------------------------------------------------------------------------------------------------------
# stale inputs
# ----------------------------------------------------------------------------------------------------------

def test_stale_joint_states(probes):
    p = probes(["ramp_s:=0.3"])
    run_node(p)
    time.sleep(0.3)
    with p.lock:
        p.feed_js = False
        last = p.js_sent[-1][0]
    time.sleep(0.02)
    with p.lock:
        last = p.js_sent[-1][0]
    hit = p.wait_cmd(lambda c: close(c, POSE), last, 1.0)
    assert hit is not None, f"no hold after the joint states stopped; {p.last_status()}"
    dt = hit[0] - last
    record_latency("joint states stop -> hold (watchdog 60 ms)", dt)
    assert 0.060 - 0.015 <= dt <= 0.060 + CONTROL_PERIOD + SLACK, f"stale fault after {dt * 1000:.1f} ms"
    _ts, d = p.wait_status(lambda d: d.get("mode") == "fault", 1.0, "mode fault")
    assert any(w in d.get("fault", "") for w in ("stale", "old", "recent")), d
    assert "elbow_pitch" in d.get("fault", ""), d


def test_stale_fingertip(probes):
    p = probes(["ramp_s:=0.3"])
    run_node(p)
    time.sleep(0.3)
    with p.lock:
        p.feed_tip = False
    time.sleep(0.02)
    with p.lock:
        last = p.tip_sent[-1]
    hit = p.wait_cmd(lambda c: close(c, POSE), last, 1.0)
    assert hit is not None, f"no hold after the fingertip point stopped; {p.last_status()}"
    record_latency("fingertip stop -> hold (watchdog 60 ms)", hit[0] - last)
    assert 0.060 - 0.015 <= hit[0] - last <= 0.060 + CONTROL_PERIOD + SLACK
    d = p.wait_status(lambda d: d.get("mode") == "fault", 1.0, "mode fault")[1]
    assert "fingertip" in d.get("fault", ""), d


def test_goal_timeout_faults_after_about_that_time(probes):
    p = probes(["ramp_s:=0.3", "goal_timeout_s:=1.0"])
    p.feed(js=True, tip=True)
    wait_configured(p)
    with p.lock:
        p.feed_goal = True      # the goal, at the feeder's rate
        p.feed_hz = 100.0
    p.wait_mode("run", 10)
    time.sleep(1.5)             # longer than goal_timeout_s with a fresh goal: no fault
    assert p.last_status().get("mode") == "run", p.last_status()
    with p.lock:
        p.feed_goal = False
    time.sleep(0.02)
    last = time.monotonic() - 0.02
    hit = p.wait_cmd(lambda c: close(c, POSE), last, 3.0)
    assert hit is not None, f"goal stopped, no fault within 3 s; {p.last_status()}"
    dt = hit[0] - last
    record_latency("goal stops -> hold (goal_timeout_s 1.0)", dt)
    assert 1.0 - 0.05 <= dt <= 1.0 + CONTROL_PERIOD + SLACK + 0.02, f"goal timeout fault after {dt:.3f} s"
    d = p.last_status()
    assert d.get("mode") == "fault" and "goal" in d.get("fault", ""), d


# ----------------------------------------------------------------------------------------------------------
# 3. autostart waits for every source; the goal sent once
# ----------------------------------------------------------------------------------------------------------

def test_autostart_waits_for_late_goal_then_goal_once_keeps_running(probes):
    p = probes(["ramp_s:=0.3"])
    p.feed(js=True, tip=True)
    wait_configured(p)
    time.sleep(1.5)                                  # the goal 1.5 s after the joint states
    d = p.last_status()
    assert d.get("state") == "inactive" and d.get("waiting_for") == ["goal"], d
    assert not p.cmds, f"commands before activation: {p.cmds[:2]}"
    t0 = p.send_goal()                               # once
    ts, _ = p.wait_mode(("ramp", "run"), 2.0)
    record_latency("late goal -> active", ts - t0)
    p.wait_mode("run", 2.0)
    time.sleep(3.0)
    d = p.last_status()
    assert d.get("mode") == "run" and not d.get("fault"), f"a goal sent once did not keep it running: {d}"
    tail = p.cmds_since(time.monotonic() - 1.0)
    assert len(tail) >= 40 and not any(close(c, POSE) for _, c in tail)


def test_goal_sent_once_as_soon_as_subscription_matched(probes):
    """A one-shot goal from a publisher whose subscription is matched (the usual integrator's check)."""
    p = probes(["ramp_s:=0.3", "activation_timeout_s:=4.0"])
    p.feed(js=True, tip=True)
    p.wait_sub(p.pub_goal)
    t0 = p.send_goal()
    ts, _ = p.wait_mode(("ramp", "run"), 5.0)
    record_latency("goal once at match -> active", ts - t0)
    time.sleep(1.0)
    assert p.last_status().get("mode") == "run", p.last_status()


def test_goal_subscription_qos_for_a_one_shot_command(ros, probes):
    """The goal is a command that may be sent once: only a RELIABLE subscription is sure to receive it."""
    p = probes()
    wait_configured(p)
    info = p.node.get_subscriptions_info_by_topic(p.t_goal)
    assert info, "no goal subscription"
    rel = {i.qos_profile.reliability for i in info}
    assert rel == {ReliabilityPolicy.RELIABLE}, f"goal subscription reliability {rel}"


def test_autostart_gives_up_names_missing_then_manual_activate(probes):
    p = probes(["ramp_s:=0.3", "activation_timeout_s:=1.0"])
    p.feed(js=True, tip=True)
    wait_configured(p)
    t_end = time.monotonic() + 6
    while "after" not in p.output() and time.monotonic() < t_end:
        time.sleep(0.05)
    out = p.output()
    assert "goal" in out and "inactive" in out, f"give-up message: {out}"
    lines = [ln for ln in out.splitlines() if "goal" in ln]
    assert len(lines) == 1, lines
    assert p.proc.poll() is None, "process ended after giving up"
    assert p.get_state() == "inactive"
    # manual activate refused while the goal is missing
    assert p.change_state(Transition.TRANSITION_ACTIVATE) is False, "activated without a goal"
    p.send_goal()
    time.sleep(0.3)
    assert p.change_state(Transition.TRANSITION_ACTIVATE) is True, p.output()
    p.wait_mode("run", 3.0)


def test_missing_joint_at_activation(probes):
    p = probes(["ramp_s:=0.3", "activation_timeout_s:=1.5"])
    with p.lock:
        p.names = JOINTS[:5]
        p.pos = POSE[:5]
        p.vel = [0.0] * 5
    p.feed(js=True, tip=True)
    wait_configured(p)
    p.send_goal()
    time.sleep(0.5)
    d = p.last_status()
    assert d.get("state") == "inactive", d
    assert any("wrist_roll2" in w for w in d.get("waiting_for", [])), d
    t_end = time.monotonic() + 5
    while "after" not in p.output() and time.monotonic() < t_end:
        time.sleep(0.05)
    assert "wrist_roll2" in p.output(), p.output()
    assert p.change_state(Transition.TRANSITION_ACTIVATE) is False, "activated with a joint missing"
    assert not p.cmds, f"commands with a joint missing: {p.cmds[:2]}"


def test_estop_asserted_blocks_autostart(probes):
    p = probes(["ramp_s:=0.3", "activation_timeout_s:=0"])
    p.feed(js=True, tip=True)
    p.wait_sub(p.pub_estop)
    p.estop(True)
    wait_configured(p)
    # the node must have the e-stop before the goal arrives (a one-shot sample right after the match can
    # reach it late, see test_goal_sent_once_as_soon_as_subscription_matched)
    p.wait_status(lambda d: d.get("estop") is True, 3.0, "estop true")
    p.send_goal()
    time.sleep(1.0)
    d = p.last_status()
    assert d.get("state") == "inactive" and d.get("estop") is True, d
    assert not p.cmds
    p.estop(False)
    p.wait_mode(("ramp", "run"), 3.0)


# ----------------------------------------------------------------------------------------------------------
# 2. SIGTERM / SIGINT in every lifecycle state
# ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
@pytest.mark.parametrize("state", ["unconfigured", "waiting", "gaveup", "active"])
def test_signal_ends_promptly(probes, state, sig):
    if state == "unconfigured":
        p = probes(autostart_cmd=False)
        p.wait_status(lambda d: d.get("state") == "unconfigured", 15, "state unconfigured")
        time.sleep(0.3)
    elif state == "waiting":
        p = probes(["activation_timeout_s:=0"])
        p.feed(js=True, tip=False)
        wait_configured(p)
        time.sleep(0.5)
    elif state == "gaveup":
        p = probes(["activation_timeout_s:=0.5"])
        wait_configured(p)
        time.sleep(1.2)
        assert "after" in p.output(), p.output()
    else:
        p = probes(["ramp_s:=0.3"])
        run_node(p)
        time.sleep(0.3)
    assert p.proc.poll() is None
    rc, dt, t0 = p.signal_and_wait(sig)
    record_latency(f"{sig.name} in {state} -> exit", dt)
    assert rc == 0 and dt < SIGNAL_EXIT_S, f"{sig.name} in {state}: rc={rc} after {dt:.3f} s; {p.output()}"
    if state == "active":
        time.sleep(0.3)
        after = p.cmds_since(t0)
        assert after and close(after[-1][1], POSE), f"no hold before exit: {[c for _, c in after]}"


def test_signal_in_active_repeated_under_input_load(probes):
    """The active case again, several times, while joint states arrive at 500 Hz (a race at shutdown)."""
    results = []
    for i in range(6):
        sig = (signal.SIGTERM, signal.SIGINT)[i % 2]
        p = probes(["ramp_s:=0.2"])
        run_node(p)
        with p.lock:
            p.feed_hz = 500.0
        time.sleep(0.3)
        rc, dt, t0 = p.signal_and_wait(sig)
        record_latency(f"{sig.name} in active (500 Hz input) -> exit", dt)
        time.sleep(0.2)
        after = p.cmds_since(t0)
        held = bool(after) and close(after[-1][1], POSE)
        err = [ln for ln in p.output().splitlines() if "Error" in ln or "error" in ln][-2:]
        results.append((sig.name, rc, round(dt, 3), held, err))
        p.close()
    bad = [r for r in results if r[1] != 0 or r[2] >= SIGNAL_EXIT_S or not r[3]]
    assert not bad, f"{len(bad)}/{len(results)} bad exits: {bad}"


# ----------------------------------------------------------------------------------------------------------
# 4. ~/status at its rate in every mode
# ----------------------------------------------------------------------------------------------------------

def _check_rate(p, seconds, label, hz=10.0):
    t0 = time.monotonic()
    time.sleep(seconds)
    st = [t for t, _ in p.statuses_since(t0)]
    n_expected = seconds * hz
    g = gaps(st)
    assert len(st) >= 0.8 * n_expected, f"{label}: {len(st)} status messages in {seconds} s"
    assert max(g) < 2.5 / hz, f"{label}: status gap {max(g):.3f} s"
    return len(st), max(g)


def test_status_rate_every_mode(probes):
    u = probes(autostart_cmd=False)
    u.wait_status(lambda d: d.get("state") == "unconfigured", 15, "state unconfigured")
    _check_rate(u, 1.5, "unconfigured")
    p = probes(["ramp_s:=0.3", "activation_timeout_s:=0"])
    wait_configured(p)
    _check_rate(p, 1.5, "inactive (waiting)")
    p.feed(js=True, tip=True)
    p.send_goal()
    p.wait_mode("run", 5)
    _check_rate(p, 1.5, "run")
    p.wait_sub(p.pub_estop)
    p.estop(True)
    p.wait_mode("fault", 1)
    _check_rate(p, 1.5, "fault")
    p.change_state(Transition.TRANSITION_DEACTIVATE)
    _check_rate(p, 1.0, "inactive (deactivated)")


def test_status_rate_parameter(probes):
    p = probes(["status_rate_hz:=25.0"])
    wait_configured(p)
    n, _g = _check_rate(p, 1.0, "status_rate_hz 25", hz=25.0)
    assert n <= 25 * 1.0 * 1.3 + 2, n


# ----------------------------------------------------------------------------------------------------------
# 5. inconsistent cards and bad parameters: one line, exit 2
# ----------------------------------------------------------------------------------------------------------

def _card_edit(tmp_path, edit):
    import onnx
    m = onnx.load(str(REPO / "policies/pretrained/arm-reach.onnx"))
    props = {pp.key: pp for pp in m.metadata_props}
    card = json.loads(props["robotrl_card"].value)
    edit(card)
    props["robotrl_card"].value = json.dumps(card)
    path = tmp_path / "bad.onnx"
    onnx.save(m, str(path))
    return path


def _low_above_high(c):
    c["spec"]["action"][1]["low"] = 2.5


def _neg_period(c):
    c["control_period"] = -0.02
    c["spec"]["control_period"] = -0.02


def _range_reversed(c):
    c["spec"]["joint_ranges"]["elbow_pitch"] = [2.4, -2.4]


def _action_joint_twice(c):
    c["spec"]["action"][2]["joint"] = "shoulder_pitch"          # two actions for one joint


@pytest.mark.parametrize("edit,words", [(_low_above_high, ["shoulder_pitch", "action"]),
                                        (_neg_period, ["period"]),
                                        (_range_reversed, ["elbow_pitch", "range"]),
                                        (_action_joint_twice, ["shoulder_pitch"])],
                         ids=["low_above_high", "negative_period", "range_reversed", "action_joint_twice"])
def test_inconsistent_card_refused(tmp_path, edit, words):
    path = _card_edit(tmp_path, edit)
    rc, out, _dt = one_line_exit2([str(REPO / ".venv/bin/robotrl"), "deploy", str(path), "--ros-args",
                                  "-r", f"__node:=badcard_{random.randint(0, 10**6)}"])
    assert rc == 2, f"rc={rc}; output: {out}"
    assert len(out) == 1, f"{len(out)} lines: {out}"
    assert any(w in out[0] for w in words), f"line names none of {words}: {out[0]}"


@pytest.mark.parametrize("param,word", [
    ("rate_hz:=fast", "rate_hz"),
    ("rate_hz:=-5.0", "rate_hz"),
    ("watchdog_s:=-1.0", "watchdog_s"),
    ("watchdgo_s:=0.1", "watchdgo_s"),
    ("safe_action:=freeze", "safe_action"),
    ("command_type:=float64", "command_type"),
    ("trigger:=sometimes", "trigger"),
    ("state_reliability:=maybe", "state_reliability"),
    ("max_joint_speed:=-1.0", "max_joint_speed"),
    ("range_margin:=-0.5", "range_margin"),
    ("status_rate_hz:=-1.0", "status_rate_hz"),
    ("ramp_s:=abc", "ramp_s"),
    ("autostart:=3", "autostart"),
    ("joint_limits:=not json", "joint_limits"),
    ("joint_limits:='{\"elbow_pitch\": [1.0, -1.0]}'", "joint_limits"),
    ("joint_limits:='{\"elbw_pitch\": [0.0, 1.0]}'", "joint_limits"),
])
def test_bad_parameter_refused(param, word):
    """As a user runs it: robotrl deploy ... --ros-args -p BAD."""
    rc, out, _dt = one_line_exit2([str(REPO / ".venv/bin/robotrl"), "deploy", "pretrained:arm-reach",
                                  "--ros-args", "-r", f"__node:=badparam_{random.randint(0, 10**6)}",
                                  "-p", param])
    assert rc == 2, f"{param}: rc={rc}; output: {out}"
    assert len(out) == 1, f"{param}: {len(out)} lines: {out}"
    assert word in out[0], f"{param}: line does not name {word}: {out[0]}"


@pytest.mark.parametrize("param", ['joint_limits:={"elbow_pitch": [1.0, -1.0]}',
                                   'joint_limits:={"elbw_pitch": [0.0, 1.0]}'])
def test_unquoted_json_parameter_refused_one_line(param):
    """JSON given without YAML quotes: ROS cannot parse it; still exit 2 with one line?"""
    rc, out, _dt = one_line_exit2([str(REPO / ".venv/bin/robotrl"), "deploy", "pretrained:arm-reach",
                                  "--ros-args", "-r", f"__node:=badparam_{random.randint(0, 10**6)}",
                                  "-p", param])
    assert rc == 2, f"{param}: rc={rc}; output: {out}"
    assert len(out) == 1 and "joint_limits" in out[0], f"{len(out)} lines: {out}"


@pytest.mark.parametrize("param,word", [("autostart:=3", "autostart"), ("rate_hz:=fast", "rate_hz"),
                                        ("watchdgo_s:=0.1", "watchdgo_s")])
def test_bad_parameter_refused_node_main(param, word):
    """The node's own entry point (no autostart)."""
    rc, out, _dt = one_line_exit2([PY, "-c", "import sys; from robotrl.deploy.node import main; sys.exit(main())",
                                  "--ros-args", "-r", f"__node:=badparam_{random.randint(0, 10**6)}",
                                  "-p", "policy:=pretrained:arm-reach", "-p", param])
    assert rc == 2, f"{param}: rc={rc}; output: {out}"
    assert len(out) == 1 and word in out[0], out


# ----------------------------------------------------------------------------------------------------------
# the rest a careful integrator would try
# ----------------------------------------------------------------------------------------------------------

def _steady_command(p):
    time.sleep(0.5)
    tail = p.cmds_since(time.monotonic() - 0.3)
    assert len(tail) >= 10
    c = tail[-1][1]
    assert all(close(x, c, 1e-9) for _, x in tail), "policy command not steady for a static input"
    return c


def test_shuffled_order_and_extra_joints(probes):
    a = probes(["ramp_s:=0.3"])
    run_node(a)
    ref = _steady_command(a)
    a.close()
    order = [4, 0, 5, 2, 1, 3]
    b = probes(["ramp_s:=0.3"])
    with b.lock:
        b.names = ["gripper_left"] + [JOINTS[i] for i in order] + ["base_rail"]
        b.pos = [0.02] + [POSE[i] for i in order] + [0.5]
        b.vel = [0.0] * 8
    run_node(b)
    got = _steady_command(b)
    assert close(got, ref, 1e-6), f"shuffled/extra joints change the command: {got} vs {ref}"
    b.wait_sub(b.pub_estop)
    t0 = b.estop(True)
    hit = b.wait_cmd(lambda c: close(c, POSE), t0, 1.0)
    assert hit is not None, f"hold not in card order: {b.cmds_since(t0)[:2]}"


def test_500hz_state_stream(probes):
    p = probes(["ramp_s:=0.3"])
    run_node(p)
    with p.lock:
        p.feed_hz = 500.0
    time.sleep(0.3)
    t0 = time.monotonic()
    time.sleep(3.0)
    sent = [t for t, _ in p.js_sent if t >= t0]
    cm = p.cmds_since(t0)
    d = p.last_status()
    assert len(sent) > 3.0 * 400, f"feeder only reached {len(sent) / 3:.0f} Hz"
    assert d.get("mode") == "run" and not d.get("fault"), d
    assert 3.0 * 45 <= len(cm) <= 3.0 * 55, f"{len(cm) / 3:.1f} commands/s at 500 Hz input"


def test_rate_hz_integer(probes):
    p = probes(["ramp_s:=0.3", "rate_hz:=100", "watchdog_s:=0.1"])
    with p.lock:
        p.feed_hz = 200.0
    run_node(p)
    assert "100 Hz" in p.output(), p.output()
    t0 = time.monotonic()
    time.sleep(2.0)
    n = len(p.cmds_since(t0))
    assert 2.0 * 85 <= n <= 2.0 * 115, f"{n / 2:.1f} commands/s with rate_hz:=100"
    assert p.last_status().get("mode") == "run"


def test_stamped_command(probes):
    p = probes(["ramp_s:=0.3"])
    run_node(p)
    time.sleep(0.5)
    with p.lock:
        stamped = list(p.stamped[-20:])
        cmds = [c for _, c in p.cmds[-40:]]
        sent = {s for _, s in p.js_sent}
    assert stamped
    for _, m in stamped:
        assert type(m).__name__ == "JointState"
        assert list(m.name) == JOINTS, m.name
        assert (m.header.stamp.sec, m.header.stamp.nanosec) in sent, f"stamp {m.header.stamp} never sent"
        assert any(close(list(m.position), c, 0.0) for c in cmds), f"stamped position {m.position} not a command"
        assert len(m.velocity) == 0
    # the stamp answers a recent joint state: not older than the watchdog when it was published
    t_now = p.node.get_clock().now().nanoseconds
    m = stamped[-1][1]
    age = (t_now - (m.header.stamp.sec * 10**9 + m.header.stamp.nanosec)) / 1e9
    assert age < 0.5, age


def test_joint_trajectory_command_type(probes):
    from trajectory_msgs.msg import JointTrajectory
    traj_topic = f"/ot_traj_{random.randint(0, 10**6)}/commands"
    p = probes(["ramp_s:=0.3", "command_type:=joint_trajectory", f"command_topic:={traj_topic}"])
    got = []
    n = rclpy.create_node(p.name + "_traj")
    n.create_subscription(JointTrajectory, traj_topic, lambda m: got.append(m), RELIABLE)
    p.ros.executor.add_node(n)
    try:
        run_node(p, timeout=15)
        time.sleep(0.3)
    finally:
        p.ros.executor.remove_node(n)
        n.destroy_node()
    assert got, "no JointTrajectory"
    m = got[-1]
    assert list(m.joint_names) == JOINTS and len(m.points) >= 1 and len(m.points[0].positions) == 6


def test_params_file(probes, tmp_path):
    name = f"ot_pfile_{random.randint(0, 10**6)}"
    f = tmp_path / "p.yaml"
    f.write_text(f"""{name}:
  ros__parameters:
    policy: "pretrained:arm-reach"
    status_rate_hz: 20.0
    ramp_s: 0.3
    autostart: true
    joint_states_topic: "/{name}/joint_states"
    goal_topic: "/{name}/goal"
    points_prefix: "/{name}/points/"
    estop_topic: "/{name}/estop"
    command_topic: "/{name}/commands"
""")
    p = probes(node_args=[PY, "-m", "robotrl.deploy", "pretrained:arm-reach"], name=name, topics=True,
               extra_ros_args=["--params-file", str(f), "-r", f"__node:={name}"], remap=False)
    run_node(p)
    n, _g = _check_rate(p, 1.0, "status_rate_hz 20 from the file", hz=20.0)
    assert n <= 20 * 1.3 + 2, f"{n} status messages in 1 s with status_rate_hz 20"


def test_launch_equivalent_with_shipped_yaml(probes):
    """What deploy/launch/policy.launch.py runs, default autostart false: configure + activate by hand."""
    yaml = str(REPO / "deploy/config/policy.yaml")
    p = probes(node_args=[PY, "-m", "robotrl.deploy", "pretrained:arm-reach"], name="robotrl_policy",
               topics=False, remap=False,
               extra_ros_args=["--params-file", yaml, "-p", "policy:=pretrained:arm-reach",
                               "-p", "autostart:=false", "-p", "ramp_s:=0.3", "-r", "__node:=robotrl_policy"])
    p.wait_status(lambda d: d.get("state") == "unconfigured", 5, "state unconfigured")
    time.sleep(0.5)
    assert p.get_state() == "unconfigured"
    assert p.change_state(Transition.TRANSITION_CONFIGURE) is True, p.output()
    p.feed(js=True, tip=True)
    p.wait_sub(p.pub_goal)
    time.sleep(0.3)
    p.send_goal()
    time.sleep(0.3)
    assert p.change_state(Transition.TRANSITION_ACTIVATE) is True, p.output()
    p.wait_mode("run", 5)
    assert p.cmds, "no commands on /policy_controller/commands"


def test_launch_equivalent_autostart_true(probes):
    yaml = str(REPO / "deploy/config/policy.yaml")
    p = probes(node_args=[PY, "-m", "robotrl.deploy", "pretrained:arm-reach"], name="robotrl_policy",
               topics=False, remap=False,
               extra_ros_args=["--params-file", yaml, "-p", "policy:=pretrained:arm-reach",
                               "-p", "autostart:=true", "-p", "ramp_s:=0.3", "-r", "__node:=robotrl_policy"])
    run_node(p)


def test_joint_limits_clamp_commands_and_hold(probes):
    """joint_limits tighter than the card: commands and the hold are clamped to them."""
    p = probes(["ramp_s:=0.3", "joint_limits:='{\"elbow_pitch\": [0.0, 1.0], \"shoulder_yaw\": [-0.5, 0.5]}'"])
    run_node(p)
    time.sleep(0.3)
    run_cmds = [c for _, c in p.cmds]
    assert all(0.0 - 1e-9 <= c[2] <= 1.0 + 1e-9 and -0.5 - 1e-9 <= c[0] <= 0.5 + 1e-9 for c in run_cmds), \
        [c for c in run_cmds if not (0.0 <= c[2] <= 1.0 and -0.5 <= c[0] <= 0.5)][:3]
    p.wait_sub(p.pub_estop)
    t0 = p.estop(True)
    want = list(POSE)
    want[2] = 1.0                  # measured 1.2, limit 1.0
    hit = p.wait_cmd(lambda c: close(c, want), t0, 1.0)
    assert hit is not None, f"hold {p.cmds_since(t0)[:1]} != clamped last pose {want}"


def test_soft_start_and_max_rate(probes):
    p = probes(["ramp_s:=1.0", "max_rate:=0.5"])
    run_node(p)
    with p.lock:
        cm = list(p.cmds)
    first = cm[0][1]
    # the first command starts from the measured pose: at most one step of 0.5 rad/s away
    assert all(abs(a - b) <= 0.5 * CONTROL_PERIOD * 1.5 + 1e-9 for a, b in zip(first, POSE, strict=False)), first
    steps = [max(abs(a - b) for a, b in zip(c1, c0, strict=False)) for (_, c0), (_, c1) in itertools.pairwise(cm)]
    # rate limit per command: 0.5 rad/s; the node's own period jitters, allow 50 %
    assert max(steps) <= 0.5 * CONTROL_PERIOD * 1.5 + 1e-9, f"largest step {max(steps):.4f} rad"
