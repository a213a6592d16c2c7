"""Recompute a task's observation vector from MuJoCo state, element by element, by name.

The spec names what each observation element is; `robotrl.kinds` defines each kind once, its simulation recipe
included, and this module applies those recipes to one `MjData`. `Observer(model, elements)` resolves every name to
an index once, and ``observer(data)`` returns the vector. The tests check that it reproduces each task's own
observation exactly, so the names in a policy card are known to mean what the policy was trained on. The template
tasks compute their observations with the same recipes over all their worlds at once; the simulated robot of
`robotrl.deploy` publishes the same quantities over ROS 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import mujoco
import numpy as np

from robotrl.kinds import sim_observer
from robotrl.spec import ObsElement


class Observer:
    """Compiled recipe for a list of observation elements on one MuJoCo model."""

    def __init__(self, model: mujoco.MjModel, elements: Sequence[ObsElement]):
        self.elements = tuple(elements)
        self._compute = sim_observer(model, self.elements)
        self._axes = [e.axis for e in self.elements if e.kind == "velocity_command"]

    def __call__(self, data: mujoco.MjData, prev_action: dict[str, float] | None = None,
                 command: dict[str, float] | None = None) -> np.ndarray:
        """The observation; `prev_action` (joint -> normalised action) and `command` (axis -> value) give
        what MuJoCo's state does not hold."""
        if self._axes:
            missing = [a for a in self._axes if command is None or a not in command]
            if missing:
                raise KeyError(f"velocity_command(cmd_vel).{missing[0]}: no velocity command given for axis "
                               f"{missing[0]!r}")
        cmd = np.array([[(command or {}).get(a, 0.0) for a in ("x", "y", "yaw")]])
        joints = list(prev_action or {})
        prev = np.array([[prev_action[j] for j in joints]]) if joints else np.zeros((1, 0))
        frame = SimpleNamespace(qpos=data.qpos[None], qvel=data.qvel[None], xpos=data.xpos[None],
                                site_xpos=data.site_xpos[None], command=cmd, action_joints=joints, prev_action=prev)
        return self._compute(frame)[0]
