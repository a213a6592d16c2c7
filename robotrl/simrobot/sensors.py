"""What a robot's drivers would publish, read off a MuJoCo simulation (the stand-in robot's sensors).

`RobotSensors(model, spec)` turns MuJoCo state into the messages a robot provides, in robot
conventions, so that the node's `ObservationBuilder` can be tested (and the stand-in robot run)
against the very definitions a real robot must meet:

    joint_state()  names, positions, velocities of every hinge/slide joint the card names
    odometry()     base pose in the world (quaternion x, y, z, w) and twist in the base frame
                   (REP-105); a planar base (slide x, slide z, hinge about y) is reported as the
                   3-D pose it implies
    imu()          orientation and base-frame angular velocity, as sensor_msgs/Imu carries them
    goal()         the goal marker's position;   points()  named bodies' positions

Imports mujoco (the simulation side); `robotrl.deploy` itself does not import this module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import mujoco
import numpy as np

import robotrl.kinds as K
from robotrl.kinds import KINDS


def _needs(e: dict[str, Any], *sources: str) -> bool:
    """Whether element `e`'s kind is built on the robot from any of `sources` (`robotrl.kinds`)."""
    return bool(set(KINDS[e["kind"]].sources) & set(sources))


def _rot(q_wxyz: np.ndarray) -> np.ndarray:
    m = np.zeros(9)
    mujoco.mju_quat2Mat(m, q_wxyz / np.linalg.norm(q_wxyz))  # (a reset may leave it off unit length)
    return m.reshape(3, 3)


class RobotSensors:
    def __init__(self, model: mujoco.MjModel, observation_spec: Sequence[dict[str, Any]]):
        self.model = model
        elems = list(observation_spec)
        jid = lambda n: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n)  # noqa: E731
        bid = lambda n: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n)  # noqa: E731
        self.joint_names = sorted({e["name"] for e in elems if _needs(e, K.JOINTS, K.JOINT_VELOCITIES)})
        self._jq = np.array([model.jnt_qposadr[jid(n)] for n in self.joint_names], dtype=np.intp)
        self._jv = np.array([model.jnt_dofadr[jid(n)] for n in self.joint_names], dtype=np.intp)
        base_joints = {e["name"] for e in elems if _needs(e, K.ORIENTATION, K.ANGULAR_VELOCITY, K.ODOMETRY)}
        self.base_free: int | None = None
        self.planar: dict[str, int] = {}  # axis -> joint id (slide x/y/z, hinge about axis)
        for name in base_joints:
            j = jid(name)
            if int(model.jnt_type[j]) == int(mujoco.mjtJoint.mjJNT_FREE):
                self.base_free = j
        if self.base_free is None and base_joints:
            # planar base: the root slide/hinge joints of the base body, whichever the card names
            root_body = int(model.jnt_bodyid[jid(next(iter(base_joints)))])
            for j in range(model.njnt):
                if int(model.jnt_bodyid[j]) == root_body:
                    kind = "slide" if int(model.jnt_type[j]) == int(mujoco.mjtJoint.mjJNT_SLIDE) else "hinge"
                    axis = "xyz"[int(np.argmax(np.abs(model.jnt_axis[j])))]
                    self.planar[f"{kind}_{axis}"] = j
        self.goal_body = next((bid(e["name"]) for e in elems if _needs(e, K.GOAL)), None)
        names = {e["name"] for e in elems if _needs(e, K.POINTS)}
        names |= {e["frame"] for e in elems if e["kind"] == "body_pos" and e.get("frame") not in (None, "", "world")}
        names -= {e["name"] for e in elems if _needs(e, K.GOAL)}
        sid = lambda n: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, n)  # noqa: E731
        # a named point is a body, or a site (an end effector given as a site)
        self.point_bodies = {n: (bid(n), -1) if bid(n) >= 0 else (-1, sid(n)) for n in sorted(names)}
        self.has_base = bool(base_joints)

    def joint_state(self, data: mujoco.MjData) -> tuple[list[str], np.ndarray, np.ndarray]:
        return list(self.joint_names), data.qpos[self._jq].copy(), data.qvel[self._jv].copy()

    def odometry(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(position, quaternion x y z w, linear velocity in base frame, angular velocity in base frame)."""
        m = self.model
        if self.base_free is not None:
            qa, va = int(m.jnt_qposadr[self.base_free]), int(m.jnt_dofadr[self.base_free])
            pos, q_wxyz = data.qpos[qa:qa + 3].copy(), data.qpos[qa + 3:qa + 7].copy()
            R = _rot(q_wxyz)
            v_world, w_body = data.qvel[va:va + 3], data.qvel[va + 3:va + 6]  # MuJoCo free-joint conventions
            return pos, np.r_[q_wxyz[1:], q_wxyz[0]], R.T @ v_world, w_body.copy()
        pos, v_world, w_world = np.zeros(3), np.zeros(3), np.zeros(3)
        q_wxyz = np.array([1.0, 0.0, 0.0, 0.0])
        for key, j in self.planar.items():
            kind, axis = key.split("_")
            a = "xyz".index(axis)
            qv, dv = float(data.qpos[m.jnt_qposadr[j]]), float(data.qvel[m.jnt_dofadr[j]])
            if kind == "slide":
                pos[a], v_world[a] = qv, dv
            else:
                half = qv / 2
                q_axis = np.zeros(4)
                q_axis[0], q_axis[1 + a] = math.cos(half), math.sin(half)
                q_wxyz = q_axis
                w_world[a] = dv
        R = _rot(q_wxyz)
        return pos, np.r_[q_wxyz[1:], q_wxyz[0]], R.T @ v_world, R.T @ w_world

    def imu(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        """An IMU on the base, axes aligned with it: (orientation x y z w in the world, angular velocity in
        the base frame), unit quaternion as a real IMU reports it."""
        _, quat, _, w = self.odometry(data)
        return quat / np.linalg.norm(quat), w

    def goal(self, data: mujoco.MjData) -> np.ndarray | None:
        return None if self.goal_body is None else data.xpos[self.goal_body].copy()

    def points(self, data: mujoco.MjData) -> dict[str, np.ndarray]:
        return {n: (data.xpos[b] if b >= 0 else data.site_xpos[s]).copy() for n, (b, s) in self.point_bodies.items()}
