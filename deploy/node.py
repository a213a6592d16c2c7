"""The ROS 2 policy node: a lifecycle node that runs an exported actor on a robot.

    robotrl deploy actor.onnx [--ros-args -p rate_hz:=100 ...]      (or python -m robotrl.deploy ...)

Lifecycle (drive it with `ros2 lifecycle set /robotrl_policy configure|activate|...`, or let
``autostart`` do configure + activate):
  configure   load the ONNX file and validate its card, warm up the runtime, create the
              subscriptions (state BEST_EFFORT depth 1) and publishers (commands RELIABLE depth 1)
  activate    refuse, naming them, if the robot's joint states do not cover the card's joints;
              capture the measured pose and start the soft-start ramp
  deactivate  publish the safe action, stop the loop
Every control step (a fixed-period timer, or on each JointState with ``trigger:=state``) assembles
the observation by joint name (`ObservationBuilder`), runs the actor, and sends the result through
the `SafetyFilter`. Stale input (older than ``watchdog_s``), NaN/Inf, an inference error, an
overrun (a step longer than its period) or the e-stop put the node in its safe action, latched
until the node is deactivated and activated again.

Only numpy, onnxruntime and rclpy; written against the rclpy API of Humble (no newer calls), so it
runs the same on Humble, Jazzy and Kilted.
"""

from __future__ import annotations

import json
import time
from collections import deque
from typing import Any

import numpy as np
import rclpy
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String

from robotrl.deploy.observation import BadInput, MissingInput, ObservationBuilder
from robotrl.deploy.runtime import CardError, OnnxPolicy
from robotrl.deploy.safety import SafetyConfig, SafetyFilter

PARAMS: dict[str, Any] = {
    "policy": "",                      # path of actor.onnx, or pretrained:NAME
    "rate_hz": 0.0,                    # control rate; 0: the card's control period
    "trigger": "timer",                # timer: fixed-period loop; state: compute on each JointState
    "sync_stamps": False,              # trigger=state: wait until every source carries the JointState's stamp
    "joint_states_topic": "/joint_states",
    "odom_topic": "/odom",
    "imu_topic": "",                   # sensor_msgs/Imu for orientation + angular velocity ("": from odometry)
    "goal_topic": "/goal",
    "points_prefix": "/points/",       # a card point NAME is read from <prefix>NAME (PointStamped)
    "command_topic": "/policy_controller/commands",
    "command_type": "float64_multi_array",  # or joint_trajectory
    "estop_topic": "/estop",
    "status_topic": "~/status",
    "stamped_command_topic": "~/command_stamped",
    "ramp_s": 1.0,
    "max_rate": 0.0,                   # command units per second; 0: no rate limit
    "watchdog_s": 0.0,                 # 0: three control periods
    "safe_action": "hold",             # hold | zero
    "joint_limits": "",                # JSON {"joint": [low, high]}: position commands are clamped to these too
    "state_reliability": "best_effort",
    "command_reliability": "reliable",
    "autostart": False,                # configure and activate at start-up
    "overrun_is_fault": True,          # a step longer than the period -> safe action (off for lockstep sims)
}


def _qos(reliability: str) -> QoSProfile:
    rel = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}[reliability]
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=rel)


def _stamp_s(msg: Any) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


class Telemetry:
    def __init__(self, n: int = 2000):
        self.period = deque(maxlen=n)
        self.latency = deque(maxlen=n)
        self.inference = deque(maxlen=n)
        self.overruns = 0
        self.steps = 0

    @staticmethod
    def _pct(d: deque) -> dict[str, float]:
        if not d:
            return {}
        a = np.asarray(d) * 1e3
        return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "max_ms": float(a.max())}

    def summary(self) -> dict[str, Any]:
        return {"steps": self.steps, "overruns": self.overruns, "period": self._pct(self.period),
                "latency": self._pct(self.latency), "inference": self._pct(self.inference)}


class PolicyNode(LifecycleNode):
    def __init__(self, name: str = "robotrl_policy", **kwargs: Any):
        super().__init__(name, **kwargs)
        for k, v in PARAMS.items():
            self.declare_parameter(k, v)
        self.policy: OnnxPolicy | None = None
        self.builder: ObservationBuilder | None = None
        self.safety: SafetyFilter | None = None
        self.telemetry = Telemetry()
        self.estop = False
        self.seen_joints: set[str] = set()
        self._timer = None
        self._subs: list[Any] = []
        self._pubs: dict[str, Any] = {}
        self._active = False
        self._last_tick: float | None = None
        self._last_state_rx = 0.0
        self._last_state_stamp = None
        self._status_every = 1
        self.last_command: np.ndarray | None = None
        self._src_stamp: dict[str, tuple[int, int]] = {}
        self._done_stamp: tuple[int, int] | None = None

    def p(self, name: str) -> Any:
        return self.get_parameter(name).value

    # lifecycle -------------------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self.policy = OnnxPolicy(self.p("policy"))
        except CardError as e:
            self.get_logger().error(str(e))
            return TransitionCallbackReturn.FAILURE
        card = self.policy.card
        spec = card["spec"]
        generic = [e for e in spec["observation"] if e["kind"] == "obs"]
        if generic or not spec.get("deployable", False):
            self.get_logger().error(f"{self.policy.path}: task {card['task_id']!r} has unnamed observation elements "
                                    "(a plain Gymnasium id); train on a robotrl/ task to deploy")
            return TransitionCallbackReturn.FAILURE
        rate = self.p("rate_hz") or 1.0 / float(card["control_period"])
        self.period = 1.0 / rate
        self.watchdog = self.p("watchdog_s") or 3.0 * self.period
        try:
            cfg = SafetyConfig(ramp_s=self.p("ramp_s"), max_rate=self.p("max_rate") or None,
                               safe_action=self.p("safe_action"))
        except ValueError as e:
            self.get_logger().error(str(e))
            return TransitionCallbackReturn.FAILURE
        self.action_joints = [a["joint"] for a in spec["action"]]
        self.builder = ObservationBuilder(spec["observation"], self.action_joints, use_imu=bool(self.p("imu_topic")))
        try:
            limits = json.loads(self.p("joint_limits")) if self.p("joint_limits") else None
        except json.JSONDecodeError as e:
            self.get_logger().error(f"joint_limits is not JSON: {e}")
            return TransitionCallbackReturn.FAILURE
        self.safety = SafetyFilter(spec["action"], cfg, joint_limits=limits)
        zeros = np.zeros(self.policy.obs_dim)
        for _ in range(200):  # warm-up: first calls allocate
            self.policy(zeros)
        state_qos, cmd_qos = _qos(self.p("state_reliability")), _qos(self.p("command_reliability"))
        self._subs = [self.create_subscription(JointState, self.p("joint_states_topic"), self._on_joint_state,
                                               state_qos),
                      self.create_subscription(Bool, self.p("estop_topic"), self._on_estop, _qos("reliable"))]
        if self.builder.need_odom:
            from nav_msgs.msg import Odometry

            self._subs.append(self.create_subscription(Odometry, self.p("odom_topic"), self._on_odom, state_qos))
        if self.builder.use_imu:
            from sensor_msgs.msg import Imu

            self._subs.append(self.create_subscription(Imu, self.p("imu_topic"), self._on_imu, state_qos))
        if self.builder.need_goal or self.builder.points:
            from geometry_msgs.msg import PointStamped
        if self.builder.need_goal:
            self._subs.append(self.create_subscription(PointStamped, self.p("goal_topic"), self._on_goal, state_qos))
        for name in self.builder.points:
            self._subs.append(self.create_subscription(
                PointStamped, self.p("points_prefix") + name, lambda m, n=name: self._on_point(n, m), state_qos))
        if self.p("command_type") == "joint_trajectory":
            from trajectory_msgs.msg import JointTrajectory

            self._pubs["cmd"] = self.create_publisher(JointTrajectory, self.p("command_topic"), cmd_qos)
        elif self.p("command_type") == "float64_multi_array":
            self._pubs["cmd"] = self.create_publisher(Float64MultiArray, self.p("command_topic"), cmd_qos)
        else:
            self.get_logger().error(f"command_type must be float64_multi_array or joint_trajectory, "
                                    f"got {self.p('command_type')!r}")
            return TransitionCallbackReturn.FAILURE
        self._pubs["stamped"] = self.create_publisher(JointState, self.p("stamped_command_topic"), cmd_qos)
        self._pubs["status"] = self.create_publisher(String, self.p("status_topic"), _qos("reliable"))
        self._status_every = max(1, round(rate))
        self._sources = ["joint_states", *(["odom"] if self.builder.need_odom else []),
                         *(["imu"] if self.builder.use_imu else []),
                         *(["goal"] if self.builder.need_goal else []), *(f"point:{n}" for n in self.builder.points)]
        self.get_logger().info(f"configured {card['task_id']} ({card['algo']}) at {rate:.0f} Hz, "
                               f"watchdog {self.watchdog * 1e3:.0f} ms, trigger {self.p('trigger')}")
        return TransitionCallbackReturn.SUCCESS

    def missing_joints(self) -> list[str]:
        """The card's joints (observed and commanded) that the robot's JointState has not named."""
        return sorted((set(self.builder.joints) | set(self.action_joints)) - self.seen_joints)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        missing = self.missing_joints()
        if missing:
            self.get_logger().error(f"refusing to activate: the robot's joint states lack {', '.join(missing)}")
            return TransitionCallbackReturn.FAILURE
        if self.estop:
            self.get_logger().error("refusing to activate: the e-stop is asserted")
            return TransitionCallbackReturn.FAILURE
        now = time.monotonic()
        self.safety.activate(now, self._measured_action_joints())
        self.telemetry = Telemetry()
        self._last_tick = None
        self._done_stamp = None
        self._active = True
        self._timer = self.create_timer(self.period, self._on_timer)
        self.get_logger().info("active")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        self._publish(self.safety.deactivate(self._measured_action_joints()), None)
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        for s in self._subs:
            self.destroy_subscription(s)
        for pub in self._pubs.values():
            self.destroy_publisher(pub)
        self._subs, self._pubs = [], {}
        self.policy = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        if self._active:
            self.on_deactivate(state)
        return TransitionCallbackReturn.SUCCESS

    # inputs ---------------------------------------------------------------------------------------
    def _on_joint_state(self, msg: JointState) -> None:
        now = time.monotonic()
        try:
            self.builder.joint_state(msg.name, msg.position, msg.velocity, now)
        except BadInput as e:
            if self._active:
                self._fault(str(e))
            return
        self.seen_joints.update(msg.name)
        self._last_state_rx = now
        self._last_state_stamp = msg.header.stamp
        self._arrived("joint_states", msg, now)

    def _arrived(self, source: str, msg: Any, now: float) -> None:
        """trigger=state: step on the JointState, or with sync_stamps once every source has its stamp."""
        if not (self._active and self.p("trigger") == "state"):
            return
        if not self.p("sync_stamps"):
            if source == "joint_states":
                self._step(now)
            return
        self._src_stamp[source] = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        js = self._src_stamp.get("joint_states")
        if js is None or js == self._done_stamp:
            return
        if all(self._src_stamp.get(src) == js for src in self._sources):
            self._done_stamp = js
            self._step(now)

    def _on_odom(self, msg: Any) -> None:
        p, q, v, w = msg.pose.pose.position, msg.pose.pose.orientation, msg.twist.twist.linear, msg.twist.twist.angular
        now = time.monotonic()
        self.builder.base_state((p.x, p.y, p.z), (q.x, q.y, q.z, q.w), (v.x, v.y, v.z), (w.x, w.y, w.z), now)
        self._arrived("odom", msg, now)

    def _on_imu(self, msg: Any) -> None:
        q, w = msg.orientation, msg.angular_velocity
        now = time.monotonic()
        self.builder.imu((q.x, q.y, q.z, q.w), (w.x, w.y, w.z), now)
        self._arrived("imu", msg, now)

    def _on_goal(self, msg: Any) -> None:
        now = time.monotonic()
        self.builder.goal((msg.point.x, msg.point.y, msg.point.z), now)
        self._arrived("goal", msg, now)

    def _on_point(self, name: str, msg: Any) -> None:
        now = time.monotonic()
        self.builder.point(name, (msg.point.x, msg.point.y, msg.point.z), now)
        self._arrived(f"point:{name}", msg, now)

    def _on_estop(self, msg: Bool) -> None:
        self.estop = bool(msg.data)
        if self.estop and self._active:
            self._step(time.monotonic())  # act now, not at the next tick

    # the loop -------------------------------------------------------------------------------------
    def _measured_action_joints(self) -> np.ndarray | None:
        if self.builder is None:
            return None
        idx = self.builder._jidx
        return np.array([self.builder.q[idx[j]] if j in idx else np.nan for j in self.action_joints])

    def _on_timer(self) -> None:
        now = time.monotonic()
        if self._last_tick is not None:
            self.telemetry.period.append(now - self._last_tick)
        self._last_tick = now
        if self.p("trigger") == "state":  # the timer is then the watchdog only
            if now - self._last_state_rx > self.watchdog and self.safety.mode != "fault":
                self._fault(f"no joint state for {(now - self._last_state_rx) * 1e3:.0f} ms")
            return
        self._step(now)

    def _fault(self, reason: str) -> None:
        if self.safety.mode != "fault":
            self.get_logger().warning(f"safe action: {reason}")
        self._publish(self.safety.fault(reason, self._measured_action_joints()), self._last_state_stamp)

    def _step(self, now: float) -> None:
        t0 = time.perf_counter()
        if self.safety.mode == "fault":
            self._fault(self.safety.fault_reason)
            return
        if self.estop:
            self._fault("e-stop")
            return
        try:
            obs = self.builder.build(now, self.watchdog)
        except (MissingInput, BadInput) as e:
            self._fault(str(e))
            return
        try:
            t_inf = time.perf_counter()
            action = self.policy(obs)
            self.telemetry.inference.append(time.perf_counter() - t_inf)
            if not np.isfinite(action).all():
                raise ValueError("the actor returned NaN or Inf")
        except Exception as e:  # any inference failure ends in the safe action
            self._fault(f"inference error: {e}")
            return
        dt = self.period
        cmd = self.safety.filter(action, now, dt)
        elapsed = time.perf_counter() - t0
        if elapsed > self.period:
            self.telemetry.overruns += 1
            if self.p("overrun_is_fault"):
                self._fault(f"overrun: step took {elapsed * 1e3:.1f} ms of a {self.period * 1e3:.1f} ms period")
                return
        self._publish(cmd, self._last_state_stamp)
        if self._last_state_rx:
            self.telemetry.latency.append(time.monotonic() - self._last_state_rx)
        self.telemetry.steps += 1
        if self.telemetry.steps % self._status_every == 0:
            self.publish_status()

    def _publish(self, cmd: np.ndarray, state_stamp: Any) -> None:
        if "cmd" not in self._pubs:
            return
        values = [float(x) for x in cmd]
        self.last_command = np.asarray(values)
        if self.p("command_type") == "joint_trajectory":
            from builtin_interfaces.msg import Duration
            from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

            m = JointTrajectory()
            m.joint_names = list(self.action_joints)
            pt = JointTrajectoryPoint()
            pt.positions = values
            pt.time_from_start = Duration(sec=0, nanosec=int(self.period * 1e9))
            m.points = [pt]
            self._pubs["cmd"].publish(m)
        else:
            self._pubs["cmd"].publish(Float64MultiArray(data=values))
        s = JointState()
        if state_stamp is not None:
            s.header.stamp = state_stamp  # the measurement this command answers
        s.name = list(self.action_joints)
        kinds = self.safety.kinds
        s.position = [v if k == "position" else 0.0 for v, k in zip(values, kinds, strict=True)]
        s.effort = [v if k == "effort" else 0.0 for v, k in zip(values, kinds, strict=True)]
        self._pubs["stamped"].publish(s)

    def status(self) -> dict[str, Any]:
        age = time.monotonic() - self._last_state_rx if self._last_state_rx else None
        return {"mode": self.safety.mode if self.safety else "unconfigured",
                "fault": self.safety.fault_reason if self.safety else "", "estop": self.estop,
                "state_age_ms": None if age is None else age * 1e3, **self.telemetry.summary()}

    def flush_commands(self, timeout_s: float = 0.5) -> None:
        """Wait until RELIABLE subscribers have the last command (before the process exits)."""
        pub = self._pubs.get("cmd")
        if pub is None:
            return
        wait = getattr(pub, "wait_for_all_acked", None)
        if wait is not None:
            from rclpy.duration import Duration

            wait(Duration(seconds=timeout_s))
        else:
            time.sleep(min(timeout_s, 0.2))

    def publish_status(self) -> None:
        if "status" in self._pubs:
            self._pubs["status"].publish(String(data=json.dumps(self.status())))


def _init_without_signal_handlers(args: list[str]) -> None:
    """rclpy.init, keeping SIGINT/SIGTERM for ourselves: on either, the node first sends its safe
    action, then shuts down (rclpy's own handler would invalidate the context before that)."""
    try:
        from rclpy.signals import SignalHandlerOptions

        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except (ImportError, TypeError):  # an rclpy without the option: its handlers stay
        rclpy.init(args=args)


def main(argv: list[str] | None = None) -> int:
    import signal
    import sys

    args = list(sys.argv if argv is None else argv)
    _init_without_signal_handlers(args)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    node = PolicyNode()
    try:
        if node.p("autostart"):
            node.trigger_configure()
            deadline = time.monotonic() + 10.0
            while node.missing_joints() and time.monotonic() < deadline:
                rclpy.spin_once(node, timeout_sec=0.05)
            node.trigger_activate()
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    except Exception as e:  # e.g. rclpy's ExternalShutdownException: the context is gone
        if rclpy.ok():
            raise
        print(f"robotrl deploy: ROS shut down ({type(e).__name__})", file=sys.stderr)
    finally:
        if node._active and rclpy.ok():
            node.trigger_deactivate()  # publishes the safe action
            node.flush_commands()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0
