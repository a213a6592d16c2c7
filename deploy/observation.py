"""Assemble the policy's observation vector on the robot, element by element, from named sources.

The card's observation spec says what each element is (see `robotrl.spec.OBS_KINDS`); this is the
robot side of the same definitions that `robotrl.envs.observation` computes from MuJoCo state:

    joint_pos / joint_vel / joint_cos / joint_sin   JointState, looked up by joint *name*
    base_pos / base_quat / base_angle               odometry pose (ROS quaternion order x, y, z, w)
    base_lin_vel / base_ang_vel                     odometry twist, given in the base (child) frame;
                                                    rotated to the world frame where the card says so
    (with `use_imu`, orientation and angular velocity come from an IMU instead: sensor_msgs/Imu
     orientation and angular_velocity, the latter in the IMU = base frame)
    projected_gravity                               (0, 0, -1) rotated into the base frame, from the
                                                    IMU's (or odometry's) orientation
    joint_pos_rel                                   JointState position minus the element's `offset`
                                                    (the default pose)
    velocity_command                                the operator's command (geometry_msgs/Twist on
                                                    /cmd_vel: linear.x, linear.y, angular.z), clamped
                                                    to the element's range; none yet, or older than the
                                                    command timeout: zero (stand), never a fault
    goal                                            a goal point (x, y, z) in the world frame
    body_pos / object_pos                           named points (x, y, z), e.g. a fingertip from TF
    prev_action                                     the node's own previous command, per joint

Nothing is zero-filled: `build()` raises `MissingInput` naming every source that has not arrived
(or has gone stale) and `BadInput` for NaN/Inf, so the caller can go to its safe action.

Every reading is checked for plausibility *before* it is stored, so the stored joint positions are
always the last good measurement (the pose a hold may command). A JointState is refused whole
(`BadInput`, nothing stored) when any joint the card names reads NaN/Inf or a value no 32-bit float
holds, a position outside the joint's range by more than `range_margin`, a velocity above
`max_joint_speed`, or a position that moved faster than `max_joint_speed` since the last good
reading (over at least one control period). Other sources are refused when not finite in 32 bits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

import robotrl.kinds as K
from robotrl.kinds import KINDS

_AX = {"x": 0, "y": 1, "z": 2}


class MissingInput(RuntimeError):
    """A source the card needs has not arrived, or is older than the allowed age."""


class BadInput(RuntimeError):
    """A source delivered NaN/Inf, an implausible value or inconsistent lengths."""


F32_MAX = float(np.finfo(np.float32).max)


def _finite32(values: np.ndarray) -> np.ndarray:
    """Elementwise: finite, and finite once the policy casts it to float32."""
    return np.isfinite(values) & (np.abs(values) <= F32_MAX)


def quat_xyzw_to_matrix(q: Sequence[float]) -> np.ndarray:
    x, y, z, w = (float(v) for v in q)
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if not abs(n - 1.0) <= 0.2:  # a unit quaternion, give or take a driver's rounding; NaN fails too
        raise BadInput(f"base orientation quaternion has norm {n:.4g}, not 1 (x, y, z, w = {x:.4g}, {y:.4g}, "
                       f"{z:.4g}, {w:.4g})")
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


class ObservationBuilder:
    """Holds the latest value of every source the card needs and assembles the observation; what each element is
    and which sources it needs come from its kind (`robotrl.kinds.KINDS`)."""

    def __init__(self, observation_spec: Sequence[dict[str, Any]], action_joints: Sequence[str], *,
                 use_imu: bool = False, joint_ranges: dict[str, Sequence[float]] | None = None,
                 range_margin: float = 0.5, max_joint_speed: float = 100.0, period: float = 0.0):
        self.elements = [dict(e) for e in observation_spec]
        unknown = [e["kind"] for e in self.elements if e["kind"] not in KINDS or KINDS[e["kind"]].robot is None]
        if unknown:
            raise BadInput(f"observation kind {unknown[0]!r} cannot be measured on a robot")
        sources = [set(KINDS[e["kind"]].sources) for e in self.elements]
        needs = set().union(*sources) if sources else set()
        self.joints = sorted({e["name"] for e, src in zip(self.elements, sources, strict=True)
                              if src & {K.JOINTS, K.JOINT_VELOCITIES}})
        self.need_velocity = K.JOINT_VELOCITIES in needs
        base = needs & {K.ORIENTATION, K.ANGULAR_VELOCITY, K.ODOMETRY}
        self.need_base = bool(base)
        # an IMU gives orientation and angular velocity; odometry gives position and linear velocity, and the
        # orientation and angular velocity too where there is no IMU
        self.use_imu = use_imu and bool(base & {K.ORIENTATION, K.ANGULAR_VELOCITY})
        self.need_odom = K.ODOMETRY in needs or (bool(base) and not self.use_imu)
        self.need_goal = K.GOAL in needs
        self.points = sorted({e["name"] for e in self.elements if K.POINTS in KINDS[e["kind"]].sources}
                             | {e["frame"] for e in self.elements if e["kind"] == "body_pos"
                                and e.get("frame") not in (None, "", "world")} - self._goal_names())
        self.action_joints = list(action_joints)
        self.need_prev_action = K.OWN in needs
        self.need_command = K.COMMAND in needs
        self.command_ranges = {e["axis"]: tuple(e["range"]) if e.get("range") else (-np.inf, np.inf)
                               for e in self.elements if K.COMMAND in KINDS[e["kind"]].sources}
        self.cmd = {"x": 0.0, "y": 0.0, "yaw": 0.0}
        self.cmd_stamp = -np.inf
        self._jidx = {j: i for i, j in enumerate(self.joints)}
        self.q = np.full(len(self.joints), np.nan)
        self.dq = np.full(len(self.joints), np.nan)
        self.q_stamp = np.full(len(self.joints), -np.inf)
        self.base: dict[str, Any] | None = None
        self.base_stamp = -np.inf
        self.imu_q: np.ndarray | None = None
        self.imu_w: np.ndarray | None = None
        self.imu_stamp = -np.inf
        self.goal_xyz: np.ndarray | None = None
        self.goal_stamp = -np.inf
        self.point_xyz: dict[str, np.ndarray] = {}
        self.point_stamp: dict[str, float] = {}
        self.prev_action = np.zeros(len(self.action_joints))
        self._name_cache: tuple[tuple[str, ...], np.ndarray, np.ndarray] | None = None
        ranges = joint_ranges or {}
        self.range_lo = np.array([float(ranges[j][0]) if j in ranges else -np.inf for j in self.joints])
        self.range_hi = np.array([float(ranges[j][1]) if j in ranges else np.inf for j in self.joints])
        self.range_margin = float(range_margin)
        self.max_joint_speed = float(max_joint_speed)  # 0: no speed or jump check
        self.period = float(period)
        self._recipes = [KINDS[e["kind"]].robot for e in self.elements]
        self._frame = SimpleNamespace(joint_index=self._jidx, goal_names=self._goal_names(),
                                      action_index={j: i for i, j in enumerate(self.action_joints)})

    def _goal_names(self) -> set[str]:
        return {e["name"] for e in self.elements if e["kind"] == "goal"}

    # sources --------------------------------------------------------------------------------------
    def joint_state(self, names: Sequence[str], position: Sequence[float], velocity: Sequence[float],
                    stamp: float) -> None:
        """A JointState: matched by name (any order, extra joints ignored); lengths must agree."""
        if len(position) != len(names):
            raise BadInput(f"JointState has {len(names)} names but {len(position)} positions")
        if self.need_velocity and len(velocity) != len(names):
            raise BadInput(f"JointState has {len(names)} names but {len(velocity)} velocities")
        key = tuple(names)
        if self._name_cache is None or self._name_cache[0] != key:
            ours, theirs = [], []
            for k, n in enumerate(names):
                i = self._jidx.get(n)
                if i is not None:
                    ours.append(i)
                    theirs.append(k)
            self._name_cache = (key, np.asarray(ours, dtype=np.intp), np.asarray(theirs, dtype=np.intp))
        _, ours, theirs = self._name_cache
        q = np.asarray(position, dtype=np.float64)[theirs]
        dq = np.asarray(velocity, dtype=np.float64)[theirs] if self.need_velocity else None
        self._check_joints(ours, q, dq, stamp)
        self.q[ours] = q
        if dq is not None:
            self.dq[ours] = dq
        self.q_stamp[ours] = stamp

    def _check_joints(self, ours: np.ndarray, q: np.ndarray, dq: np.ndarray | None, stamp: float) -> None:
        """Raise BadInput naming the first implausible reading (and how many others there are)."""
        problems: list[str] = []
        names = [self.joints[i] for i in ours]
        for k in np.flatnonzero(~_finite32(q)):
            kind = "NaN or Inf" if not np.isfinite(q[k]) else "a value beyond 32-bit float range"
            problems.append(f"{kind} in joint {names[k]} position ({q[k]:.6g})")
        if dq is not None:
            for k in np.flatnonzero(~_finite32(dq)):
                kind = "NaN or Inf" if not np.isfinite(dq[k]) else "a value beyond 32-bit float range"
                problems.append(f"{kind} in joint {names[k]} velocity ({dq[k]:.6g})")
        if not problems:
            lo, hi, m = self.range_lo[ours], self.range_hi[ours], self.range_margin
            for k in np.flatnonzero((q < lo - m) | (q > hi + m)):
                problems.append(f"implausible reading: joint {names[k]} position {q[k]:.6g} is outside its range "
                                f"[{lo[k]:.4g}, {hi[k]:.4g}] by more than {m:g}")
            vmax = self.max_joint_speed
            if vmax > 0:
                if dq is not None:
                    for k in np.flatnonzero(np.abs(dq) > vmax):
                        problems.append(f"implausible reading: joint {names[k]} velocity {dq[k]:.6g} exceeds the "
                                        f"plausible speed {vmax:g}")
                last, last_t = self.q[ours], self.q_stamp[ours]
                seen = np.isfinite(last) & np.isfinite(last_t)
                dt = np.maximum(self.period, np.where(seen, stamp - last_t, 0.0))
                jump = np.abs(q - np.where(seen, last, q))
                for k in np.flatnonzero(seen & (jump > vmax * dt + 1e-9)):
                    problems.append(f"implausible reading: joint {names[k]} position jumped {jump[k]:.4g} in "
                                    f"{dt[k]:.3f} s (faster than the plausible speed {vmax:g})")
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise BadInput(problems[0] + more)

    @staticmethod
    def _checked(values: Sequence[float], what: str, n: int) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        if v.size != n:
            raise BadInput(f"{what} has {v.size} values, expected {n}")
        if not _finite32(v).all():
            shown = ", ".join(f"{x:.6g}" for x in v)
            raise BadInput(f"NaN, Inf or a value beyond 32-bit float range in {what} ({shown})")
        return v

    def base_state(self, position: Sequence[float], orientation_xyzw: Sequence[float],
                   linear_velocity_base: Sequence[float], angular_velocity_base: Sequence[float],
                   stamp: float) -> None:
        """Odometry: pose in the world frame, twist in the base frame (REP-105 child frame)."""
        self.base = {"p": self._checked(position, "odometry position", 3),
                     "q": self._checked(orientation_xyzw, "odometry orientation", 4),
                     "v": self._checked(linear_velocity_base, "odometry linear velocity", 3),
                     "w": self._checked(angular_velocity_base, "odometry angular velocity", 3)}
        self.base_stamp = stamp

    def imu(self, orientation_xyzw: Sequence[float], angular_velocity: Sequence[float], stamp: float) -> None:
        """An IMU mounted on the base: orientation in the world frame, angular velocity in its own frame."""
        q = self._checked(orientation_xyzw, "IMU orientation", 4)
        self.imu_w = self._checked(angular_velocity, "IMU angular velocity", 3)
        self.imu_q = q
        self.imu_stamp = stamp

    def goal(self, xyz: Sequence[float], stamp: float) -> None:
        self.goal_xyz = self._checked(xyz, "goal", 3)
        self.goal_stamp = stamp

    def point(self, name: str, xyz: Sequence[float], stamp: float) -> None:
        self.point_xyz[name] = self._checked(xyz, f"point {name}", 3)
        self.point_stamp[name] = stamp

    def velocity_command(self, vx: float, vy: float, yaw_rate: float, stamp: float) -> None:
        """/cmd_vel: each component clamped to the range the policy was trained on."""
        v = self._checked((vx, vy, yaw_rate), "velocity command", 3)
        lo_hi = self.command_ranges
        self.cmd = {a: float(np.clip(x, *lo_hi.get(a, (-np.inf, np.inf)))) for a, x in zip(("x", "y", "yaw"), v,
                                                                                            strict=True)}
        self.cmd_stamp = stamp

    def current_command(self, now: float, max_age: float | None) -> dict[str, float]:
        """The command in force: the last one, or zero (stand) when there is none or it is stale."""
        if self.cmd_stamp == -np.inf or (max_age is not None and now - self.cmd_stamp > max_age):
            return {"x": 0.0, "y": 0.0, "yaw": 0.0}
        return self.cmd

    def set_prev_action(self, normalized: np.ndarray) -> None:
        self.prev_action = np.asarray(normalized, dtype=np.float64)

    # checks ---------------------------------------------------------------------------------------
    def missing(self, now: float, max_age: float, goal_max_age: float | None = None) -> list[str]:
        """Names of the sources that have not arrived or are older than `max_age` seconds; the goal
        (a command, not a measurement) has its own limit, None: any goal once received stays valid."""
        out = [f"joint {j}" for j, t in zip(self.joints, self.q_stamp, strict=True) if now - t > max_age]
        if self.need_odom and now - self.base_stamp > max_age:
            out.append("base odometry")
        if self.use_imu and now - self.imu_stamp > max_age:
            out.append("imu")
        if self.need_goal and (self.goal_stamp == -np.inf
                               or (goal_max_age is not None and now - self.goal_stamp > goal_max_age)):
            out.append("goal")
        out += [f"point {p}" for p in self.points if now - self.point_stamp.get(p, -np.inf) > max_age]
        return out

    def build(self, now: float, max_age: float, goal_max_age: float | None = None,
              command_max_age: float | None = 0.5) -> np.ndarray:
        missing = self.missing(now, max_age, goal_max_age)
        if missing:
            raise MissingInput("no recent " + ", ".join(missing))
        f = self._frame
        f.cmd = self.current_command(now, command_max_age) if self.need_command else None
        f.q, f.dq, f.prev_action, f.goal_xyz, f.point_xyz = self.q, self.dq, self.prev_action, self.goal_xyz, \
            self.point_xyz
        if self.need_base:
            f.quat_xyzw = self.imu_q if self.use_imu else self.base["q"]
            f.ang = self.imu_w if self.use_imu else self.base["w"]
            f.R = quat_xyzw_to_matrix(f.quat_xyzw)
            if self.base is not None:
                f.base_p, f.base_v = self.base["p"], self.base["v"]
        obs = np.empty(len(self.elements))
        for i, (e, robot) in enumerate(zip(self.elements, self._recipes, strict=True)):
            v = robot(f, e)
            clip = e.get("clip")
            if clip is not None:
                v = min(max(v, -clip), clip)
            obs[i] = v
        if not _finite32(obs).all():
            bad = [self.label(i) for i in np.flatnonzero(~_finite32(obs))]
            raise BadInput("NaN or Inf in " + ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else ""))
        return obs

    def label(self, i: int) -> str:
        e = self.elements[i]
        return f"{e['kind']}({e['name']})" + (f".{e['axis']}" if e.get("axis") else "")
