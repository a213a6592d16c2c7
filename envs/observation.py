"""Recompute a task's observation vector from MuJoCo state, element by element, by name.

The spec names what each observation element is (`robotrl.spec.OBS_KINDS`); this module is the
simulation side of that definition. `Observer(model, elements)` resolves every name to an index
once, and ``observer(data)`` returns the vector. The tests check that it reproduces each task's own
observation exactly, so the names in a policy card are known to mean what the policy was trained on.
The simulated robot of `robotrl.deploy` publishes the same quantities over ROS 2.
"""

from __future__ import annotations

from collections.abc import Sequence

import mujoco
import numpy as np

from robotrl.spec import ObsElement

_AXES = {"x": 0, "y": 1, "z": 2}
_QUAT = {"w": 0, "x": 1, "y": 2, "z": 3}
# plain ints: numpy scalars do not compare equal to pybind11 enums inside `in`
_FREE, _SLIDE, _HINGE = (int(mujoco.mjtJoint.mjJNT_FREE), int(mujoco.mjtJoint.mjJNT_SLIDE),
                         int(mujoco.mjtJoint.mjJNT_HINGE))


def _id(model: mujoco.MjModel, objtype: mujoco.mjtObj, name: str, what: str) -> int:
    i = mujoco.mj_name2id(model, objtype, name)
    if i < 0:
        raise KeyError(f"the model has no {what} named {name!r}")
    return i


def _axis(e: ObsElement, table: dict[str, int]) -> int:
    if e.axis not in table:
        raise KeyError(f"{e.label()}: axis must be one of {', '.join(table)}, got {e.axis!r}")
    return table[e.axis]


class Observer:
    """Compiled recipe for a list of observation elements on one MuJoCo model."""

    def __init__(self, model: mujoco.MjModel, elements: Sequence[ObsElement]):
        self.elements = tuple(elements)
        self._recipes = [self._compile(model, e) for e in self.elements]

    @staticmethod
    def _compile(model: mujoco.MjModel, e: ObsElement):  # -> (source, index, extra)
        k = e.kind
        if k == "joint_pos_rel":
            j = _id(model, mujoco.mjtObj.mjOBJ_JOINT, e.name, "joint")
            if int(model.jnt_type[j]) not in (_SLIDE, _HINGE):
                raise KeyError(f"{e.label()}: joint {e.name!r} is not a hinge or slide joint")
            return ("qpos_rel", int(model.jnt_qposadr[j]), float(e.offset))
        if k == "projected_gravity":
            j = _id(model, mujoco.mjtObj.mjOBJ_JOINT, e.name, "joint")
            if int(model.jnt_type[j]) != _FREE:
                raise KeyError(f"{e.label()}: projected gravity needs a free joint, {e.name!r} is not one")
            return ("gravity", int(model.jnt_qposadr[j]) + 3, _axis(e, _AXES))
        if k == "velocity_command":
            if e.axis not in ("x", "y", "yaw"):
                raise KeyError(f"{e.label()}: axis must be x, y or yaw, got {e.axis!r}")
            return ("command", e.axis, None)
        if k in ("joint_pos", "joint_vel", "joint_cos", "joint_sin", "base_angle"):
            j = _id(model, mujoco.mjtObj.mjOBJ_JOINT, e.name, "joint")
            if int(model.jnt_type[j]) not in (_SLIDE, _HINGE):
                raise KeyError(f"{e.label()}: joint {e.name!r} is not a hinge or slide joint")
            if k == "joint_vel":
                return ("qvel", int(model.jnt_dofadr[j]), None)
            return ({"joint_cos": "cos", "joint_sin": "sin"}.get(k, "qpos"), int(model.jnt_qposadr[j]), None)
        if k in ("base_pos", "base_quat", "base_lin_vel", "base_ang_vel"):
            j = _id(model, mujoco.mjtObj.mjOBJ_JOINT, e.name, "joint")
            qadr, vadr = int(model.jnt_qposadr[j]), int(model.jnt_dofadr[j])
            if int(model.jnt_type[j]) == _FREE:
                # free joint: qpos = [x y z, qw qx qy qz]; qvel = [world linear velocity, body-frame angular velocity]
                if k == "base_pos":
                    return ("qpos", qadr + _axis(e, _AXES), None)
                if k == "base_quat":
                    return ("qpos", qadr + 3 + _axis(e, _QUAT), None)
                if k == "base_lin_vel":
                    if e.frame not in ("", "world"):
                        raise KeyError(f"{e.label()}: a free joint's linear velocity is in the world frame")
                    return ("qvel", vadr + _axis(e, _AXES), None)
                if e.frame not in ("", "base"):
                    raise KeyError(f"{e.label()}: a free joint's angular velocity is in the base frame")
                return ("qvel", vadr + 3 + _axis(e, _AXES), None)
            if int(model.jnt_type[j]) in (_SLIDE, _HINGE) and k != "base_quat":
                # planar base: one slide/hinge joint per DOF along/about a world axis
                _axis(e, _AXES)
                return ("qvel" if k.endswith("_vel") else "qpos", vadr if k.endswith("_vel") else qadr, None)
            raise KeyError(f"{e.label()}: joint {e.name!r} cannot carry {k}")
        if k in ("body_pos", "object_pos", "goal"):
            ref = -1
            if e.frame not in ("", "world"):
                ref = _id(model, mujoco.mjtObj.mjOBJ_BODY, e.frame, "body")
            site = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, e.name)
            if k == "body_pos" and site >= 0 and mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, e.name) < 0:
                return ("site_xpos", (site, _axis(e, _AXES)), ref)  # an end effector given as a site
            b = _id(model, mujoco.mjtObj.mjOBJ_BODY, e.name, "body")
            return ("xpos", (b, _axis(e, _AXES)), ref)
        if k == "prev_action":
            return ("prev_action", e.name, None)
        raise KeyError(f"{e.label()}: elements of kind {k!r} have no simulation recipe")

    def __call__(self, data: mujoco.MjData, prev_action: dict[str, float] | None = None,
                 command: dict[str, float] | None = None) -> np.ndarray:
        """The observation; `prev_action` (joint -> normalised action) and `command` (axis -> value) give
        what MuJoCo's state does not hold."""
        out = np.empty(len(self._recipes))
        for i, ((src, idx, extra), e) in enumerate(zip(self._recipes, self.elements, strict=True)):
            if src == "qpos":
                v = data.qpos[idx]
            elif src == "qpos_rel":
                v = data.qpos[idx] - extra
            elif src == "gravity":  # R(q)^T (0, 0, -1): minus the third row of R, i.e. of its transpose's column
                w, x, y, z = data.qpos[idx:idx + 4] / np.linalg.norm(data.qpos[idx:idx + 4])
                v = -(2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y))[extra]
            elif src == "command":
                if command is None or idx not in command:
                    raise KeyError(f"{e.label()}: no velocity command given for axis {idx!r}")
                v = command[idx]
            elif src == "qvel":
                v = data.qvel[idx]
            elif src == "cos":
                v = np.cos(data.qpos[idx])
            elif src == "sin":
                v = np.sin(data.qpos[idx])
            elif src == "xpos":
                b, ax = idx
                v = data.xpos[b, ax] - (data.xpos[extra, ax] if extra >= 0 else 0.0)
            elif src == "site_xpos":
                site, ax = idx
                v = data.site_xpos[site, ax] - (data.xpos[extra, ax] if extra >= 0 else 0.0)
            else:  # prev_action
                if prev_action is None or idx not in prev_action:
                    raise KeyError(f"{e.label()}: no previous action given for joint {idx!r}")
                v = prev_action[idx]
            if e.clip is not None:
                v = min(max(v, -e.clip), e.clip)
            out[i] = v
        return out
