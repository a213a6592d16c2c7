"""The legged template: velocity tracking for a floating-base robot (`robotrl.envs.legged`).

It needs a free joint on the config's ``base`` body, ``feet`` (bodies, geoms or sites) and a default pose; an
``imu_site`` must sit on the base with its axes aligned to it. A joint without an ``action_scale`` gets one from its
servo (effort limit / kp, `Template.derive_action_scale`). It names an unnamed free joint after the base
(`robotrl.envs.mjcf.free_joint_name`) and adds a floor (and a light) unless the model has a plane: a plane, or with
a ``[terrain]`` table in the robot config a heightfield of tiles (`robotrl.envs.terrain`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import mujoco
import numpy as np

from robotrl.envs.mjcf import FREE, free_joint_name
from robotrl.envs.robot_config import RobotConfigError
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
        out.append("feet = [BODY, GEOM or SITE, ...]")
    return out + default_pose_needed(robot)


def _check(robot: Robot, raw: mujoco.MjModel) -> None:
    """The base body carries the free joint (the robot's free joint becomes it, named by `free_joint_name`); the IMU
    site sits on the base, aligned with it."""
    where, c = robot.config.where, robot.config
    b = mujoco.mj_name2id(raw, mujoco.mjtObj.mjOBJ_BODY, c.base)
    jnts = [j for j in range(raw.njnt) if int(raw.jnt_bodyid[j]) == b and int(raw.jnt_type[j]) == FREE]
    if not jnts:
        owner = next(int(raw.jnt_bodyid[j]) for j in range(raw.njnt) if int(raw.jnt_type[j]) == FREE)
        raise RobotConfigError(f"{where}: base body {c.base!r} has no free joint (the free joint "
                               f"is on body {mujoco.mj_id2name(raw, mujoco.mjtObj.mjOBJ_BODY, owner)!r})")
    robot.free_joint = free_joint_name(raw, jnts[0])
    if not robot.free_joint:  # unnamed, and joints of the model are called both `base` and `base`_free
        raise RobotConfigError(f"{where}: the free joint of base body {c.base!r} has no name, and the names robotrl "
                               f"would give it are joints' already: name it in the MJCF (<freejoint name=\"root\"/>)")
    if c.imu_site is not None:
        s = mujoco.mj_name2id(raw, mujoco.mjtObj.mjOBJ_SITE, c.imu_site)
        q = raw.site_quat[s]
        if int(raw.site_bodyid[s]) != b or not np.allclose(np.abs(q[0]), 1.0, atol=1e-6):
            raise RobotConfigError(f"{where}: imu_site {c.imu_site!r} must sit on the base body "
                                   f"{c.base!r} with its axes aligned to it")


def _add_to_model(robot: Robot, spec: mujoco.MjSpec, raw: mujoco.MjModel) -> None:
    _name_free_joint(robot, spec, raw)
    _add_floor(robot, spec, raw)


def _name_free_joint(robot: Robot, spec: mujoco.MjSpec, raw: mujoco.MjModel) -> None:
    """An unnamed free joint on the base gets the name `_check` chose, so that the compiled model knows the base's
    observations by the name the spec and the card give them."""
    free = next(j for j in spec.joints if j.id >= 0 and int(raw.jnt_type[j.id]) == FREE
                and mujoco.mj_id2name(raw, mujoco.mjtObj.mjOBJ_BODY, int(raw.jnt_bodyid[j.id])) == robot.config.base)
    if not free.name:
        free.name = robot.free_joint


def _add_floor(robot: Robot, spec: mujoco.MjSpec, raw: mujoco.MjModel) -> None:
    """A checkered ground plane and a light, unless the model has a plane already; the robot config's [terrain] in
    place of the plane (`robotrl.envs.terrain`)."""
    terrain = robot.config.terrain
    if any(int(raw.geom_type[g]) == int(mujoco.mjtGeom.mjGEOM_PLANE) for g in range(raw.ngeom)):
        if terrain is not None:
            raise RobotConfigError(f"{robot.config.where}: [terrain] asks for a ground of tiles, but the model has a "
                                   "ground plane of its own: remove the plane from the MJCF, or the [terrain] table")
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
    if terrain is not None:
        from robotrl.envs.terrain import add_terrain

        floor = add_terrain(spec, terrain, "robotrl_grid")
    else:
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
    needs=_needs, check=_check, add_to_model=_add_to_model, signs=("base", "feet"), at_rest=_stand,
    derive_action_scale=True, sim2real=SIM2REAL,
    held_ends="(the base touches the ground or tilts beyond max_tilt): check the default pose and the base"))
