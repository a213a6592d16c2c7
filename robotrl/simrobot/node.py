"""A simulated robot behind ROS 2: MuJoCo running a robotrl task, speaking the topics a robot speaks.

    robotrl sim-robot TASK [--episodes N] [--lockstep]

Publishes ``/joint_states`` (every joint the task's card names), ``/odom`` (nav_msgs/Odometry: base
pose, twist in the base frame) and ``/imu`` (sensor_msgs/Imu: orientation, angular velocity in the
base frame) where the card has base elements, ``/goal`` (PointStamped) and
``/points/NAME`` for named bodies; subscribes to the command topic (std_msgs/Float64MultiArray in
the order of the card's action joints, RELIABLE, like a ros2_control forward command controller).
A velocity-tracking task takes its command from ``/cmd_vel`` (geometry_msgs/Twist) once one arrives.
It applies the latest command at every control step and reports each episode's return on
``/sim_robot/episodes`` (std_msgs/String, JSON) and in its log.

Two clocks:
  free-running (default)  steps at the task's control rate in wall time, like hardware;
  lockstep                publishes a state, waits for the command that answers it (matched by the
                          header stamp of the node's stamped command copy), then steps: as fast as
                          the round trip allows, and deterministic, for the sim-to-sim check.
Episodes are seeded ``seed + k`` as in `robotrl eval`, so returns compare episode by episode.
It refuses to run beside another publisher of ``/joint_states`` in its domain (`wait_for_rivals`).

Imports mujoco and gymnasium (the simulation side); `import robotrl.deploy` does not load it.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from robotrl.simrobot.sensors import RobotSensors

_UNNAMED = "a node not yet named"


def _who_name(namespace: str, name: str) -> str:
    return namespace.rstrip("/") + "/" + name


def _who(info: Any) -> str:
    """A graph endpoint's node (discovery learns an endpoint a moment before its node's name)."""
    return _UNNAMED if info.node_name.startswith("_NODE_") else _who_name(info.node_namespace, info.node_name)


def domain_id(context: Any = None) -> int:
    """The ROS domain a context (default: rclpy's) runs in."""
    import os

    import rclpy

    try:
        return int((context or rclpy.get_default_context()).get_domain_id())
    except Exception:  # an rclpy without Context.get_domain_id: the environment's, as rcl reads it
        return int(os.environ.get("ROS_DOMAIN_ID") or 0)


def rivals_error(rivals: list[str], domain: int, remedy: str) -> str:
    """The one line for a simulated robot that would share its topics with another robot."""
    return (f"another node already publishes /joint_states in ROS domain {domain} ({', '.join(sorted(rivals))}: "
            f"another simulated robot?); a policy node there would read and command both robots. Stop it, or "
            f"{remedy}")


class SimRobot(Node):
    def __init__(self, task: str, *, episodes: int = 10, seed: int = 0, lockstep: bool = False,
                 command_topic: str = "/policy_controller/commands",
                 stamped_command_topic: str = "/robotrl_policy/command_stamped",
                 state_reliability: str = "best_effort", name: str = "sim_robot", imu_topic: str = "/imu",
                 command_script: Any = None, env_kwargs: dict[str, Any] | None = None, **kwargs: Any):
        super().__init__(name, **kwargs)
        from geometry_msgs.msg import PointStamped
        from nav_msgs.msg import Odometry
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64MultiArray, String

        from robotrl.envs import make

        self._msgs = {"JointState": JointState, "Odometry": Odometry, "PointStamped": PointStamped,
                      "String": String}
        self.env = make(task, **(env_kwargs or {}))
        self.spec = self.env.get_wrapper_attr("task_spec").to_dict()
        self.period = float(self.spec["control_period"])
        self.sensors = RobotSensors(self.env.unwrapped.model, self.spec["observation"])
        self.action_joints = [a["joint"] for a in self.spec["action"]]
        self.kinds = [a["kind"] for a in self.spec["action"]]
        self.episodes, self.seed, self.lockstep = episodes, seed, lockstep
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.done = False
        rel = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}
        state_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=rel[state_reliability])
        cmd_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_js = self.create_publisher(JointState, "/joint_states", state_qos)
        self.pub_odom = self.create_publisher(Odometry, "/odom", state_qos) if self.sensors.has_base else None
        self.pub_imu = None
        if self.sensors.has_base:
            from sensor_msgs.msg import Imu

            self._msgs["Imu"] = Imu
            self.pub_imu = self.create_publisher(Imu, imu_topic, state_qos)
        self.cmd_vel_received = 0
        self.script = command_script  # sim2sim: this node is also the operator, publishing /cmd_vel on a script
        self.tracking: list[dict[str, Any]] = []
        if hasattr(self.env.unwrapped, "set_command"):  # a velocity-tracking task: the operator commands it
            from geometry_msgs.msg import Twist, TwistStamped

            self._msgs["Twist"] = Twist
            if command_script is None:
                self.create_subscription(Twist, "/cmd_vel", self._on_cmd_vel, state_qos)
            else:  # stamped with the state it goes with, so that a lockstep node pairs the two exactly
                from robotrl.envs.legged import script_steps

                self._msgs["TwistStamped"] = TwistStamped
                self.pub_cmd_vel = self.create_publisher(TwistStamped, "/cmd_vel", state_qos)
                self._script_steps = script_steps(command_script, self.period)
        self.pub_goal = self.create_publisher(PointStamped, "/goal", cmd_qos) \
            if self.sensors.goal_body is not None else None
        self.pub_points = {n: self.create_publisher(PointStamped, f"/points/{n}", state_qos)
                           for n in self.sensors.point_bodies}
        self.pub_episodes = self.create_publisher(String, "/sim_robot/episodes", cmd_qos)
        self.create_subscription(Float64MultiArray, command_topic, self._on_command, cmd_qos)
        if lockstep:
            self.create_subscription(JointState, stamped_command_topic, self._on_stamped_command, cmd_qos)
        self.command: np.ndarray | None = None
        self.commands_received = 0
        self._k = 0
        self._step_index = 0
        self._ep_return, self._ep_len = 0.0, 0
        self._reset()
        self._last_publish = 0.0
        self.timer = self.create_timer(self.period if not lockstep else 0.05, self._on_timer)
        self._rivals_warned: set[str] = set()
        self._waiting_for_rivals = False
        self.create_timer(1.0, self._watch_rivals)

    # another robot in this domain ---------------------------------------------------------------------
    def rivals(self) -> list[str]:
        """The other nodes that publish this robot's joint states in its ROS domain (another simulated robot, or a
        real robot's driver): a policy node there would read both robots' states and command both."""
        topic = self.resolve_topic_name("/joint_states")
        names = [_who(i) for i in self.get_publishers_info_by_topic(topic)]
        mine = _who_name(self.get_namespace(), self.get_name())
        if mine in names:
            names.remove(mine)  # our own publisher (a second one of our name is a rival)
        return names

    def _watch_rivals(self) -> None:
        """After start-up (DDS may take seconds to find a program long in the domain): each rival warned once."""
        if self._waiting_for_rivals:  # wait_for_rivals says it, once
            return
        with contextlib.suppress(Exception):  # the context is shutting down
            for who in self.rivals():
                if who not in self._rivals_warned and who != _UNNAMED:
                    self._rivals_warned.add(who)
                    self.get_logger().warning(f"{who} also publishes /joint_states in this ROS domain: a policy "
                                              "node here reads both robots' states (give each its own ROS_DOMAIN_ID)")

    def wait_for_rivals(self, spin_once: Callable[[float], None], seconds: float = 2.0) -> list[str]:
        """`rivals` after up to `seconds` of discovery, spinning with `spin_once` (DDS finds another participant on
        the machine in ~0.1 s, at times ~2.5 s: a later find is warned by `_watch_rivals`); the robot's own clock is
        held meanwhile (nothing is simulated or published)."""
        self.timer.cancel()
        self._waiting_for_rivals = True
        try:
            end = time.monotonic() + seconds
            while True:
                found, now = self.rivals(), time.monotonic()
                if (found and _UNNAMED not in found) or now >= end:  # (a name follows its endpoint within ~0.1 s)
                    return found
                if found:
                    end = min(end, now + 0.5)
                spin_once(0.05)
        finally:
            self._waiting_for_rivals = False
            self.timer.reset()

    # simulation -----------------------------------------------------------------------------------
    def _reset(self) -> None:
        self.env.reset(seed=self.seed + self._k)
        if self.script is not None:
            from robotrl.envs.legged import TrackingMeter

            self._meter = TrackingMeter(self.period)
        if self.cmd_vel_received and hasattr(self.env.unwrapped, "set_command"):
            self.env.unwrapped.set_command(*self._cmd_vel)  # the operator's command outlives the episode
        self._ep_return, self._ep_len = 0.0, 0
        self.command = None

    def _hold_command(self) -> np.ndarray:
        """Before the first command: position servos hold the current pose, motors are off."""
        names, q, _ = self.sensors.joint_state(self.env.unwrapped.data)
        pos = dict(zip(names, q, strict=True))
        return np.array([pos.get(j, 0.0) if k == "position" else 0.0
                         for j, k in zip(self.action_joints, self.kinds, strict=True)])

    def _advance(self, command: np.ndarray) -> None:
        _, r, term, trunc, info = self.env.step(command)
        self._ep_return += float(r)
        self._ep_len += 1
        self._step_index += 1
        if self.script is not None:
            self._meter.add(info, term)
            trunc = trunc or self._ep_len >= self._script_steps
            if term or trunc:
                self.tracking.append(self._meter.result())
        if term or trunc:
            self.returns.append(self._ep_return)
            self.lengths.append(self._ep_len)
            self.get_logger().info(f"episode {self._k}: return {self._ep_return:.2f} in {self._ep_len} steps")
            self.pub_episodes.publish(self._msgs["String"](data=json.dumps(
                {"episode": self._k, "return": self._ep_return, "length": self._ep_len})))
            self._k += 1
            if self._k >= self.episodes:
                self.done = True
                return
            self._reset()

    # ROS ------------------------------------------------------------------------------------------
    def _stamp(self) -> Any:
        # a unique stamp per published state: the simulation step counter as time
        from builtin_interfaces.msg import Time

        ns = self._step_index * round(self.period * 1e9) + 1
        return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)

    def publish_state(self) -> None:
        data = self.env.unwrapped.data
        if self.script is not None:  # the operator's command for this step, before the state that it goes with
            from robotrl.envs.legged import command_at

            cmd = command_at(self.script, self._ep_len * self.period)
            self.env.unwrapped.set_command(*cmd)
            t = self._msgs["TwistStamped"]()
            t.header.stamp = self._stamp()
            t.twist.linear.x, t.twist.linear.y, t.twist.angular.z = (float(v) for v in cmd)
            self.pub_cmd_vel.publish(t)
        stamp = self._stamp()
        self._state_stamp = (stamp.sec, stamp.nanosec)
        js = self._msgs["JointState"]()
        js.header.stamp = stamp
        names, q, dq = self.sensors.joint_state(data)
        js.name, js.position, js.velocity = names, [float(x) for x in q], [float(x) for x in dq]
        if self.pub_odom is not None:
            pos, quat, v, w = self.sensors.odometry(data)
            o = self._msgs["Odometry"]()
            o.header.stamp, o.header.frame_id, o.child_frame_id = stamp, "odom", "base_link"
            o.pose.pose.position.x, o.pose.pose.position.y, o.pose.pose.position.z = (float(x) for x in pos)
            qq = o.pose.pose.orientation
            qq.x, qq.y, qq.z, qq.w = (float(x) for x in quat)
            o.twist.twist.linear.x, o.twist.twist.linear.y, o.twist.twist.linear.z = (float(x) for x in v)
            o.twist.twist.angular.x, o.twist.twist.angular.y, o.twist.twist.angular.z = (float(x) for x in w)
            self.pub_odom.publish(o)
        if self.pub_imu is not None:
            quat, w = self.sensors.imu(data)
            imu = self._msgs["Imu"]()
            imu.header.stamp, imu.header.frame_id = stamp, "base_link"
            imu.orientation.x, imu.orientation.y, imu.orientation.z, imu.orientation.w = (float(x) for x in quat)
            imu.angular_velocity.x, imu.angular_velocity.y, imu.angular_velocity.z = (float(x) for x in w)
            self.pub_imu.publish(imu)
        if self.pub_goal is not None:
            self.pub_goal.publish(self._point(self.sensors.goal(data), stamp))
        for n, p in self.sensors.points(data).items():
            self.pub_points[n].publish(self._point(p, stamp))
        self.pub_js.publish(js)  # last: the node computes on the joint state
        self._last_publish = time.monotonic()

    def _point(self, xyz: np.ndarray, stamp: Any) -> Any:
        m = self._msgs["PointStamped"]()
        m.header.stamp, m.header.frame_id = stamp, "world"
        m.point.x, m.point.y, m.point.z = (float(x) for x in xyz)
        return m

    def _on_command(self, msg: Any) -> None:
        if len(msg.data) != len(self.action_joints):
            self.get_logger().error(f"command has {len(msg.data)} values, expected {len(self.action_joints)} "
                                    f"({', '.join(self.action_joints)})")
            return
        self.commands_received += 1
        if not self.lockstep:
            self.command = np.asarray(msg.data, dtype=np.float64)

    def _on_cmd_vel(self, msg: Any) -> None:
        """/cmd_vel drives the task's velocity command (and stops its random resampling)."""
        self._cmd_vel = (msg.linear.x, msg.linear.y, msg.angular.z)
        self.cmd_vel_received += 1
        self.env.unwrapped.set_command(*self._cmd_vel)

    def _on_stamped_command(self, msg: Any) -> None:
        """Lockstep: the node's stamped copy names the state it answers; step on the matching one."""
        if self.done or (msg.header.stamp.sec, msg.header.stamp.nanosec) != self._state_stamp:
            return
        order = {n: i for i, n in enumerate(msg.name)}
        vals = [msg.position[order[j]] if k == "position" else msg.effort[order[j]]
                for j, k in zip(self.action_joints, self.kinds, strict=True)]
        self._advance(np.asarray(vals, dtype=np.float64))
        if not self.done:
            self.publish_state()

    def _on_timer(self) -> None:
        if self.done:
            return
        if self.lockstep:
            if time.monotonic() - self._last_publish > 0.05:  # nobody answered (yet): say it again
                self.publish_state()
            return
        self._advance(self.command if self.command is not None else self._hold_command())
        if not self.done:
            self.publish_state()
