"""The legged template: velocity tracking for a floating-base robot (`robotrl.envs.legged`).

It needs a free joint on the config's ``base`` body, ``feet``, a default pose and an action scale for every
actuated joint; an ``imu_site`` must sit on the base with its axes aligned to it. It adds a floor (and a light)
unless the model has a plane.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import mujoco
import numpy as np

from robotrl.envs.mjcf import FREE, names_of
from robotrl.envs.robot_config import RobotConfigError, listing
from robotrl.envs.templates import Template, default_pose_needed, register

if TYPE_CHECKING:
    from robotrl.envs.robot import Robot


def _env() -> type:
    from robotrl.envs.legged import LeggedVelocityEnv

    return LeggedVelocityEnv


def _needs(robot: Robot) -> list[str]:
    c, out = robot.config, []
    if robot.free_joint is None:
        out.append("a free joint (a legged robot's floating base; the model has none)")
    if c.base is None:
        out.append("base = BODY (the floating base)")
    if not c.feet:
        out.append("feet = [BODY or GEOM, ...]")
    out += default_pose_needed(robot)
    no_scale = robot.lacking("action_scale")
    if no_scale:
        out.append(f"action_scale for {listing(no_scale, 6)} (targets span default +- scale)")
    return out


def _check(robot: Robot, raw: mujoco.MjModel) -> None:
    """The base body carries the free joint, which has a name (the robot's free joint becomes it); the IMU site
    sits on the base, aligned with it."""
    where, c = robot.config.where, robot.config
    b = mujoco.mj_name2id(raw, mujoco.mjtObj.mjOBJ_BODY, c.base)
    jnts = [j for j in range(raw.njnt) if int(raw.jnt_bodyid[j]) == b and int(raw.jnt_type[j]) == FREE]
    joint_names = names_of(raw, mujoco.mjtObj.mjOBJ_JOINT, raw.njnt)
    if not jnts:
        owner = int(raw.jnt_bodyid[joint_names.index(robot.free_joint)])
        raise RobotConfigError(f"{where}: base body {c.base!r} has no free joint (the free joint "
                               f"is on body {mujoco.mj_id2name(raw, mujoco.mjtObj.mjOBJ_BODY, owner)!r})")
    robot.free_joint = joint_names[jnts[0]]
    if not robot.free_joint:
        raise RobotConfigError(f"{where}: the free joint of base body {c.base!r} has no name; "
                               "robotrl names the base's observations after it: give it one in the MJCF "
                               "(<freejoint name=\"root\"/>)")
    if c.imu_site is not None:
        s = mujoco.mj_name2id(raw, mujoco.mjtObj.mjOBJ_SITE, c.imu_site)
        q = raw.site_quat[s]
        if int(raw.site_bodyid[s]) != b or not np.allclose(np.abs(q[0]), 1.0, atol=1e-6):
            raise RobotConfigError(f"{where}: imu_site {c.imu_site!r} must sit on the base body "
                                   f"{c.base!r} with its axes aligned to it")


def _add_floor(robot: Robot, spec: mujoco.MjSpec, raw: mujoco.MjModel) -> None:
    """A checkered ground plane and a light, unless the model has a plane already."""
    if any(int(raw.geom_type[g]) == int(mujoco.mjtGeom.mjGEOM_PLANE) for g in range(raw.ngeom)):
        return
    tex = spec.add_texture()
    tex.name, tex.type = "robotrl_grid", mujoco.mjtTexture.mjTEXTURE_2D
    tex.builtin = mujoco.mjtBuiltin.mjBUILTIN_CHECKER
    tex.width = tex.height = 256
    tex.rgb1, tex.rgb2 = [0.20, 0.30, 0.40], [0.10, 0.20, 0.30]
    mat = spec.add_material()
    mat.name = "robotrl_grid"
    mat.textures[int(mujoco.mjtTextureRole.mjTEXROLE_RGB)] = "robotrl_grid"
    mat.texrepeat = [1.0, 1.0]
    mat.texuniform = True
    floor = spec.worldbody.add_geom()
    floor.name, floor.type, floor.size = "floor", mujoco.mjtGeom.mjGEOM_PLANE, [0, 0, 0.05]
    floor.material = "robotrl_grid"
    floor.contype = floor.conaffinity = 1
    floor.condim = 3
    if raw.nlight == 0:
        light = spec.worldbody.add_light()
        light.pos, light.dir = [0, 0, 3], [0, 0, -1]
        light.type = mujoco.mjtLightType.mjLIGHT_DIRECTIONAL


SIM2REAL: dict[str, Any] = {
    # what a legged policy meets on a real robot and not in its model, on when training unless the run turns it off
    # (robotrl train ... --no-randomize, or a setting of its own); pushes are the task's ([legged] push_interval_s,
    # push_velocity). The figures follow legged_gym / unitree_rl_gym, made relative where robots differ in size:
    "randomize_friction": 0.5,  # friction x [0.5, 1.5] per geom (a contact takes the larger: legged_gym 0.5..1.25)
    "randomize_gain": 0.2,  # servo strength: kp and kd x [0.8, 1.2] per joint
    "base_payload": (-0.05, 0.2),  # -5 %..+20 % of the robot's mass on the base: unitree_rl_gym -1..+3 kg on a Go2
    "base_com": 0.025,  # the base's centre of mass within +-2.5 cm per axis (small enough for a 3 kg robot)
    "latency": (0.0, 0.02),  # 0-20 ms from a new target to the servos, per episode, at the physics step
    "sensor_noise": 1.0,  # legged_gym's noise scales (joint position 0.01 rad, velocity 1.5 rad/s, gyro 0.2 rad/s, ...)
}


def _stand(env: Any) -> None:
    env.set_command(0.0, 0.0, 0.0)


LEGGED = register(Template(
    "legged", "velocity tracking for a floating-base robot: base, feet, a default pose, PD gains", _env,
    needs=_needs, check=_check, add_to_model=_add_floor, signs=("base", "feet"), at_rest=_stand,
    held_ends="(the base touches the ground or tilts beyond max_tilt): check the default pose and the base",
    sim2real=SIM2REAL))
