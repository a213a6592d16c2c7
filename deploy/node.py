"""The ROS 2 policy node: a lifecycle node that runs an exported actor on a robot.

    robotrl deploy actor.onnx [--ros-args -p command_topic:=/arm_controller/commands ...]  (or python -m robotrl.deploy)

Lifecycle (drive it with `ros2 lifecycle set /robotrl_policy configure|activate|...`, or let
``autostart`` do configure + activate):
  configure   validate the parameters and the card (schema, bounds, rates, element definitions) and
              refuse with one line naming the problem; load the ONNX file, warm up the runtime,
              create the subscriptions (state BEST_EFFORT depth 1) and publishers (commands RELIABLE)
  activate    refuse, naming them, while any source the card needs is missing or stale (joint states
              covering the card's joints, odometry/IMU, goal, named points) or the e-stop is asserted;
              capture the measured pose and start the soft-start ramp. Under ``autostart`` the node
              waits up to ``activation_timeout_s`` (10 s) for every source, then activates, or says
              what is missing and stays inactive (activate it through its lifecycle later)
  deactivate  publish the safe action, stop the loop
Every control step (a fixed-period timer, or on each JointState with ``trigger:=state``) assembles
the observation by joint name (`ObservationBuilder`), runs the actor, and sends the result through
the `SafetyFilter`. A fault puts the node in its safe action, latched until it is deactivated and
activated again:
  stale input      joint states, odometry, IMU or a named point older than ``watchdog_s`` (default
                   three control periods); a goal older than ``goal_timeout_s`` (default 0: a goal,
                   once received, stays valid until the next one: it may be sent once). A velocity
                   command (/cmd_vel) older than ``cmd_vel_timeout_s`` (0.5 s), or none yet, is not
                   a fault: the command is zero, and a walking policy stands
  sensor fault     NaN/Inf, a value beyond 32-bit float range, a joint position outside the card's
                   joint range by more than ``range_margin``, a joint velocity above ``max_joint_speed``
                   or a position jump faster than it; the reading is refused, never stored
  inference error, NaN/Inf from the actor, an overrun (a step longer than its period), the e-stop
The safe action ``hold`` commands position joints to the last *good* measured pose (clamped to the
card's bounds and ``joint_limits``) and effort joints to 0; ``zero`` commands 0 everywhere.
``~/status`` (std_msgs/String, JSON) is published at ``status_rate_hz`` in every lifecycle state and
at once whenever the mode or fault changes; ``~/command_stamped`` (sensor_msgs/JointState) repeats
every command with the stamp of the JointState it answers (positions in ``position``, efforts in
``effort``). SIGINT/SIGTERM stop the node within ~0.1 s in every state (active: after the safe action).

Only numpy, onnxruntime and rclpy; written against the rclpy API of Humble (no newer calls), so it
runs the same on Humble, Jazzy and Kilted.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections import deque
from typing import Any

import numpy as np
import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String

from robotrl.deploy.observation import BadInput, MissingInput, ObservationBuilder
from robotrl.deploy.runtime import CardError, OnnxPolicy
from robotrl.deploy.safety import SafetyConfig, SafetyFilter
from robotrl.errors import shorten_numbers
from robotrl.spec import finite_number

PARAMS: dict[str, Any] = {
    "policy": "",                      # path of actor.onnx, or pretrained:NAME
    "rate_hz": 0.0,                    # control rate; 0: the card's control period (another rate: a warning)
    "trigger": "timer",                # timer: fixed-period loop; state: compute on each JointState
    "sync_stamps": False,              # trigger=state: wait until every source carries the JointState's stamp
    "joint_states_topic": "/joint_states",
    "odom_topic": "/odom",
    "imu_topic": "",                   # sensor_msgs/Imu for orientation + angular velocity ("": from odometry)
    "goal_topic": "/goal",
    "goal_reliability": "reliable",    # of the goal subscription; best_effort to match a best-effort publisher
    "cmd_vel_topic": "/cmd_vel",        # the velocity command, where the card has one
    "cmd_vel_type": "twist",           # geometry_msgs/Twist, or twist_stamped (TwistStamped, as Jazzy's nav2 sends)
    "points_prefix": "/points/",       # a card point NAME is read from <prefix>NAME (PointStamped)
    "command_topic": "/policy_controller/commands",
    "command_type": "float64_multi_array",  # or joint_trajectory
    "estop_topic": "/estop",
    "status_topic": "~/status",
    "stamped_command_topic": "~/command_stamped",
    "ramp_s": 1.0,
    "max_rate": 0.0,                   # command units per second; 0: no rate limit
    "watchdog_s": 0.0,                 # measurements older than this are stale; 0: three control periods
    "goal_timeout_s": 0.0,             # a goal older than this is stale; 0: a goal stays valid until replaced
    "cmd_vel_timeout_s": 0.5,          # a /cmd_vel older than this (or none yet) means zero: stand; 0: never stale
    "safe_action": "hold",             # hold | zero
    "joint_limits": "",                # JSON {"joint": [low, high]}: position commands are clamped to these too
    "range_margin": 0.5,               # a joint reading this far (rad or m) outside its range is a sensor fault
    "max_joint_speed": 100.0,          # faster (rad/s or m/s, or an equivalent jump) is a sensor fault; 0: off
    "state_reliability": "best_effort",
    "command_reliability": "reliable",
    "autostart": False,                # configure and activate at start-up
    "activation_timeout_s": 10.0,      # autostart: how long to wait for every source; 0: for ever
    "status_rate_hz": 10.0,            # ~/status in every state
    "overrun_is_fault": True,          # a step longer than the period -> safe action (off for lockstep sims)
}
_NONNEGATIVE = ("rate_hz", "ramp_s", "max_rate", "watchdog_s", "goal_timeout_s", "cmd_vel_timeout_s", "range_margin",
                "max_joint_speed", "activation_timeout_s")
_CHOICES = {"trigger": ("timer", "state"), "command_type": ("float64_multi_array", "joint_trajectory"),
            "safe_action": ("hold", "zero"), "state_reliability": ("best_effort", "reliable"),
            "command_reliability": ("reliable", "best_effort"), "goal_reliability": ("reliable", "best_effort"),
            "cmd_vel_type": ("twist", "twist_stamped")}


_ROS_PARAMS = ("use_sim_time", "start_type_description_service", "start_parameter_event_publisher")


class ConfigError(ValueError):
    """A parameter or the policy file is unusable; the message names it (a 400-digit number shortened)."""

    def __str__(self) -> str:
        return shorten_numbers(super().__str__())


def check_params(values: dict[str, Any]) -> dict[str, Any]:
    """The node's parameters, type-checked (an integer where a number is expected is fine: ``rate_hz:=100``)."""
    out = {}
    for name, default in PARAMS.items():
        v = values.get(name, default)
        if isinstance(default, bool):
            if not isinstance(v, bool):
                raise ConfigError(f"parameter {name} must be true or false, got {v!r}")
        elif isinstance(default, float):
            if not finite_number(v):
                raise ConfigError(f"parameter {name} must be a finite number, got {v!r}")
            v = float(v)
            if name in _NONNEGATIVE and v < 0:
                raise ConfigError(f"parameter {name} must be >= 0, got {v:g}")
            if name == "status_rate_hz" and not 0 < v <= 1000:
                raise ConfigError(f"parameter status_rate_hz must be in (0, 1000], got {v:g}")
        elif not isinstance(v, str):
            raise ConfigError(f"parameter {name} must be a string, got {v!r}")
        if name in _CHOICES and v not in _CHOICES[name]:
            raise ConfigError(f"parameter {name} must be one of {', '.join(_CHOICES[name])}, got {v!r}")
        out[name] = v
    return out


def parse_joint_limits(text: str) -> dict[str, tuple[float, float]] | None:
    if not text:
        return None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"parameter joint_limits is not JSON: {e}") from None
    if not isinstance(d, dict):
        raise ConfigError('parameter joint_limits must be a JSON object {"joint": [low, high]}')
    out = {}
    for k, r in d.items():
        if not (isinstance(r, list) and len(r) == 2 and all(finite_number(x) for x in r) and r[0] < r[1]):
            raise ConfigError(f"parameter joint_limits[{k!r}] must be [low, high], finite, low < high; got {r!r}")
        out[k] = (float(r[0]), float(r[1]))
    return out


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
        dynamic = ParameterDescriptor(dynamic_typing=True)  # types are checked by check_params, with one line
        for k, v in PARAMS.items():
            self.declare_parameter(k, v, dynamic)
        unknown = sorted(k for k in getattr(self, "_parameter_overrides", {}) or {}
                         if k not in PARAMS and k not in _ROS_PARAMS and not k.startswith("qos_overrides."))
        if unknown:  # a misspelt safety setting must not be ignored silently
            raise ConfigError(f"unknown parameter(s) {', '.join(unknown)}; the node's parameters are "
                              f"{', '.join(PARAMS)}")
        self.params = check_params(self._raw_params())  # raises ConfigError
        parse_joint_limits(self.params["joint_limits"])
        self._autostarting = False
        self.policy: OnnxPolicy | None = None
        self.builder: ObservationBuilder | None = None
        self.safety: SafetyFilter | None = None
        self.telemetry = Telemetry()
        self.estop = False
        self.seen_joints: set[str] = set()
        self.lifecycle = "unconfigured"
        self.config_error = ""
        self.bad_input = ""                # the last refused reading (while not active, it blocks nothing)
        self._timer = None
        self._subs: list[Any] = []
        self._pubs: dict[str, Any] = {}
        self._active = False
        self._last_tick: float | None = None
        self._last_state_rx = 0.0
        self._last_state_stamp = None
        self._reported: tuple[str, str, bool] | None = None
        self.last_command: np.ndarray | None = None
        self._src_stamp: dict[str, tuple[int, int]] = {}
        self._done_stamp: tuple[int, int] | None = None
        self._sources: list[str] = []
        # status in every lifecycle state: a plain (not lifecycle-managed) publisher and its own timer
        self._status_pub = self.create_publisher(String, self.params["status_topic"], _qos("reliable"))
        self._status_timer = self.create_timer(1.0 / self.params["status_rate_hz"], self.publish_status)

    def _raw_params(self) -> dict[str, Any]:
        return {k: self.get_parameter(k).value for k in PARAMS}

    def p(self, name: str) -> Any:
        return self.params[name]

    # lifecycle -------------------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self._configure()
        except (ConfigError, CardError, ValueError) as e:
            self.config_error = str(e)
            if not self._autostarting:  # under autostart, main() says it once, on stderr, and exits 2
                self.get_logger().error(f"refusing to configure: {e}")
            self.policy = self.builder = self.safety = None
            self._destroy_io()
            self.publish_status()
            return TransitionCallbackReturn.FAILURE
        self.config_error = ""
        self.lifecycle = "inactive"
        self.publish_status()
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        self.params = check_params(self._raw_params())  # parameters may have been set since start-up
        self.policy = OnnxPolicy(self.p("policy"))  # validates the card (schema, bounds, rates, elements)
        card = self.policy.card
        spec = card["spec"]
        generic = [e for e in spec["observation"] if e["kind"] == "obs"]
        if generic or not spec.get("deployable", False):
            raise ConfigError(f"{self.policy.path}: task {card['task_id']!r} has unnamed observation elements "
                              "(a plain Gymnasium id); train on a robotrl/ task to deploy")
        trained = 1.0 / float(card["control_period"])
        rate = self.p("rate_hz") or trained
        if not 0 < rate <= 10000:
            raise ConfigError(f"control rate {rate:g} Hz is outside (0, 10000]")
        if abs(rate / trained - 1.0) > 0.01:  # allowed (latency measurements, a controller's fixed rate), not silent
            self.get_logger().warning(f"rate_hz {rate:g} Hz is not the rate the policy was trained at, {trained:g} Hz "
                                      f"(the card's control period, {float(card['control_period']):g} s): its "
                                      "velocities, previous actions and targets assume that period (rate_hz:=0 "
                                      "runs at the card's rate)")
        self.period = 1.0 / rate
        self.watchdog = self.p("watchdog_s") or 3.0 * self.period
        if self.watchdog < self.period:
            raise ConfigError(f"watchdog_s {self.watchdog:g} is shorter than one control period ({self.period:g} s): "
                              "every step would be stale")
        self.goal_max_age = self.p("goal_timeout_s") or None
        self.command_max_age = self.p("cmd_vel_timeout_s") or None
        cfg = SafetyConfig(ramp_s=self.p("ramp_s"), max_rate=self.p("max_rate") or None,
                           safe_action=self.p("safe_action"))
        self.action_joints = [a["joint"] for a in spec["action"]]
        limits = parse_joint_limits(self.p("joint_limits"))
        self.safety = SafetyFilter(spec["action"], cfg, joint_limits=limits)  # ValueError names a bad limit
        # a joint's plausible range: the card's (from the model), else a position joint's command bounds,
        # else the joint_limits parameter
        ranges = {a["joint"]: (a["low"], a["high"]) for a in spec["action"] if a["kind"] == "position"}
        ranges.update(limits or {})
        ranges.update({k: tuple(v) for k, v in (spec.get("joint_ranges") or {}).items()})
        self.builder = ObservationBuilder(spec["observation"], self.action_joints, use_imu=bool(self.p("imu_topic")),
                                          joint_ranges=ranges, range_margin=self.p("range_margin"),
                                          max_joint_speed=self.p("max_joint_speed"), period=self.period)
        zeros = np.zeros(self.policy.obs_dim)
        for _ in range(200):  # warm-up: first calls allocate
            self.policy(zeros)
        state_qos, cmd_qos = _qos(self.p("state_reliability")), _qos(self.p("command_reliability"))
        self._subs = []
        self._stamped_cmd_vel = self.builder.need_command and self.p("cmd_vel_type") == "twist_stamped"
        if self.builder.need_command:  # first: in one wake-up the executor serves subscriptions in this order,
            from geometry_msgs.msg import Twist, TwistStamped  # so a command and its state are read in that order

            if self._stamped_cmd_vel:
                self._subs.append(self.create_subscription(TwistStamped, self.p("cmd_vel_topic"),
                                                           self._on_cmd_vel_stamped, _qos("best_effort")))
            else:
                self._subs.append(self.create_subscription(Twist, self.p("cmd_vel_topic"), self._on_cmd_vel,
                                                           _qos("best_effort")))
        self._subs.append(self.create_subscription(JointState, self.p("joint_states_topic"), self._on_joint_state,
                                                   state_qos))
        self._subs.append(self.create_subscription(Bool, self.p("estop_topic"), self._on_estop, _qos("reliable")))
        if self.builder.need_odom:
            from nav_msgs.msg import Odometry

            self._subs.append(self.create_subscription(Odometry, self.p("odom_topic"), self._on_odom, state_qos))
        if self.builder.use_imu:
            from sensor_msgs.msg import Imu

            self._subs.append(self.create_subscription(Imu, self.p("imu_topic"), self._on_imu, state_qos))
        if self.builder.need_goal or self.builder.points:
            from geometry_msgs.msg import PointStamped
        if self.builder.need_goal:  # RELIABLE (ROS's default for publishers): a goal sent once must arrive
            self._subs.append(self.create_subscription(PointStamped, self.p("goal_topic"), self._on_goal,
                                                       _qos(self.p("goal_reliability"))))
        low = np.array([a["low"] for a in spec["action"]], dtype=np.float64)
        high = np.array([a["high"] for a in spec["action"]], dtype=np.float64)
        self._act_low, self._act_high, self._act_offset, self._act_scale = low, high, (high + low) / 2, (high - low) / 2
        for name in self.builder.points:
            self._subs.append(self.create_subscription(
                PointStamped, self.p("points_prefix") + name, lambda m, n=name: self._on_point(n, m), state_qos))
        if self.p("command_type") == "joint_trajectory":
            from trajectory_msgs.msg import JointTrajectory

            self._pubs["cmd"] = self.create_publisher(JointTrajectory, self.p("command_topic"), cmd_qos)
        else:
            self._pubs["cmd"] = self.create_publisher(Float64MultiArray, self.p("command_topic"), cmd_qos)
        self._pubs["stamped"] = self.create_publisher(JointState, self.p("stamped_command_topic"), cmd_qos)
        self._sources = ["joint_states", *(["odom"] if self.builder.need_odom else []),
                         *(["imu"] if self.builder.use_imu else []),
                         *(["goal"] if self.builder.need_goal else []), *(f"point:{n}" for n in self.builder.points),
                         *(["cmd_vel"] if self._stamped_cmd_vel else [])]  # sync_stamps waits for a stamped command
        self.get_logger().info(f"configured {card['task_id']} ({card['algo']}) at {rate:.0f} Hz, "
                               f"watchdog {self.watchdog * 1e3:.0f} ms, trigger {self.p('trigger')}")
        measured = [s for s in self._sources if s not in ("joint_states", "goal", "cmd_vel")]
        if self.p("trigger") == "state" and not self.p("sync_stamps") and measured:
            self.get_logger().warning(f"trigger=state steps on each joint state; {', '.join(measured)} may arrive "
                                      "after it and be a step old (sync_stamps:=true waits for the joint state's "
                                      "stamp on each, where the robot stamps them alike)")

    def missing_joints(self) -> list[str]:
        """The card's joints (observed and commanded) that the robot's JointState has not named."""
        return sorted((set(self.builder.joints) | set(self.action_joints)) - self.seen_joints)

    def activation_blockers(self) -> list[str]:
        """What activation waits for: every source the card needs, fresh, and the e-stop released."""
        if self.builder is None:
            return ["configuration"]
        out = []
        missing = self.missing_joints()
        if missing:
            out.append("joint states naming " + ", ".join(missing))
        seen = set(missing)
        out += [m for m in self.builder.missing(time.monotonic(), self.watchdog, self.goal_max_age)
                if m.removeprefix("joint ") not in seen]
        if self.estop:
            out.append("the e-stop to be released")
        return out

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        blockers = self.activation_blockers()
        if blockers:
            missing = self.missing_joints() if self.builder is not None else []
            if missing:
                self.get_logger().error(f"refusing to activate: the robot's joint states lack {', '.join(missing)}")
            why = "; ".join(blockers) + (f" (last refused reading: {self.bad_input})" if self.bad_input else "")
            self.get_logger().error(f"refusing to activate: waiting for {why}")
            return TransitionCallbackReturn.FAILURE
        now = time.monotonic()
        self.builder.set_prev_action(np.zeros(len(self.action_joints)))  # an activation starts an "episode"
        self.safety.activate(now, self._measured_action_joints())
        self.telemetry = Telemetry()
        self._last_tick = None
        self._done_stamp = None
        self.bad_input = ""
        self._active = True
        self.lifecycle = "active"
        self._timer = self.create_timer(self.period, self._on_timer)
        self.get_logger().info("active")
        self._report_if_changed()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        self._publish(self.safety.deactivate(self._measured_action_joints()), None)
        self.lifecycle = "inactive"
        self.publish_status()
        return TransitionCallbackReturn.SUCCESS

    def _destroy_io(self) -> None:
        for s in self._subs:
            self.destroy_subscription(s)
        for pub in self._pubs.values():
            self.destroy_publisher(pub)
        self._subs, self._pubs = [], {}

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._destroy_io()
        self.policy = None
        self.lifecycle = "unconfigured"
        self.publish_status()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        if self._active:
            self.on_deactivate(state)
        self.lifecycle = "finalized"
        return TransitionCallbackReturn.SUCCESS

    # inputs ---------------------------------------------------------------------------------------
    def _refused(self, source: str, e: BadInput) -> None:
        """A reading failed its plausibility check: nothing was stored; while active it is a sensor fault."""
        self.bad_input = f"{source}: {e}"
        if self._active:
            self._fault(f"sensor fault: {e}")

    def _on_joint_state(self, msg: JointState) -> None:
        now = time.monotonic()
        try:
            self.builder.joint_state(msg.name, msg.position, msg.velocity, now)
        except BadInput as e:
            self._refused("joint_states", e)
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
        try:
            self.builder.base_state((p.x, p.y, p.z), (q.x, q.y, q.z, q.w), (v.x, v.y, v.z), (w.x, w.y, w.z), now)
        except BadInput as e:
            self._refused("odom", e)
            return
        self._arrived("odom", msg, now)

    def _on_imu(self, msg: Any) -> None:
        q, w = msg.orientation, msg.angular_velocity
        now = time.monotonic()
        try:
            self.builder.imu((q.x, q.y, q.z, q.w), (w.x, w.y, w.z), now)
        except BadInput as e:
            self._refused("imu", e)
            return
        self._arrived("imu", msg, now)

    def _on_goal(self, msg: Any) -> None:
        now = time.monotonic()
        try:
            self.builder.goal((msg.point.x, msg.point.y, msg.point.z), now)
        except BadInput as e:
            self._refused("goal", e)
            return
        self._arrived("goal", msg, now)

    def _on_point(self, name: str, msg: Any) -> None:
        now = time.monotonic()
        try:
            self.builder.point(name, (msg.point.x, msg.point.y, msg.point.z), now)
        except BadInput as e:
            self._refused(f"point {name}", e)
            return
        self._arrived(f"point:{name}", msg, now)

    def _on_cmd_vel(self, msg: Any) -> None:
        """The operator's command: clamped to the card's ranges; a garbled one is refused, not a fault
        (the last good command stays in force until it goes stale, then zero)."""
        try:
            self.builder.velocity_command(msg.linear.x, msg.linear.y, msg.angular.z, time.monotonic())
        except BadInput as e:
            self.bad_input = f"cmd_vel: {e}"

    def _on_cmd_vel_stamped(self, msg: Any) -> None:
        self._on_cmd_vel(msg.twist)
        self._arrived("cmd_vel", msg, time.monotonic())

    def _on_estop(self, msg: Bool) -> None:
        changed = bool(msg.data) != self.estop
        self.estop = bool(msg.data)
        if self.estop and self._active:
            self._step(time.monotonic())  # act now, not at the next tick
        elif changed:
            self.publish_status()

    # the loop -------------------------------------------------------------------------------------
    def _measured_action_joints(self) -> np.ndarray | None:
        """The last *good* measured position of each action joint (NaN where none has come)."""
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
            obs = self.builder.build(now, self.watchdog, self.goal_max_age, self.command_max_age)
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
        if self.builder.need_prev_action:  # what the policy chose, within the card's bounds, normalised
            self.builder.set_prev_action((np.clip(action, self._act_low, self._act_high)
                                          - self._act_offset) / self._act_scale)
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
        self._report_if_changed()

    def _report_if_changed(self) -> None:
        """Status at once when the mode, the fault or the e-stop changes (else at status_rate_hz)."""
        key = (self.safety.mode if self.safety else "unconfigured",
               self.safety.fault_reason if self.safety else "", self.estop)
        if key != self._reported:
            self.publish_status()

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        age = now - self._last_state_rx if self._last_state_rx else None
        out = {"state": self.lifecycle, "mode": self.safety.mode if self.safety else "unconfigured",
               "fault": self.safety.fault_reason if self.safety else "", "estop": self.estop,
               "state_age_ms": None if age is None else age * 1e3}
        if self.config_error:
            out["config_error"] = self.config_error
        if self.bad_input:
            out["refused_reading"] = self.bad_input
        if self.builder is not None and self.builder.need_command:
            out["velocity_command"] = self.builder.current_command(now, self.command_max_age)
        if self.builder is not None and not self._active:
            out["waiting_for"] = self.activation_blockers()
        return {**out, **self.telemetry.summary()}

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
        status = self.status()
        self._reported = (status["mode"], status["fault"], status["estop"])
        with contextlib.suppress(Exception):  # the context is shutting down: nothing left to report to
            self._status_pub.publish(String(data=json.dumps(status)))

    def autostart(self, executor: Any, stopping: Any = lambda: False) -> bool:
        """Configure, wait up to ``activation_timeout_s`` for every source the card needs, activate.
        Returns False (the node stays inactive, having said what is missing) when they do not all come,
        or when `stopping()` says a signal came."""
        self._autostarting = True
        try:
            if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise ConfigError(self.config_error or "configuration failed")
        finally:
            self._autostarting = False
        timeout = self.p("activation_timeout_s")
        deadline = time.monotonic() + timeout if timeout > 0 else math.inf
        while self.activation_blockers():
            if stopping():
                return False
            if time.monotonic() >= deadline:
                self.get_logger().error(
                    f"not activated: after {timeout:g} s still waiting for {'; '.join(self.activation_blockers())}"
                    + (f" (last refused reading: {self.bad_input})" if self.bad_input else "")
                    + "; the node stays inactive (activate it through its lifecycle once they arrive)")
                self.publish_status()
                return False
            executor.spin_once(timeout_sec=0.05)
        return self.trigger_activate() == TransitionCallbackReturn.SUCCESS


def init_without_signal_handlers(args: list[str]) -> None:
    """rclpy.init, keeping SIGINT/SIGTERM for ourselves: on either, the node first sends its safe
    action, then shuts down (rclpy's own handler would invalidate the context before that)."""
    try:
        from rclpy.signals import SignalHandlerOptions

        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except (ImportError, TypeError):  # an rclpy without the option: its handlers stay
        rclpy.init(args=args)


JSON_HINT = """-p "joint_limits:='{\\"elbow\\": [0, 1]}'\""""  # a YAML string holding the JSON, quoted for bash


def check_ros_args(args: list[str]) -> None:
    """The ROS arguments rcl would refuse (with a line of its own before ours): a ``-p NAME:=VALUE`` value that
    is a YAML mapping or not YAML at all, e.g. unquoted JSON (ConfigError with the quoting that works), and a
    ``--params-file`` that is not there."""
    try:
        import yaml
    except ImportError:  # rcl will say it, in two lines
        return
    import os

    for i, a in enumerate(args[:-1]):
        if a == "--params-file" and not os.path.isfile(args[i + 1]):
            raise ConfigError(f"--params-file {args[i + 1]!r}: no such file" if not os.path.exists(args[i + 1])
                              else f"--params-file {args[i + 1]!r} is not a file")
        if a not in ("-p", "--param") or ":=" not in args[i + 1]:
            continue
        name, value = args[i + 1].split(":=", 1)
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = {}
        if isinstance(parsed, dict) or (isinstance(parsed, list) and any(isinstance(x, (dict, list)) for x in parsed)):
            raise ConfigError(f"parameter {name}: {value!r} is not a ROS parameter value (a JSON object must be "
                              f"passed as a string: {JSON_HINT})")


def main(argv: list[str] | None = None, *, policy: str | None = None, autostart_default: bool = False) -> int:
    """Run the node until SIGINT/SIGTERM. Exit 0 on a signal, 2 (one line on stderr) when the
    parameters or the policy are unusable under autostart.

    `policy` (``robotrl deploy FILE``) is set over whatever the parameters say (a params file's
    placeholder must not win); `autostart_default` applies when no parameter names ``autostart``
    (rcl's own precedence between ``-p`` and ``--params-file`` depends on how the file names the node,
    so neither is passed as a ROS argument).

    A signal only sets a flag (an exception raised inside rclpy's C++ calls can surface as a garbled
    RuntimeError); the executor waits at most 50 ms at a time, so the flag is seen promptly in every
    lifecycle state (Python runs signal handlers only between waits).
    """
    import signal
    import sys

    from rclpy.executors import SingleThreadedExecutor

    args = list(sys.argv if argv is None else argv)
    try:
        check_ros_args(args)
    except ConfigError as e:
        print(f"robotrl: error: {e}", file=sys.stderr)
        return 2
    try:
        init_without_signal_handlers(args)
    except Exception as e:  # rcl could not parse the --ros-args (it has logged where)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"robotrl: error: ROS arguments not understood ({first[:160]}); a JSON or text value goes in "
              f"quotes: {JSON_HINT}", file=sys.stderr)
        return 2

    stopping = {"signal": False}

    def stop(signum: int, frame: Any) -> None:
        stopping["signal"] = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    node = None
    code = 0
    try:
        node = PolicyNode()
        if policy is not None:
            from rclpy.parameter import Parameter

            node.set_parameters([Parameter("policy", value=policy)])
            node.params = check_params(node._raw_params())
        autostart = node.p("autostart") if "autostart" in (getattr(node, "_parameter_overrides", {}) or {}) \
            else autostart_default
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        if autostart:
            node.autostart(executor, lambda: stopping["signal"])
        while rclpy.ok() and not stopping["signal"]:
            executor.spin_once(timeout_sec=0.05)
    except KeyboardInterrupt:  # an rclpy that installed its own handler
        pass
    except ConfigError as e:
        print(f"robotrl: error: {e}", file=sys.stderr)
        code = 2
    except Exception as e:  # e.g. rclpy's ExternalShutdownException: the context is gone
        if rclpy.ok():
            raise
        print(f"robotrl deploy: ROS shut down ({type(e).__name__})", file=sys.stderr)
    finally:
        if node is not None:
            if node._active and rclpy.ok():
                node.trigger_deactivate()  # publishes the safe action
                node.flush_commands()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code
