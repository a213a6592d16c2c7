"""The reach template: reaching goals with a fixed-base arm (`robotrl.envs.reach`).

It needs an ``end_effector`` (a site or a body), a default (home) pose for every actuated joint and no free
joint; it adds the goal marker, a mocap body named `GOAL_BODY`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mujoco

from robotrl.envs.robot_config import RobotConfigError
from robotrl.envs.templates import Template, default_pose_needed, register

if TYPE_CHECKING:
    from robotrl.envs.robot import Robot

GOAL_BODY = "goal"  # the reach template's goal marker (a mocap body it adds)


def _env() -> type:
    from robotrl.envs.reach import ReachEnv

    return ReachEnv


def _needs(robot: Robot) -> list[str]:
    out = []
    if robot.config.end_effector is None:
        out.append("end_effector = SITE or BODY")
    if robot.free_joint is not None:
        out.append(f"a fixed base (the model's free joint {robot.free_joint!r} lets the arm fall and float: "
                   "remove it)")
    model = getattr(robot, "model", None)  # inspect's robot, compiled without a template's additions
    if model is not None and robot.template is None and \
            mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, GOAL_BODY) >= 0:
        out.append(f"a model without a body named {GOAL_BODY!r} (the template adds its goal marker under that "
                   "name: rename the body)")
    return out + default_pose_needed(robot)


def _add_goal_marker(robot: Robot, spec: mujoco.MjSpec, raw: mujoco.MjModel) -> None:
    """A mocap body carrying a small green sphere that collides with nothing: the reach goal."""
    if mujoco.mj_name2id(raw, mujoco.mjtObj.mjOBJ_BODY, GOAL_BODY) >= 0:
        raise RobotConfigError(f"{robot.config.where}: the model has a body named {GOAL_BODY!r}; the reach template "
                               "adds its goal marker under that name")
    body = spec.worldbody.add_body()
    body.name, body.mocap = GOAL_BODY, True
    g = body.add_geom()
    g.type, g.size, g.rgba = mujoco.mjtGeom.mjGEOM_SPHERE, [0.02, 0, 0], [0.1, 0.9, 0.2, 0.6]
    g.contype = g.conaffinity = 0
    g.mass = 0.0


REACH = register(Template(
    "reach", "reaching goals with an arm: end_effector, a home (default) pose", _env,
    needs=_needs, add_to_model=_add_goal_marker, signs=("end_effector",)))
