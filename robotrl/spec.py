"""The task spec: what every element of a task's observation and action vectors *is*.

This is the source of the policy card (see DESIGN.md). It is written once per task in
`robotrl.envs`, stored in every run directory as ``spec.json``, embedded in the exported ONNX file,
and read back by the robot-side node. It depends on the standard library and numpy only (`robotrl.kinds`), so
that `robotrl.deploy` can use it on a robot computer without torch, gymnasium or mujoco.

Example (Hopper, abbreviated)::

    observation: joint_pos(rootz), joint_pos(thigh_joint), ..., joint_vel(thigh_joint), ...
    action:      joint(thigh_joint, effort, [-1, 1]), ...
    control_period: 0.008 s (frame skip 4 of a 0.002 s physics step)
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from robotrl.kinds import KINDS


def finite_number(v: Any) -> bool:
    """A JSON number that is a finite float: not bool, NaN or an infinity, and not an integer beyond float range
    (``math.isfinite`` raises OverflowError on those, e.g. 10**400 from a hand-edited card)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    return math.isfinite(v) if isinstance(v, float) else abs(v) <= 1.7976931348623157e308


def _finite(v: Any) -> bool:
    """math.isfinite for any real number (numpy's too), False for an integer beyond float range."""
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


SPEC_FORMAT = "robotrl-spec/1"

# Observation element kinds, each something a robot can measure or be told, defined once in `robotrl.kinds` (with
# how the simulation computes it and how the robot builds it): kind -> its meaning, for the card and the docs.
class _Meanings(Mapping):
    """kind -> meaning, a live view of the registry (a kind registered later is known here too)."""

    def __getitem__(self, name: str) -> str:
        return KINDS[name].meaning

    def __iter__(self) -> Iterator[str]:
        return iter(KINDS)

    def __len__(self) -> int:
        return len(KINDS)


OBS_KINDS: Mapping[str, str] = _Meanings()
ACT_KINDS = ("effort", "position", "velocity", "generic")
MAX_COMMAND = 20.0
"""The largest velocity command (m/s or rad/s) a velocity_command element's range may reach: the legged template
refuses wider command ranges, and the robot side a card that claims them (+-100 m/s on /cmd_vel is a typo)."""


@dataclass(frozen=True)
class ObsElement:
    """One element of the observation vector. `clip`: the value is clipped to +-clip (as in training)."""

    kind: str
    name: str
    unit: str = ""
    axis: str = ""
    frame: str = ""
    clip: float | None = None
    offset: float = 0.0
    """joint_pos_rel: the joint's default position, subtracted from the measurement."""
    range: tuple[float, float] | None = None
    """velocity_command: the [low, high] trained on; the robot clamps the operator's command to it."""

    def __post_init__(self) -> None:
        if self.kind not in OBS_KINDS:
            raise ValueError(f"unknown observation kind {self.kind!r}; known: {', '.join(OBS_KINDS)}")
        if self.range is not None:
            lo, hi = self.range
            if not (_finite(lo) and _finite(hi) and lo <= hi):
                raise ValueError(f"{self.label()}: range must be finite with low <= high, got {self.range}")
            object.__setattr__(self, "range", (float(lo), float(hi)))

    def label(self) -> str:
        """Short human-readable form, e.g. ``base_lin_vel(rootx).x[world]``."""
        out = f"{self.kind}({self.name})"
        if self.axis:
            out += f".{self.axis}"
        if self.frame:
            out += f"[{self.frame}]"
        return out


@dataclass(frozen=True)
class ActElement:
    """One element of the action vector: the command for one joint (actuator), in robot units.

    The policy works in normalised units a in [-1, 1]; the command sent to the robot is
    ``offset + scale * a`` with ``scale = (high - low) / 2`` and ``offset = (high + low) / 2``.
    """

    joint: str
    kind: str
    low: float
    high: float
    unit: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ACT_KINDS:
            raise ValueError(f"unknown action kind {self.kind!r}; known: {', '.join(ACT_KINDS)}")
        if not (_finite(self.low) and _finite(self.high) and self.low < self.high):
            raise ValueError(f"action bounds of {self.joint!r} must be finite with low < high, got "
                             f"[{self.low}, {self.high}]")

    @property
    def scale(self) -> float:
        return (self.high - self.low) / 2.0

    @property
    def offset(self) -> float:
        return (self.high + self.low) / 2.0


@dataclass(frozen=True)
class TaskSpec:
    """Observation and action layout of a task, plus its timing."""

    task_id: str
    observation: tuple[ObsElement, ...]
    action: tuple[ActElement, ...]
    control_period: float | None = None
    """Seconds between two actions (physics timestep x frame skip); None if the task has no clock."""
    frame_skip: int | None = None
    max_episode_steps: int | None = None
    deployable: bool = False
    """True when every element can be measured on a robot (the task suite names them all)."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Task-specific facts that travel with the card (e.g. sim-to-real settings used)."""
    joint_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Physical range [low, high] of each limited joint the card names (rad or m), from the model. The
    robot side treats a reading well outside it as a sensor fault."""

    @property
    def obs_dim(self) -> int:
        return len(self.observation)

    @property
    def act_dim(self) -> int:
        return len(self.action)

    @property
    def action_low(self) -> list[float]:
        return [a.low for a in self.action]

    @property
    def action_high(self) -> list[float]:
        return [a.high for a in self.action]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["format"] = SPEC_FORMAT
        d["observation"] = [asdict(o) for o in self.observation]
        d["action"] = [asdict(a) for a in self.action]
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskSpec:
        """Parse and validate; raises ValueError naming the first problem found."""
        if not isinstance(d, dict):
            raise ValueError("task spec must be a JSON object")
        fmt = d.get("format", SPEC_FORMAT)
        if fmt != SPEC_FORMAT:
            raise ValueError(f"task spec format {fmt!r} is not supported (expected {SPEC_FORMAT!r})")
        for key in ("task_id", "observation", "action"):
            if key not in d:
                raise ValueError(f"task spec has no {key!r}")
        if not isinstance(d.get("extras") or {}, dict):
            raise ValueError(f"task spec 'extras' must be an object, got {json.dumps(d['extras'])[:40]}")
        try:
            obs = tuple(ObsElement(**o) for o in d["observation"])
            act = tuple(ActElement(**a) for a in d["action"])
        except TypeError as e:
            raise ValueError(f"malformed task spec element: {e}") from None
        return cls(
            task_id=str(d["task_id"]),
            observation=obs,
            action=act,
            control_period=d.get("control_period"),
            frame_skip=d.get("frame_skip"),
            max_episode_steps=d.get("max_episode_steps"),
            deployable=bool(d.get("deployable", False)),
            extras=dict(d.get("extras") or {}),
            joint_ranges=_joint_ranges(d.get("joint_ranges") or {}),
        )

    @classmethod
    def from_json(cls, text: str) -> TaskSpec:
        return cls.from_dict(json.loads(text))


def _joint_ranges(d: Any) -> dict[str, tuple[float, float]]:
    if not isinstance(d, dict):
        raise ValueError("task spec 'joint_ranges' must be an object {joint: [low, high]}")
    out = {}
    for name, r in d.items():
        if not (isinstance(r, (list, tuple)) and len(r) == 2 and all(finite_number(v) for v in r) and r[0] < r[1]):
            raise ValueError(f"task spec joint_ranges[{name!r}] must be [low, high], finite, low < high; got {r!r}")
        out[str(name)] = (float(r[0]), float(r[1]))
    return out


def spec_change(recorded: TaskSpec, current: TaskSpec) -> str | None:
    """The first difference between a task's spec as recorded (a run's spec.json, a card) and as the task builds
    it now, e.g. ``action[0].high: 0.7 then, 0.5 now``; None where they agree (numbers to 1e-9 relative).

    A robot config or model edited after training changes its task under the same name; this names how. Fields
    the record lacks (written by an older robotrl) and the sim-to-real settings in ``extras`` are not compared."""

    def walk(a: Any, b: Any, path: str) -> str | None:
        if isinstance(a, dict) and isinstance(b, dict):
            # the model's physics last (a config's gain names itself better), by element before its digest
            for key in sorted(a, key=lambda k: {"physics_parts": 1, "physics": 2}.get(k, 0)):
                if key in b and not (path == "extras" and key == "sim2real"):
                    found = walk(a[key], b[key], f"{path}.{key}" if path else str(key))
                    if found:
                        return found
            return None
        if isinstance(a, list | tuple) and isinstance(b, list | tuple):
            if len(a) != len(b):
                return f"{path}: {len(a)} entries then, {len(b)} now"
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                found = walk(x, y, f"{path}[{i}]")
                if found:
                    return found
            return None
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
        if (numbers and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)) or (not numbers and a == b):
            return None
        if ".robot.physics_parts." in path and isinstance(a, str) and isinstance(b, str):
            return f"the MJCF model: {_physics_part_change(path.rsplit('.', 1)[1], a, b) or path + ' changed'}"
        if path.endswith("robot.physics"):  # a digest: say what it covers
            return (f"{path}: the compiled model's physics differ (masses, inertias, geometry, joints, damping, "
                    f"servos, sites, gravity or timestep; digest {json.dumps(a)} then, {json.dumps(b)} now; a MuJoCo "
                    f"other than training's can compile a model differently too)")
        return f"{path}: {json.dumps(a)} then, {json.dumps(b)} now"

    return walk(recorded.to_dict(), current.to_dict(), "")


PHYSICS_FIELDS = {  # what a robot's physics digest covers, in its order: field -> (element kind, what it is)
    "body_mass": ("body", "mass"), "body_inertia": ("body", "inertia"), "body_pos": ("body", "position"),
    "body_quat": ("body", "orientation"), "body_ipos": ("body", "centre of mass"), "geom_type": ("geom", "shape"),
    "geom_size": ("geom", "size"), "geom_pos": ("geom", "position"), "geom_quat": ("geom", "orientation"),
    "geom_friction": ("geom", "friction"), "geom_contype": ("geom", "contype"),
    "geom_conaffinity": ("geom", "conaffinity"), "jnt_type": ("joint", "type"), "jnt_axis": ("joint", "axis"),
    "jnt_pos": ("joint", "position"), "jnt_range": ("joint", "range"), "jnt_stiffness": ("joint", "stiffness"),
    "dof_damping": ("dof", "damping"), "dof_armature": ("dof", "armature"),
    "dof_frictionloss": ("dof", "frictionloss"), "actuator_gainprm": ("actuator", "gain"),
    "actuator_biasprm": ("actuator", "bias (kp, kd)"), "actuator_forcerange": ("actuator", "force range"),
    "actuator_ctrlrange": ("actuator", "control range"), "site_pos": ("site", "position"),
    "site_quat": ("site", "orientation"),
}
"""`envs.robot.Robot.physics_fingerprint` and `physics_parts` hash these fields of the compiled model; `spec_change`
names a changed one by its element kind (a dof by its joint) and what it is."""


def _physics_part_change(field: str, then: str, now: str) -> str | None:
    """What one field of the physics digest by element (`Robot.physics_parts`) says changed: the first element
    whose digest differs, by name, e.g. "body 'thigh': its mass differs from training's (body_mass)"."""
    def parse(text: str) -> list[tuple[str, str]]:
        return [tuple(item.rsplit("=", 1)) for item in text.split(",") if "=" in item] if text else []

    a, b = parse(then), parse(now)
    if field == "option":
        names = [n for (n, x), (m, y) in zip(a, b, strict=False) if n == m and x != y]
        return f"the model's {' and '.join(names) or 'options'} differ from training's (<option>)"
    kind, word = PHYSICS_FIELDS.get(field, (field.split("_", 1)[0], field))
    kind = "joint" if kind == "dof" else kind  # a dof is named after its joint
    if [n for n, _ in a] != [n for n, _ in b]:
        gone = [n for n, _ in a if n not in dict(b)]
        new = [n for n, _ in b if n not in dict(a)]
        what = (f"{kind} {gone[0]!r} is gone" if gone else f"{kind} {new[0]!r} is new" if new
                else "they are in another order")
        kinds = "bodies" if kind == "body" else kind + "s"
        return f"the model's {kinds} differ from training's: {what} ({len(a)} then, {len(b)} now)"
    for (n, x), (_, y) in zip(a, b, strict=True):
        if x != y:
            return f"{kind} {n!r}: its {word} differs from training's ({field})"
    return None
