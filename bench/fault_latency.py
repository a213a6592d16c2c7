"""Time from a fault to the safe action, measured from outside the policy node.

    python bench/fault_latency.py [--trials 20] [--rate 100]

The node runs as a robot runs it: `robotrl deploy pretrained:arm-reach` in its own process (50 Hz
card, default parameters, soft start off). This process is the robot: it publishes the arm's joint
states, goal and fingertip at `--rate` Hz over Fast DDS on loopback, listens to the commands
(RELIABLE, as a ros2_control forward command controller does), injects one fault per trial, and
times on its own monotonic clock from the moment it publishes the fault (for silence: from its last
message) to the first command that is the safe action (the arm's last good pose). Between trials it
deactivates and re-activates the node through the lifecycle services. A stale goal is measured on a
second node started with ``goal_timeout_s:=0.2`` (by default a goal stays valid until replaced);
SIGTERM on fresh processes, to the safe action and to the process's exit.
Writes the `fault-latency` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, save_json, update_section, versions

JOINTS = ["shoulder_yaw", "shoulder_pitch", "elbow_pitch", "wrist_roll1", "wrist_pitch", "wrist_roll2"]
HOME = np.array([0.0, 0.3, 1.2, 0.0, 0.8, 0.0])
GOAL = (0.45, 0.05, 0.35)
TIP = (0.40, 0.0, 0.30)

# fault class -> (what is published instead of the healthy state, what the node's default limits make of it)
FAULTS = {
    "stale joint states": "silence (no JointState); the watchdog is 3 control periods = 60 ms",
    "NaN position": "elbow_pitch position NaN",
    "beyond float32": "elbow_pitch position 1e300 (finite in 64 bits only)",
    "outside the joint range": "shoulder_pitch position 1e6 rad",
    "position jump": "shoulder_yaw +2.5 rad in one message (range +-2.9)",
    "implausible velocity": "wrist_pitch velocity 1e4 rad/s",
    "e-stop": "/estop true",
}


class Robot:
    def __init__(self, node_name: str):
        import rclpy
        from geometry_msgs.msg import PointStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Bool, Float64MultiArray

        self.rclpy = rclpy
        self.JointState, self.PointStamped, self.Bool = JointState, PointStamped, Bool
        self.node = rclpy.create_node("bench_fault_robot")
        self.ex = SingleThreadedExecutor()
        self.ex.add_node(self.node)
        be = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        rel = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_js = self.node.create_publisher(JointState, "/joint_states", be)
        self.pub_goal = self.node.create_publisher(PointStamped, "/goal", rel)
        self.pub_tip = self.node.create_publisher(PointStamped, "/points/fingertip", be)
        self.pub_estop = self.node.create_publisher(Bool, "/estop", rel)
        self.commands: list[tuple[float, np.ndarray]] = []
        self.node.create_subscription(Float64MultiArray, "/policy_controller/commands",
                                      lambda m: self.commands.append((time.monotonic(), np.array(m.data))),
                                      QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                                                 reliability=ReliabilityPolicy.RELIABLE))
        from lifecycle_msgs.srv import ChangeState

        self.ChangeState = ChangeState
        self.lifecycle = self.node.create_client(ChangeState, f"/{node_name}/change_state")
        self.last_publish = 0.0

    def publish(self, q: np.ndarray = HOME, dq: np.ndarray | None = None) -> float:
        js = self.JointState()
        js.name = list(JOINTS)
        js.position = [float(v) for v in q]
        js.velocity = [float(v) for v in (np.zeros(6) if dq is None else dq)]
        for pub, xyz in ((self.pub_goal, GOAL), (self.pub_tip, TIP)):
            m = self.PointStamped()
            m.point.x, m.point.y, m.point.z = xyz
            pub.publish(m)
        t = time.monotonic()
        self.pub_js.publish(js)
        self.last_publish = t
        return t

    def run(self, seconds: float, rate: float, publish: bool = True, **state) -> None:
        end = time.monotonic() + seconds
        next_pub = time.monotonic()
        while time.monotonic() < end:
            if publish and time.monotonic() >= next_pub:
                self.publish(**state)
                next_pub += 1.0 / rate
            self.ex.spin_once(timeout_sec=0.0005)

    def change_state(self, transition: int) -> bool:
        req = self.ChangeState.Request()
        req.transition.id = transition
        fut = self.lifecycle.call_async(req)
        end = time.monotonic() + 5.0
        while not fut.done() and time.monotonic() < end:
            self.publish()
            self.ex.spin_once(timeout_sec=0.005)
        return bool(fut.done() and fut.result().success)

    def first_safe_after(self, t0: float, hold: np.ndarray) -> float | None:
        for t, c in self.commands:
            if t >= t0 and c.shape == hold.shape and np.allclose(c, hold, atol=1e-9):
                return t
        return None


def start_node(name: str, *params: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "robotrl.deploy", "pretrained:arm-reach", "--ros-args", "-p", "ramp_s:=0.0",
           *[x for p in params for x in ("-p", p)], "-r", f"__node:={name}"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_running(robot: Robot, rate: float, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        n = len(robot.commands)
        robot.run(0.1, rate)
        if len(robot.commands) > n + 3 and not np.allclose(robot.commands[-1][1], HOME, atol=1e-9):
            return
    raise RuntimeError("the node never started sending policy commands")


def trial(robot: Robot, fault: str, rate: float) -> float:
    """One injection; returns milliseconds from the injection to the first safe command."""
    from lifecycle_msgs.msg import Transition

    robot.run(0.25, rate)  # healthy, policy running
    if fault == "stale joint states":
        robot.run(0.3, rate, publish=False)
        t0 = robot.last_publish
    elif fault == "e-stop":
        t0 = time.monotonic()
        robot.pub_estop.publish(robot.Bool(data=True))
        robot.run(0.3, rate)
    else:
        q, dq = HOME.copy(), np.zeros(6)
        if fault == "NaN position":
            q[2] = np.nan
        elif fault == "beyond float32":
            q[2] = 1e300
        elif fault == "outside the joint range":
            q[1] = 1e6
        elif fault == "position jump":
            q[0] += 2.5
        elif fault == "implausible velocity":
            dq[4] = 1e4
        t0 = robot.publish(q, dq)
        robot.run(0.3, rate, q=q, dq=dq)
    t = robot.first_safe_after(t0, HOME)
    if fault == "e-stop":
        robot.pub_estop.publish(robot.Bool(data=False))
        robot.run(0.1, rate)
    assert robot.change_state(Transition.TRANSITION_DEACTIVATE), "deactivate failed"
    robot.run(0.1, rate)
    assert robot.change_state(Transition.TRANSITION_ACTIVATE), "activate failed"
    if t is None:
        raise RuntimeError(f"{fault}: no safe action within 0.3 s")
    return (t - t0) * 1e3


def sigterm_trial(robot: Robot, rate: float, k: int) -> tuple[float, float]:
    name = f"bench_sigterm_{k}"
    proc = start_node(name)
    try:
        robot.commands.clear()
        wait_running(robot, rate)
        robot.run(0.2, rate)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        while proc.poll() is None and time.monotonic() - t0 < 10:
            robot.run(0.001, rate)
        t_exit = time.monotonic()
        robot.run(0.1, rate)
        t = robot.first_safe_after(t0, HOME)
        if t is None or proc.returncode != 0:
            raise RuntimeError(f"SIGTERM: safe action {t}, exit {proc.returncode}: {proc.stderr.read()[-500:]}")
        return (t - t0) * 1e3, (t_exit - t0) * 1e3
    finally:
        if proc.poll() is None:
            proc.kill()


def stats(ms: list[float]) -> str:
    a = np.asarray(ms)
    return f"{np.median(a):.1f} | {np.percentile(a, 95):.1f} | {a.max():.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--rate", type=float, default=100.0, help="the robot's JointState rate (Hz)")
    ap.add_argument("--section", default="fault-latency")
    args = ap.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(100, 200)))
    import rclpy

    rclpy.init()
    results: dict[str, list[float]] = {}
    robot = None
    procs: list[subprocess.Popen] = []
    try:
        robot = Robot("bench_policy")
        procs.append(start_node("bench_policy"))
        wait_running(robot, args.rate)
        for k in range(args.trials):
            for fault in FAULTS:
                results.setdefault(fault, []).append(trial(robot, fault, args.rate))
            print(f"trial {k + 1}/{args.trials}: " + ", ".join(f"{f} {v[-1]:.1f} ms" for f, v in results.items()),
                  flush=True)
        procs[0].send_signal(signal.SIGTERM)
        procs[0].wait(10)
        robot.node.destroy_node()

        robot = Robot("bench_goal")  # a second node that wants a fresh goal
        procs.append(start_node("bench_goal", "goal_timeout_s:=0.2"))
        from lifecycle_msgs.msg import Transition

        wait_running(robot, args.rate)
        goal_ms = []
        for _ in range(args.trials):
            robot.run(0.25, args.rate)
            t_goal = robot.last_publish  # the goal's last message
            end = time.monotonic() + 0.6
            while time.monotonic() < end:  # joint states and fingertip go on, the goal stops
                js_only = robot.JointState()
                js_only.name, js_only.position, js_only.velocity = list(JOINTS), list(HOME), [0.0] * 6
                tip = robot.PointStamped()
                tip.point.x, tip.point.y, tip.point.z = TIP
                robot.pub_tip.publish(tip)
                robot.pub_js.publish(js_only)
                robot.run(1.0 / args.rate, args.rate, publish=False)
            t = robot.first_safe_after(t_goal, HOME)
            if t is None:
                raise RuntimeError("stale goal: no safe action")
            goal_ms.append((t - t_goal) * 1e3)
            assert robot.change_state(Transition.TRANSITION_DEACTIVATE)
            robot.run(0.1, args.rate)
            assert robot.change_state(Transition.TRANSITION_ACTIVATE)
        results["stale goal (goal_timeout_s 0.2)"] = goal_ms
        procs[1].send_signal(signal.SIGTERM)
        procs[1].wait(10)

        to_safe, to_exit = [], []
        for k in range(min(args.trials, 5)):
            a, b = sigterm_trial(robot, args.rate, k)
            to_safe.append(a)
            to_exit.append(b)
        results["SIGTERM (to the safe action)"] = to_safe
        results["SIGTERM (to the process's exit)"] = to_exit
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        if robot is not None:
            robot.node.destroy_node()
        rclpy.shutdown()

    what = {**FAULTS, "stale goal (goal_timeout_s 0.2)": "the goal stops; joint states go on",
            "SIGTERM (to the safe action)": "SIGTERM to the node's process while active",
            "SIGTERM (to the process's exit)": "the same, to the process's exit with status 0"}
    rows = [f"| {f} | {what[f]} | {len(v)} | {stats(v)} |" for f, v in results.items()]
    body = (f"Command: `python bench/fault_latency.py --trials {args.trials} --rate {args.rate:g}` "
            f"({time.strftime('%Y-%m-%d')}; {machine()}; {versions('ros-rclpy', 'onnxruntime')}, Fast DDS on "
            "loopback).\n\n"
            "The node (`robotrl deploy pretrained:arm-reach`, 50 Hz card, default parameters, `ramp_s:=0`) runs in "
            f"its own process; this script is the robot ({args.rate:g} Hz JointState, goal and fingertip) and times "
            "on its own clock from publishing the fault (for silence: its last message; for a stale goal: the "
            "goal's last message) to the first command equal to the safe action (hold = the last good pose).\n\n"
            "| fault | injected | trials | p50 ms | p95 ms | max ms |\n| --- | --- | --- | --- | --- | --- |\n"
            + "\n".join(rows) + "\n\n"
            "Sensor faults and the e-stop act on arrival (no wait for the next tick); silence acts at the first "
            "control step after the watchdog (60 ms + up to one 20 ms period); a stale goal at the first step "
            "after its 200 ms limit.")
    print(body)
    save_json("fault_latency", {k: v for k, v in results.items()})
    update_section(args.section, body)


if __name__ == "__main__":
    main()
