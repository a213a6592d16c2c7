"""Observation element kinds, each defined once: what it means, its axes and frames, how the simulation computes it
and how the robot side builds it from what the robot's drivers publish.

A policy card names every element of the observation by kind (``projected_gravity``, axis ``z``, frame ``base``).
Everything that handles elements reads this registry, `KINDS`:

- the spec and the card schema: `meaning`, `axes`, `frames`, `needs_range` (``robotrl.spec``, ``deploy.runtime``);
- the simulation (``robotrl.envs.observation.Observer``, the template tasks): `sim`, batched over worlds;
- the robot side (``robotrl.deploy.observation.ObservationBuilder``): `sources`, and `robot`;
- the simulated robot publishes the union of the `sources` a card's kinds need.
- training's sensor noise (``robotrl.envs.sim2real``, `sensor_noise`): `noise`, each kind's scale.

It imports numpy only: ``robotrl.deploy`` reads it on a robot computer. The simulation functions take a compiled
MuJoCo model as an argument and read its arrays and named accessors (``model.joint(name)``), so nothing here
imports mujoco.

**Adding a kind** (say, foot contacts): one `Kind` entry here, with `sim` and `robot`, plus its tests (the
simulation and the robot side must agree on the simulated robot's messages: tests/test_kinds.py checks that for
every kind in `KINDS`).

The frames. Simulation, ``SimFrame``: ``qpos [N, nq]``, ``qvel [N, nv]`` (MuJoCo's conventions: a free joint's
linear velocity in the world frame and its angular velocity in the base frame), ``xpos [N, nbody, 3]`` and
``site_xpos [N, nsite, 3]`` where positions are needed, ``command [N, 3]`` (x, y, yaw) and ``prev_action
[N, n_act]`` with ``action_joints``. Robot, ``RobotFrame``: the builder's latest readings (joint positions and
velocities by name, the base orientation as a rotation matrix and its angular velocity in the base frame from an
IMU or odometry, odometry's position and base-frame linear velocity, the goal, named points, the command in force,
the previous action).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

XYZ = ("x", "y", "z")
_AX = {"x": 0, "y": 1, "z": 2}
_QUAT = {"w": 0, "x": 1, "y": 2, "z": 3}  # MuJoCo's order
_FREE, _SLIDE, _HINGE = 0, 2, 3  # mjtJoint (stable numbers of MuJoCo's API)

# robot-side sources, each one ROS input of the node (and one output of the simulated robot)
JOINTS, JOINT_VELOCITIES = "joint_positions", "joint_velocities"
ORIENTATION, ANGULAR_VELOCITY = "base_orientation", "base_angular_velocity"  # an IMU, or odometry without one
ODOMETRY = "odometry"  # base position and linear velocity
COMMAND, GOAL, POINTS, OWN = "cmd_vel", "goal", "points", "own"  # own: the node's previous command


@dataclass(frozen=True)
class Kind:
    name: str
    meaning: str
    """what the element is, for the card and the docs"""
    axes: tuple[str, ...] = ()
    """the axes an element of this kind may name (empty: it names none)"""
    frames: tuple[str, ...] = ()
    """the frames it may be expressed in ("" is allowed too where this is not empty: the kind's default)"""
    sources: tuple[str, ...] = ()
    """what the robot side reads to build it"""
    sim: Callable[[Any, Sequence[Any]], Callable[[Any], np.ndarray]] | None = None
    """``sim(model, elements)`` -> ``compute(frame) -> [N, len(elements)]``; raises KeyError naming what the model
    lacks. None: not simulated (a generic element)"""
    robot: Callable[[Any, Any], float] | None = None
    """``robot(frame, element) -> value`` on the robot; None: the kind cannot be measured on a robot"""
    needs_range: bool = False
    """the element must carry `range` (what was trained on)"""
    noise: float = 0.0
    """the training noise scale of a measured kind, in its unit: `sensor_noise` adds uniform noise in +- this (times
    the level) to its elements (legged_gym's noise scales); 0: what the robot is told or computes (commands, goals,
    its previous action) gets none"""


KINDS: dict[str, Kind] = {}


def kind(k: Kind) -> Kind:
    if k.name in KINDS:
        raise ValueError(f"observation kind {k.name!r} is registered twice")
    KINDS[k.name] = k
    return k


def _get(e: Any, key: str, default: Any = "") -> Any:
    """An element's field, from an `ObsElement` or a card's dict."""
    return e.get(key, default) if isinstance(e, dict) else getattr(e, key, default)


def label(e: Any) -> str:
    out = f"{_get(e, 'kind')}({_get(e, 'name')})"
    if _get(e, "axis"):
        out += f".{_get(e, 'axis')}"
    if _get(e, "frame"):
        out += f"[{_get(e, 'frame')}]"
    return out


# ---- simulation helpers -------------------------------------------------------------------------------------------
def _joint(model: Any, e: Any, types: tuple[int, ...] | None = (_SLIDE, _HINGE), what: str = "a hinge or slide joint"
           ) -> Any:
    name = _get(e, "name")
    try:
        j = model.joint(name)
    except KeyError:
        raise KeyError(f"the model has no joint named {name!r}") from None
    if types is not None and int(model.jnt_type[j.id]) not in types:
        raise KeyError(f"{label(e)}: joint {name!r} is not {what}")
    return j


def _axis(e: Any, table: dict[str, int]) -> int:
    a = _get(e, "axis")
    if a not in table:
        raise KeyError(f"{label(e)}: axis must be one of {', '.join(table)}, got {a!r}")
    return table[a]


def _columns(array: str, idx: Sequence[int], minus: Sequence[float] | None = None) -> Callable[[Any], np.ndarray]:
    """compute(frame) -> frame.<array>[:, idx] (- minus)."""
    cols = np.asarray(idx, dtype=np.intp)
    off = None if minus is None or not any(minus) else np.asarray(minus, dtype=np.float64)
    if off is None:
        return lambda f: getattr(f, array)[:, cols]
    return lambda f: getattr(f, array)[:, cols] - off


def _up(quat: np.ndarray) -> np.ndarray:
    """The third row of the base-to-world rotation of quaternions ``[N, 4]`` (w, x, y, z): world z in the base frame."""
    q = quat / np.linalg.norm(quat, axis=1, keepdims=True)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    return np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=1)


def rotations(quat: np.ndarray) -> np.ndarray:
    """Base-to-world rotation matrices ``[N, 3, 3]`` of quaternions ``[N, 4]`` (w, x, y, z), normalised first (a reset
    may leave one off unit length)."""
    q = quat / np.linalg.norm(quat, axis=1, keepdims=True)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    R = np.empty((len(q), 3, 3))
    R[:, 0, 0] = 1 - 2 * (y * y + z * z)
    R[:, 0, 1] = 2 * (x * y - z * w)
    R[:, 0, 2] = 2 * (x * z + y * w)
    R[:, 1, 0] = 2 * (x * y + z * w)
    R[:, 1, 1] = 1 - 2 * (x * x + z * z)
    R[:, 1, 2] = 2 * (y * z - x * w)
    R[:, 2, 0] = 2 * (x * z - y * w)
    R[:, 2, 1] = 2 * (y * z + x * w)
    R[:, 2, 2] = 1 - 2 * (x * x + y * y)
    return R


def _joint_columns(array: str, address: str, *, offsets: bool = False) -> Callable[[Any, Sequence[Any]], Any]:
    def sim(model: Any, elements: Sequence[Any]) -> Callable[[Any], np.ndarray]:
        adr = [int(getattr(model, address)[_joint(model, e).id]) for e in elements]
        return _columns(array, adr, [float(_get(e, "offset", 0.0)) for e in elements] if offsets else None)
    return sim


def _joint_trig(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[Any, Sequence[Any]], Any]:
    def sim(model: Any, elements: Sequence[Any]) -> Callable[[Any], np.ndarray]:
        get = _columns("qpos", [int(model.jnt_qposadr[_joint(model, e).id]) for e in elements])
        return lambda f: fn(get(f))
    return sim


def _base(model: Any, e: Any, kinds: str) -> tuple[Any, bool]:
    """The base joint an element names: a free joint (True), or one slide/hinge joint of a planar base (False)."""
    j = _joint(model, e, None)
    t = int(model.jnt_type[j.id])
    if t == _FREE:
        return j, True
    if t in (_SLIDE, _HINGE) and _get(e, "kind") in kinds:
        _axis(e, _AX)
        return j, False
    raise KeyError(f"{label(e)}: joint {_get(e, 'name')!r} cannot carry {_get(e, 'kind')}")


def _sim_base_pos(model: Any, elements: Sequence[Any]) -> Callable[[Any], np.ndarray]:
    adr = []
    for e in elements:
        j, free = _base(model, e, "base_pos base_angle base_lin_vel base_ang_vel")
        adr.append(int(model.jnt_qposadr[j.id]) + (_axis(e, _AX) if free else 0))
    return _columns("qpos", adr)


def _sim_base_quat(model: Any, elements: Sequence[Any]) -> Callable[[Any], np.ndarray]:
    adr = []
    for e in elements:
        j, _ = _base(model, e, "")
        adr.append(int(model.jnt_qposadr[j.id]) + 3 + _axis(e, _QUAT))
    return _columns("qpos", adr)


def _sim_base_vel(linear: bool) -> Callable[[Any, Sequence[Any]], Any]:
    def sim(model: Any, elements: Sequence[Any]) -> Callable[[Any], np.ndarray]:
        adr = []
        for e in elements:
            j, free = _base(model, e, "base_pos base_angle base_lin_vel base_ang_vel")
            if free:
                native = "world" if linear else "base"  # MuJoCo's free joint: linear in world, angular in base
                if _get(e, "frame") not in ("", native):
                    raise KeyError(f"{label(e)}: a free joint's {'linear' if linear else 'angular'} velocity is in "
                                   f"the {native} frame")
                adr.append(int(model.jnt_dofadr[j.id]) + (0 if linear else 3) + _axis(e, _AX))
            else:
                adr.append(int(model.jnt_dofadr[j.id]))
        return _columns("qvel", adr)
    return sim


def _sim_gravity(model: Any, elements: Sequence[Any]) -> Callable[[Any], np.ndarray]:
    quat, axes = set(), []
    for e in elements:
        j = _joint(model, e, (_FREE,), "a free joint (projected gravity needs one)")
        quat.add(int(model.jnt_qposadr[j.id]) + 3)
        axes.append(_axis(e, _AX))
    if len(quat) != 1:
        raise KeyError(f"{label(elements[0])}: projected gravity of more than one free joint")
    q0, cols = quat.pop(), np.asarray(axes, dtype=np.intp)
    return lambda f: -_up(f.qpos[:, q0:q0 + 4])[:, cols]


def _sim_command(model: Any, elements: Sequence[Any]) -> Callable[[Any], np.ndarray]:
    cols = np.asarray([_axis(e, {"x": 0, "y": 1, "yaw": 2}) for e in elements], dtype=np.intp)
    return lambda f: f.command[:, cols]


def _sim_point(model: Any, elements: Sequence[Any]) -> Callable[[Any], np.ndarray]:
    parts = []
    for e in elements:
        frame, name, k = _get(e, "frame"), _get(e, "name"), _get(e, "kind")
        ax = _axis(e, _AX)
        ref = -1
        if frame not in ("", "world"):
            try:
                ref = model.body(frame).id
            except KeyError:
                raise KeyError(f"the model has no body named {frame!r}") from None
        try:
            parts.append(("xpos", model.body(name).id, ax, ref))
        except KeyError:
            try:
                if k != "body_pos":
                    raise KeyError
                parts.append(("site_xpos", model.site(name).id, ax, ref))  # an end effector given as a site
            except KeyError:
                raise KeyError(f"the model has no body named {name!r}") from None

    def compute(f: Any) -> np.ndarray:
        out = np.empty((f.qpos.shape[0], len(parts)))
        for c, (src, i, ax, ref) in enumerate(parts):
            out[:, c] = getattr(f, src)[:, i, ax] - (f.xpos[:, ref, ax] if ref >= 0 else 0.0)
        return out
    return compute


def _sim_prev_action(model: Any, elements: Sequence[Any]) -> Callable[[Any], np.ndarray]:
    names = [_get(e, "name") for e in elements]
    cache: dict[tuple[str, ...], np.ndarray] = {}

    def compute(f: Any) -> np.ndarray:
        joints = tuple(f.action_joints)
        cols = cache.get(joints)
        if cols is None:
            missing = [n for n in names if n not in joints]
            if missing:
                raise KeyError(f"prev_action({missing[0]}): no previous action given for joint {missing[0]!r}")
            cols = cache[joints] = np.asarray([joints.index(n) for n in names], dtype=np.intp)
        return f.prev_action[:, cols]
    return compute


# ---- robot-side helpers -------------------------------------------------------------------------------------------
def _robot_base_angle(f: Any, e: Any) -> float:
    a = _AX[_get(e, "axis")]
    b, c = [(1, 2), (2, 0), (0, 1)][a]
    return math.atan2(f.R[c, b], f.R[b, b])


def _robot_point(f: Any, e: Any) -> float:
    ax, frame = _AX[_get(e, "axis")], _get(e, "frame")
    p = f.point_xyz[_get(e, "name")][ax]
    if frame in ("", "world"):
        return p
    if frame in f.goal_names:
        return p - f.goal_xyz[ax]
    return p - f.point_xyz[frame][ax]


# ---- the registry -------------------------------------------------------------------------------------------------
kind(Kind("joint_pos", "position of joint `name` [rad or m]", sources=(JOINTS,), noise=0.01,
          sim=_joint_columns("qpos", "jnt_qposadr"), robot=lambda f, e: f.q[f.joint_index[_get(e, "name")]]))
kind(Kind("joint_pos_rel", "position of joint `name` minus its default position `offset` [rad or m]",
          sources=(JOINTS,), sim=_joint_columns("qpos", "jnt_qposadr", offsets=True), noise=0.01,
          robot=lambda f, e: f.q[f.joint_index[_get(e, "name")]] - float(_get(e, "offset", 0.0))))
kind(Kind("joint_vel", "velocity of joint `name` [rad/s or m/s]", sources=(JOINT_VELOCITIES,), noise=1.5,
          sim=_joint_columns("qvel", "jnt_dofadr"), robot=lambda f, e: f.dq[f.joint_index[_get(e, "name")]]))
kind(Kind("joint_cos", "cosine of the angle of joint `name`", sources=(JOINTS,), sim=_joint_trig(np.cos), noise=0.01,
          robot=lambda f, e: math.cos(f.q[f.joint_index[_get(e, "name")]])))
kind(Kind("joint_sin", "sine of the angle of joint `name`", sources=(JOINTS,), sim=_joint_trig(np.sin), noise=0.01,
          robot=lambda f, e: math.sin(f.q[f.joint_index[_get(e, "name")]])))
kind(Kind("base_pos", "base position along world `axis` (x, y, z) [m]", axes=XYZ, sources=(ODOMETRY,),
          sim=_sim_base_pos, robot=lambda f, e: f.base_p[_AX[_get(e, "axis")]]))
kind(Kind("base_angle", "base rotation about world `axis` of a planar robot [rad]", axes=XYZ, sources=(ORIENTATION,),
          sim=_joint_columns("qpos", "jnt_qposadr"), robot=_robot_base_angle, noise=0.05))
kind(Kind("base_quat", "base orientation quaternion component `axis` (w, x, y, z) in the world frame",
          axes=("w", "x", "y", "z"), sources=(ORIENTATION,), sim=_sim_base_quat,
          robot=lambda f, e: f.quat_xyzw[{"x": 0, "y": 1, "z": 2, "w": 3}[_get(e, "axis")]]))
kind(Kind("base_lin_vel", "base linear velocity along `axis`, in `frame` (world or base) [m/s]", axes=XYZ,
          frames=("world", "base"), sources=(ODOMETRY, ORIENTATION), sim=_sim_base_vel(True), noise=0.1,
          robot=lambda f, e: (f.base_v if _get(e, "frame") == "base" else f.R @ f.base_v)[_AX[_get(e, "axis")]]))
kind(Kind("base_ang_vel", "base angular velocity about `axis`, in `frame` (world or base) [rad/s]", axes=XYZ,
          frames=("world", "base"), sources=(ANGULAR_VELOCITY, ORIENTATION), sim=_sim_base_vel(False), noise=0.2,
          robot=lambda f, e: (f.ang if _get(e, "frame") == "base" else f.R @ f.ang)[_AX[_get(e, "axis")]]))
kind(Kind("projected_gravity", "the unit gravity vector (0, 0, -1 in the world) in the base frame, component `axis` "
                               "(from an IMU's orientation)", axes=XYZ, frames=("base",), sources=(ORIENTATION,),
          sim=_sim_gravity, robot=lambda f, e: -f.R[2, _AX[_get(e, "axis")]], noise=0.05))
kind(Kind("velocity_command", "commanded base velocity `axis` (x, y [m/s] in the base frame, yaw [rad/s]), told by "
                              "the operator (/cmd_vel); `range` is the range trained on", axes=("x", "y", "yaw"),
          sources=(COMMAND,), sim=_sim_command, robot=lambda f, e: f.cmd[_get(e, "axis")], needs_range=True))
kind(Kind("body_pos", "position of body `name` (e.g. a fingertip) along world `axis`, relative to body `frame` or to "
                      "the world origin when `frame` is 'world' [m]", axes=XYZ, sources=(POINTS,), sim=_sim_point,
          robot=_robot_point))
kind(Kind("object_pos", "position of a manipulated object `name` along world `axis` [m] (from perception)", axes=XYZ,
          sources=(POINTS,), sim=_sim_point, robot=_robot_point))
kind(Kind("goal", "goal coordinate along world `axis` [m]; `name` is the goal marker body in simulation", axes=XYZ,
          sources=(GOAL,), sim=_sim_point, robot=lambda f, e: f.goal_xyz[_AX[_get(e, "axis")]]))
kind(Kind("prev_action", "the previous action sent to joint `name` (normalised units, in [-1, 1])", sources=(OWN,),
          sim=_sim_prev_action, robot=lambda f, e: f.prev_action[f.action_index[_get(e, "name")]]))
kind(Kind("obs", "generic, unnamed element of a plain Gymnasium task (not deployable)"))


def sim_observer(model: Any, elements: Sequence[Any]) -> Callable[[Any], np.ndarray]:
    """``compute(frame) -> [N, len(elements)]``: every element recomputed by its kind, runs of one kind at a time,
    with each element's `clip` applied. Raises KeyError naming an element the model cannot give."""
    elements = list(elements)
    runs: list[tuple[int, int, Callable[[Any], np.ndarray]]] = []
    i = 0
    while i < len(elements):
        k = _get(elements[i], "kind")
        j = i
        while j < len(elements) and _get(elements[j], "kind") == k:
            j += 1
        entry = KINDS.get(k)
        if entry is None or entry.sim is None:
            raise KeyError(f"{label(elements[i])}: elements of kind {k!r} have no simulation recipe")
        runs.append((i, j, entry.sim(model, elements[i:j])))
        i = j
    clip = np.array([_get(e, "clip", None) if _get(e, "clip", None) is not None else np.inf for e in elements])
    clipped = bool(np.isfinite(clip).any())

    def compute(f: Any) -> np.ndarray:
        out = np.empty((f.qpos.shape[0], len(elements)))
        for a, b, fn in runs:
            out[:, a:b] = fn(f)
        return np.clip(out, -clip, clip) if clipped else out
    return compute
