"""The ROS 2 policy node: a lifecycle node that runs an exported actor on a robot.

    robotrl deploy actor.onnx [--ros-args -p command_topic:=/arm_controller/commands ...]  (or python -m robotrl.deploy)

Lifecycle (drive it with `ros2 lifecycle set /robotrl_policy configure|activate|...`, or let
``autostart`` do configure + activate):
  configure   validate the parameters (every topic a valid ROS name, each role on its own topic) and the card
              (schema, bounds, rates, element definitions) and refuse with one line naming the problem; load
              the ONNX file, warm up the runtime, create the subscriptions (state BEST_EFFORT depth 1) and
              publishers (commands RELIABLE)
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
Once a second it checks the graph (`check_graph`): a publisher of another type on a topic it reads, a subscriber
of another type on its command topic, or a second commander is warned once, naming both.

Only numpy, onnxruntime and rclpy; written against the rclpy API of Humble (no newer calls), so it
runs the same on Humble, Jazzy and Kilted.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
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
from robotrl.kinds import KINDS
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
# every topic parameter and what the node does on it; "" is allowed only where it means "none"
_TOPIC_PARAMS = {"joint_states_topic": "the joint states it reads", "odom_topic": "the odometry it reads",
                 "imu_topic": "the IMU it reads", "goal_topic": "the goal it reads",
                 "cmd_vel_topic": "the velocity command it reads", "points_prefix": "the named points it reads",
                 "estop_topic": "the e-stop it reads", "command_topic": "the commands it publishes",
                 "status_topic": "the status it publishes",
                 "stamped_command_topic": "the stamped commands it publishes"}
_MAY_BE_EMPTY = ("imu_topic",)  # "": orientation and angular velocity from the odometry
_PUBLISHED = ("command_topic", "status_topic", "stamped_command_topic")
_TYPE_HINTS = {"cmd_vel_topic": " (cmd_vel_type:=twist reads geometry_msgs/msg/Twist, twist_stamped TwistStamped)",
               "command_topic": " (command_type:=float64_multi_array publishes std_msgs/msg/Float64MultiArray, "
                                "joint_trajectory trajectory_msgs/msg/JointTrajectory)"}


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




def _rcl_reason(e: Exception) -> str:
    """rcl's own words, without its source locations (", at /project/src/rcl/....c:73") or a caret diagram."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    text = re.sub(r", at /\S+:\d+", "", text)
    return text.removeprefix("failed to resolve name: ").removeprefix("failed to initialize rcl: ").strip()


def type_name(msg_type: Any) -> str:
    """A message class's ROS type name as the graph reports it: geometry_msgs/msg/Twist."""
    return f"{msg_type.__module__.split('.')[0]}/msg/{msg_type.__name__}"


def _who(info: Any) -> str:
    """A graph endpoint's node, as ``ros2 node list`` names it (discovery may not know the name yet)."""
    if info.node_name.startswith("_NODE_"):
        return "a node"
    return "node " + (info.node_namespace.rstrip("/") + "/" + info.node_name)


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
        self.check_topic_names()  # before the status publisher: rclpy's InvalidTopicNameException is a traceback
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
        self._endpoints: list[tuple[str, str, str, str]] = []  # (parameter, topic, type, "pub" | "sub")
        self._graph_warned: set[tuple[str, str, str]] = set()
        self.graph_warnings: list[str] = []
        # status in every lifecycle state: a plain (not lifecycle-managed) publisher and its own timer
        self._status_pub = self.create_publisher(String, self.params["status_topic"], _qos("reliable"))
        self._status_timer = self.create_timer(1.0 / self.params["status_rate_hz"], self.publish_status)
        self._graph_timer = self.create_timer(1.0, self.check_graph)

    def resolve_topic(self, param: str, suffix: str = "") -> str:
        """The topic a topic parameter names (+ `suffix`), expanded (``~``, relative names) and remapped as rcl
        will; a ConfigError naming the parameter where it is not a valid ROS topic name."""
        try:
            resolve = getattr(self, "resolve_topic_name", None)
            if resolve is not None:
                return resolve(self.p(param) + suffix)
            from rclpy.expand_topic_name import expand_topic_name  # an rclpy without Node.resolve_topic_name
            from rclpy.validate_full_topic_name import validate_full_topic_name

            full = expand_topic_name(self.p(param) + suffix, self.get_name(), self.get_namespace())
            validate_full_topic_name(full)
            return full
        except Exception as e:  # rclpy raises RCLError, ValueError or InvalidTopicNameException, by version
            where = f" (as the prefix of {self.p(param) + suffix!r})" if suffix else ""
            raise ConfigError(f"parameter {param} {self.p(param)!r} is not a valid ROS topic name{where}: "
                              f"{_rcl_reason(e)}") from None

    def check_topic_names(self) -> None:
        """Every topic parameter, whether or not this card uses it: a valid ROS name after expansion."""
        for param in _TOPIC_PARAMS:
            if param in _MAY_BE_EMPTY and not self.p(param):
                continue
            self.resolve_topic(param, "NAME" if param == "points_prefix" else "")

    def _check_topics_in_use(self, uses: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The topic of each (parameter, suffix) this card makes the node use; a ConfigError naming both
        parameters where two roles land on one topic (the commands on /joint_states: the node would read its
        own commands as the robot's state)."""
        out: dict[tuple[str, str], str] = {}
        seen: dict[str, tuple[str, str]] = {}
        for param, suffix in uses:
            topic = self.resolve_topic(param, suffix)
            what = _TOPIC_PARAMS[param] + (f" ({suffix})" if suffix else "")
            if topic in seen:
                other, other_what = seen[topic]
                raise ConfigError(f"parameters {other} and {param} both name topic {topic}: one topic cannot carry "
                                  f"{other_what} and {what}; give each its own")
            seen[topic] = (param, what)
            out[(param, suffix)] = topic
        return out

    def _raw_params(self) -> dict[str, Any]:
        return {k: self.get_parameter(k).value for k in PARAMS}

    def p(self, name: str) -> Any:
        return self.params[name]

    # lifecycle -------------------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self._configure()
        except Exception as e:  # a ConfigError, CardError or ValueError names the problem; anything else is said too
            known = isinstance(e, (ConfigError, CardError, ValueError))
            self.config_error = str(e) if known else f"configuration failed: {type(e).__name__}: {_rcl_reason(e)}"
            if not self._autostarting:  # under autostart, main() says it once, on stderr, and exits 2
                self.get_logger().error(f"refusing to configure: {self.config_error}")
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
        generic = [e for e in spec["observation"] if KINDS[e["kind"]].robot is None]  # not measurable on a robot
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
        self.check_topic_names()
        b = self.builder
        uses = [("joint_states_topic", ""), ("estop_topic", ""), ("command_topic", ""), ("status_topic", ""),
                ("stamped_command_topic", ""), *([("cmd_vel_topic", "")] if b.need_command else []),
                *([("odom_topic", "")] if b.need_odom else []), *([("imu_topic", "")] if b.use_imu else []),
                *([("goal_topic", "")] if b.need_goal else []), *(("points_prefix", n) for n in b.points)]
        topics = self._check_topics_in_use(uses)
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
        self._endpoints = [(param, topic, self._topic_type(param), "pub" if param in _PUBLISHED else "sub")
                           for (param, _), topic in topics.items()]
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

    def _topic_type(self, param: str) -> str:
        """The ROS type name of what the node reads or publishes on a topic parameter's topic."""
        if param == "cmd_vel_topic":
            return "geometry_msgs/msg/TwistStamped" if self._stamped_cmd_vel else "geometry_msgs/msg/Twist"
        if param == "command_topic":
            return type_name(self._pubs["cmd"].msg_type)
        return {"joint_states_topic": "sensor_msgs/msg/JointState", "odom_topic": "nav_msgs/msg/Odometry",
                "imu_topic": "sensor_msgs/msg/Imu", "goal_topic": "geometry_msgs/msg/PointStamped",
                "points_prefix": "geometry_msgs/msg/PointStamped", "estop_topic": "std_msgs/msg/Bool",
                "status_topic": "std_msgs/msg/String", "stamped_command_topic": "sensor_msgs/msg/JointState"}[param]

    def check_graph(self) -> None:
        """What the graph says about the node's topics (once a second, and at activation), each warned once: a
        publisher of another type on a topic it reads (a Twist on /cmd_vel while cmd_vel_type is twist_stamped:
        its messages never arrive, and a walker just stands), a subscriber of another type on its command topic
        (the robot never gets a command), and another node publishing on its command topic (two commanders)."""
        for param, topic, ours, direction in self._endpoints:
            try:
                others = (self.get_publishers_info_by_topic(topic) if direction == "sub"
                          else self.get_subscriptions_info_by_topic(topic))
                writers = self.get_publishers_info_by_topic(topic) if param == "command_topic" else []
            except Exception:  # the context is shutting down
                return
            for info in others:
                if info.topic_type != ours:
                    verb, ours_verb = ("publishes", "reads") if direction == "sub" else ("subscribes as", "publishes")
                    self._graph_warning((topic, info.topic_type, ""),
                                        f"{topic}: {_who(info)} {verb} {info.topic_type}, but this node {ours_verb} "
                                        f"{ours} there ({param}): they do not connect{_TYPE_HINTS.get(param, '')}")
            if len(writers) > 1:  # (a node of this node's own name too: two robotrl_policy nodes)
                me = (self.get_name(), self.get_namespace())
                for info in [i for i in writers if (i.node_name, i.node_namespace) != me] or writers[1:]:
                    self._graph_warning((topic, "", _who(info)),
                                        f"{topic}: {_who(info)} also publishes there: two sources command one "
                                        "robot (another policy node or simulation in this ROS domain?)")

    def _graph_warning(self, key: tuple[str, str, str], text: str) -> None:
        if key not in self._graph_warned:
            self._graph_warned.add(key)
            self.graph_warnings.append(text)
            self.get_logger().warning(text)

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
        self.check_graph()
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
        self._subs, self._pubs, self._endpoints = [], {}, []

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
        if self.graph_warnings:
            out["topic_warnings"] = self.graph_warnings[-5:]
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


PARAMS_FILE_PLACEHOLDER = "/path/to/actor.onnx"  # deploy/config/policy.yaml's policy
PARAMS_FILE_FORM = "NODE_NAME: {ros__parameters: {name: value}}, as deploy/config/policy.yaml"
JSON_HINT = """-p "joint_limits:='{\\"elbow\\": [0, 1]}'\""""  # a YAML string holding the JSON, quoted for bash


# rcl's ROS arguments (after --ros-args): those that take a value, and the flags that stand alone
_ROS_ARG_VALUE = {"-p": "NAME:=VALUE", "--param": "NAME:=VALUE", "-r": "FROM:=TO", "--remap": "FROM:=TO",
                  "--params-file": "FILE", "--log-level": "LEVEL", "-e": "ENCLAVE", "--enclave": "ENCLAVE",
                  "--log-config-file": "FILE", "--log-file-name": "NAME"}
_ROS_ARG_FLAGS = ("--enable-rosout-logs", "--disable-rosout-logs", "--enable-stdout-logs", "--disable-stdout-logs",
                  "--enable-external-lib-logs", "--disable-external-lib-logs")


def ros_arg_pairs(args: list[str]) -> list[tuple[str, str]]:
    """The (flag, value) pairs of the ROS arguments in `args` (those after each ``--ros-args``, up to ``--``);
    a ConfigError for what rcl would refuse with a log line of its own before ours: a flag with nothing after it,
    a ``-p``/``-r`` that is not ``NAME:=VALUE`` or has an empty side."""
    out: list[tuple[str, str]] = []
    in_ros, i = False, 0
    while i < len(args):
        a = args[i]
        i += 1
        if a == "--ros-args":
            in_ros = True
        elif a == "--":
            in_ros = False
        elif in_ros and a in _ROS_ARG_VALUE:
            if i >= len(args) or args[i] in ("--", "--ros-args"):
                raise ConfigError(f"--ros-args: {a} at the end has no {_ROS_ARG_VALUE[a]} after it")
            value = args[i]
            i += 1
            if _ROS_ARG_VALUE[a].endswith(":=TO") or _ROS_ARG_VALUE[a].endswith(":=VALUE"):
                left, sep, right = value.partition(":=")
                if not sep or not left:
                    raise ConfigError(f"--ros-args: {a} {value!r} is not {_ROS_ARG_VALUE[a]}")
                if not right:
                    raise ConfigError(f"--ros-args: {a} {value!r} has nothing after ':='"
                                      + (f' (an empty string is -p "{left}:=\'\'")' if a in ("-p", "--param") else ""))
            out.append((a, value))
    return out


def check_ros_args(args: list[str]) -> None:
    """The ROS arguments rcl would refuse (with a line of its own before ours), each a ConfigError naming it: a
    flag without its value or ``NAME:=`` with nothing after it (`ros_arg_pairs`), a ``-p NAME:=VALUE`` value that
    is a YAML mapping or not YAML at all, e.g. unquoted JSON (with the quoting that works), and a
    ``--params-file`` that is not there or not YAML."""
    import os

    pairs = ros_arg_pairs(args)
    try:
        import yaml
    except ImportError:  # rcl will say it (main() keeps its log line off the terminal)
        return
    for flag, value in pairs:
        if flag == "--params-file":
            if not os.path.isfile(value):
                raise ConfigError(f"--params-file {value!r}: no such file" if not os.path.exists(value)
                                  else f"--params-file {value!r} is not a file")
            try:
                with open(value, encoding="utf-8") as f:
                    yaml.safe_load(f)
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
                mark = getattr(e, "problem_mark", None)
                why = (f"{getattr(e, 'problem', '') or 'YAML error'} at line {mark.line + 1}" if mark is not None
                       else str(e).splitlines()[0] if str(e) else type(e).__name__)
                raise ConfigError(f"--params-file {value!r} is not a YAML parameters file ({why}); its form: "
                                  f"{PARAMS_FILE_FORM}") from None
        if flag not in ("-p", "--param"):
            continue
        name, value = value.split(":=", 1)
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = {}
        if isinstance(parsed, dict) or (isinstance(parsed, list) and any(isinstance(x, (dict, list)) for x in parsed)):
            raise ConfigError(f"parameter {name}: {value!r} is not a ROS parameter value (a JSON object must be "
                              f"passed as a string: {JSON_HINT})")


def check_policy_argument(args: list[str], policy: str | None) -> None:
    """``robotrl deploy FILE --ros-args -p policy:=OTHER``: two actors named; refused, naming both (a params
    file's ``policy``, e.g. the shipped placeholder, is overridden by FILE as documented)."""
    if policy is None:
        return
    try:
        import yaml

        load = yaml.safe_load
    except ImportError:
        load = str
    for flag, value in ros_arg_pairs(args):
        name, _, given = value.partition(":=")
        if flag in ("-p", "--param") and name.split(":")[-1] == "policy":
            with contextlib.suppress(Exception):  # not YAML: compared as written
                given = str(load(given))
            if given != policy:
                raise ConfigError(f"two policies: the file argument {policy!r} and -p policy:={given!r}; give the "
                                  "actor once (the file argument)")


def _init_quietly(args: list[str]) -> None:
    """`init_without_signal_handlers`, with rcl's own log line about arguments it refuses ("[ERROR] [rcl]: Failed
    to parse global arguments", written to file descriptor 2 before the exception) kept off the terminal: the
    caller says it in one line. Anything else written there during init is passed on."""
    import os
    import sys
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (an embedding host): nothing to keep quiet
        init_without_signal_handlers(args)
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        failed = True
        try:
            init_without_signal_handlers(args)
            failed = False
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            said = tmp.read().decode(errors="replace")
            if failed:
                said = "".join(ln for ln in said.splitlines(keepends=True)
                               if "Failed to parse global arguments" not in ln)
            if said:
                sys.stderr.write(said)


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
        check_policy_argument(args, policy)
    except ConfigError as e:
        print(f"robotrl: error: {e}", file=sys.stderr)
        return 2
    try:
        _init_quietly(args)
    except Exception as e:  # rcl could not parse the --ros-args (its own log line was kept back)
        why = _rcl_reason(e)
        hint = (f"; a JSON or text value goes in quotes: {JSON_HINT}" if "parameter override" in why else
                f"; its form: {PARAMS_FILE_FORM}" if "params file" in why else "")
        print(f"robotrl: error: ROS arguments not understood ({why[:200]}){hint}", file=sys.stderr)
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

            given = node.p("policy")  # here only from a params file (-p policy:= is checked above)
            if given not in ("", policy, PARAMS_FILE_PLACEHOLDER):
                node.get_logger().warning(f"the params file's policy {given!r} is not used: the file argument "
                                          f"{policy!r} is")
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
