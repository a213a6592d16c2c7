"""The task spec: what every element of a task's observation and action vectors *is*.

This is the source of the policy card (see DESIGN.md). It is written once per task in
`robotrl.envs`, stored in every run directory as ``spec.json``, embedded in the exported ONNX file,
and read back by the robot-side node. It depends on the standard library only, so that
`robotrl.deploy` can use it on a robot computer without torch, gymnasium or mujoco.

Example (Hopper, abbreviated)::

    observation: joint_pos(rootz), joint_pos(thigh_joint), ..., joint_vel(thigh_joint), ...
    action:      joint(thigh_joint, effort, [-1, 1]), ...
    control_period: 0.008 s (frame skip 4 of a 0.002 s physics step)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

SPEC_FORMAT = "robotrl-spec/1"

# Observation element kinds a robot can provide. "obs" is the generic element of a plain Gymnasium
# task whose elements have not been named (not deployable on a robot).
OBS_KINDS = (
    "joint_pos",  # joint position [rad or m]
    "joint_vel",  # joint velocity [rad/s or m/s]
    "base_height",  # height of the base above the ground [m]
    "base_pos",  # base position along one world axis [m]
    "base_quat",  # base orientation quaternion component [w, x, y, z order in the vector]
    "base_lin_vel",  # base linear velocity along one axis [m/s]
    "base_ang_vel",  # base angular velocity about one axis [rad/s]
    "goal",  # goal coordinate [m]
    "goal_rel",  # goal minus a named point (e.g. fingertip), one axis [m]
    "body_pos",  # position of a named body along one axis [m]
    "body_vel",  # velocity of a named body along one axis [m/s]
    "prev_action",  # previous action sent to a named joint (normalised units)
    "trig",  # sin or cos of a named joint angle (name is "sin:joint" or "cos:joint")
    "obs",  # generic, unnamed element
)
ACT_KINDS = ("effort", "position", "velocity", "generic")


@dataclass(frozen=True)
class ObsElement:
    """One element of the observation vector."""

    kind: str
    name: str
    unit: str = ""

    def __post_init__(self) -> None:
        if self.kind not in OBS_KINDS:
            raise ValueError(f"unknown observation kind {self.kind!r}; known: {', '.join(OBS_KINDS)}")


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

    def __post_init__(self) -> None:
        if self.kind not in ACT_KINDS:
            raise ValueError(f"unknown action kind {self.kind!r}; known: {', '.join(ACT_KINDS)}")
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
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
        )

    @classmethod
    def from_json(cls, text: str) -> TaskSpec:
        return cls.from_dict(json.loads(text))
