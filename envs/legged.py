"""Legged velocity tracking: the task template that turns any floating-base robot (`envs.robot.Robot`)
into a walking task, in the practice of legged_gym, Isaac Lab / mjlab and unitree_rl_gym.

    env = LeggedVelocityEnv(Robot.load("my_robot.toml", "legged"))     # robotrl/Quadruped-v0 is ours

Observation, every element what a real legged robot measures or is told (n = actuated joints):

    | elements | kind                | what                                                   | unit  |
    | 3        | base_ang_vel        | IMU angular velocity x, y, z in the base frame         | rad/s |
    | 3        | projected_gravity   | gravity (0, 0, -1) rotated into the base frame          |       |
    | 3        | velocity_command    | commanded vx, vy (base frame) and yaw rate             | m/s, rad/s |
    | n        | joint_pos_rel       | joint position minus the default pose                  | rad   |
    | n        | joint_vel           | joint velocity                                         | rad/s |
    | n        | prev_action         | the previous action, normalised to [-1, 1]             |       |

Action (n): joint position targets in [default - scale, default + scale] (within the joint's range),
sent to the PD servos, which track them at the physics rate for `decimation` physics steps.

Reward per control step (each term times the control period, as legged_gym does; every term in
``info["reward_terms"]``): tracking of the commanded planar velocity and yaw rate with exponential
kernels exp(-error^2 / sigma) (weights `track_lin` 1.0, `track_yaw` 0.5), and penalties on vertical
velocity (`lin_vel_z` -2), roll/pitch rate (`ang_vel_xy` -0.05), tilt (`orientation` -1), joint
torques (`torque` -2e-4), action rate (`action_rate` -0.01), joints beyond 90 % of their range
(`joint_limits` -10), moving while told to stand (`stand_still` -0.5) and a reward for feet swing
times longer than `air_time` (`feet_air_time` 1.0, only while told to move). With
`only_positive_rewards` the step's total is floored at 0 (legged_gym's default: early policies then
do not learn to fall quickly). Deviations from legged_gym: no base linear velocity in the
observation (a robot without a state estimator does not have it), pushes as changes of the base
velocity every `push_interval_s`.

Commands are drawn every `resample_s` seconds (uniform in that range) from `command_ranges`, or zero
(stand) with probability `stand_probability`; `set_command` fixes one (the simulated robot does this
from /cmd_vel). An episode ends when a base geom touches the ground (or anything else that is not part of
the robot: its own legs do not count) or the base tilts beyond `max_tilt`, and is truncated after
`episode_s`. The start is the robot settled on its default pose, turned to a random heading, joints
perturbed by `reset_noise`.
"""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.utils import seeding

from robotrl.envs.mjcf import foot_geoms
from robotrl.envs.robot import MAX_EPISODE_PHYSICS_STEPS, Robot, is_unstable
from robotrl.envs.robot_config import RobotConfigError
from robotrl.envs.terms import Terms
from robotrl.envs.terrain import Curriculum, footprint_radius, terrain_of
from robotrl.envs.worlds import (
    BatchedTask,
    Worlds,
    add_actuator_force_sensor,
    add_contact_sensor,
    add_frame_position_sensor,
    add_frame_velocity_sensor,
    sensor_columns,
)
from robotrl.kinds import rotations, sim_observer
from robotrl.spec import MAX_COMMAND, ActElement, ObsElement, TaskSpec

AXES = ("x", "y", "yaw")

# ---- reward terms: functions of the step's quantities `s` (arrays over the worlds), see `LeggedVelocityTask._step`
TERMS = Terms("legged")


@TERMS.term(weight=1.0, doc="exp(-|v_xy command - v_xy|^2 / tracking_sigma): the commanded planar velocity")
def track_lin(s: Any) -> np.ndarray:
    return np.exp(-((s.cmd[:, 0] - s.v[:, 0]) ** 2 + (s.cmd[:, 1] - s.v[:, 1]) ** 2) / s.sigma)


@TERMS.term(weight=0.5, doc="exp(-(yaw rate command - yaw rate)^2 / tracking_sigma): the commanded yaw rate")
def track_yaw(s: Any) -> np.ndarray:
    return np.exp(-((s.cmd[:, 2] - s.w[:, 2]) ** 2) / s.sigma)


@TERMS.term(weight=-2.0, doc="vertical base velocity squared [m^2/s^2]")
def lin_vel_z(s: Any) -> np.ndarray:
    return s.v[:, 2] ** 2


@TERMS.term(weight=-0.05, doc="roll and pitch rates squared [rad^2/s^2]")
def ang_vel_xy(s: Any) -> np.ndarray:
    return s.w[:, 0] ** 2 + s.w[:, 1] ** 2


@TERMS.term(weight=-1.0, doc="tilt: the horizontal part of gravity in the base frame, squared")
def orientation(s: Any) -> np.ndarray:
    return s.up[:, 0] ** 2 + s.up[:, 1] ** 2


@TERMS.term(weight=-0.1, doc="joint torques as fractions of their effort limits, squared (of kp x action scale for a "
                             "joint without a limit): the same for a robot of any size")
def effort(s: Any) -> np.ndarray:
    return np.sum((s.torque / s.effort) ** 2, axis=1)


@TERMS.term(weight=-0.01, doc="change of the normalised action since the last step, squared")
def action_rate(s: Any) -> np.ndarray:
    return np.sum((s.a - s.prev_a) ** 2, axis=1)


@TERMS.term(weight=-10.0, doc="how far joints are beyond soft_limit of their range [rad]")
def joint_limits(s: Any) -> np.ndarray:
    return np.sum(np.maximum(s.soft_lo - s.q, 0) + np.maximum(s.q - s.soft_hi, 0), axis=1)


@TERMS.term(weight=-0.5, doc="distance from the default pose while told to stand [rad]")
def stand_still(s: Any) -> np.ndarray:
    return np.where(s.moving, 0.0, np.sum(np.abs(s.q_rel), axis=1))


@TERMS.term(weight=1.0, doc="swing time beyond air_time of each foot that touches down, while told to move [s]")
def feet_air_time(s: Any) -> np.ndarray:
    return np.where(s.moving, np.sum((s.air - s.air_time) * s.first_contact, axis=1), 0.0)


@TERMS.term(weight=-0.1, doc="horizontal speed of the feet that touch the ground, summed [m/s]: slipping")
def feet_slip(s: Any) -> np.ndarray:
    return np.sum(np.where(s.feet_down, s.foot_speed, 0.0), axis=1)


@TERMS.term(weight=0.0, doc="swing feet away from the clearance height: ((height - clearance) / clearance)^2 per "
                             "foot in the air, weighed by tanh(its horizontal speed / 0.5 m/s)")
def feet_clearance(s: Any) -> np.ndarray:
    miss = ((s.foot_height - s.clearance) / s.clearance) ** 2 * np.tanh(s.foot_speed / 0.5)
    return np.sum(np.where(s.feet_down, 0.0, miss), axis=1)


REWARD_WEIGHTS = TERMS.defaults()
REFERENCE_HEIGHT = 0.3
"""[m] the base height over the feet of the robot the unscaled defaults were written for (ours): a robot of height h
gets commands, tracking kernel and gait times scaled by ``size = clip(sqrt(h / 0.3), 0.5, 1)`` (Froude scaling:
speeds of dynamically similar gaits grow as the square root of leg length)."""


def robot_size(robot: Robot, qb: int) -> tuple[float, float]:
    """(height of the base over its lowest collision point at the default pose [m], the size factor)."""
    m = robot.model
    d = mujoco.MjData(m)
    d.qpos[robot.qpos_adr] = robot.default
    mujoco.mj_kinematics(m, d)
    lowest = min((float(d.geom_xpos[g, 2] - m.geom_rbound[g]) for g in range(m.ngeom)
                  if m.geom_bodyid[g] != 0 and (m.geom_contype[g] or m.geom_conaffinity[g])), default=0.0)
    height = max(float(d.qpos[qb + 2]) - lowest, 1e-3)
    return height, float(np.clip(math.sqrt(height / REFERENCE_HEIGHT), 0.5, 1.0))


def _foot_object(model: mujoco.MjModel, spec: mujoco.MjSpec, name: str) -> tuple[mujoco.mjtObj, str]:
    """What foot `name`'s contact sensor watches: the body or geom of that name, or for a site the geom it stands for
    (`robotrl.envs.mjcf.site_foot_geom`, which says why), named in `spec` if it has no name."""
    if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name) >= 0:
        return mujoco.mjtObj.mjOBJ_BODY, name
    if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name) >= 0:
        return mujoco.mjtObj.mjOBJ_GEOM, name
    found = foot_geoms(model, name)
    if not found:
        return mujoco.mjtObj.mjOBJ_SITE, name  # no colliding geom: it never touches (`_StandWatch` says so)
    geom = next(g for g in spec.geoms if g.id == found[0])
    if not geom.name:
        geom.name = f"robotrl_{name}"
    return mujoco.mjtObj.mjOBJ_GEOM, geom.name


class LeggedVelocityTask(BatchedTask):
    """The legged template over `num_worlds` worlds: arrays in, arrays out (see the module docstring).

    `reset(worlds, seeds)` starts new episodes in the given worlds; `step(actions [N, n])` returns
    ``obs [N, obs_dim], reward [N], terminated [N], truncated [N], info`` with every reward term as an array over
    the worlds in ``info["reward_terms"]``. Each world draws from its own random generator (seeded per world), so a
    world of a batch gives the numbers a single world seeded alike gives."""

    def __init__(self, robot: Robot | str, *, num_worlds: int = 1, threads: int | None = None,
                 task_id: str = "legged", command_ranges: dict[str, tuple] | None = None,
                 stand_probability: float = 0.1, resample_s: tuple[float, float] = (4.0, 8.0),
                 episode_s: float = 20.0, tracking_sigma: float | None = None, air_time: float | None = None,
                 clearance: float | None = None, command_curriculum: float = 1.0, soft_limit: float = 0.9,
                 max_tilt: float = 1.0, reset_noise: float = 0.1,
                 push_interval_s: float = 8.0, push_velocity: float = 0.5, only_positive_rewards: bool = True,
                 reward_weights: dict[str, float] | None = None):
        self.robot = robot if isinstance(robot, Robot) else Robot.load(robot, "legged")
        r = self.robot
        self.frame_skip = r.config.decimation
        self.dt = r.control_period
        base = mujoco.mj_name2id(r.model, mujoco.mjtObj.mjOBJ_BODY, r.config.base)
        free = [j for j in range(r.model.njnt) if int(r.model.jnt_type[j]) == int(mujoco.mjtJoint.mjJNT_FREE)
                and r.model.jnt_bodyid[j] == base]
        if not free:
            raise RobotConfigError(f"{r.config.where}: the base {r.config.base!r} has no free joint")
        # the template's sensors (added below) leave bodies and joints as they are: these ids hold in `model` too
        self.base_body = base
        self._qb, self._vb = int(r.model.jnt_qposadr[free[0]]), int(r.model.jnt_dofadr[free[0]])
        # what the config leaves out is scaled to the robot's size (REFERENCE_HEIGHT)
        self.height, k = robot_size(r, self._qb)
        tracking_sigma = 0.25 * k * k if tracking_sigma is None else tracking_sigma
        air_time = round(0.3 * k, 3) if air_time is None else air_time
        clearance = round(0.08 * k, 3) if clearance is None else clearance
        ranges = {"x": (-0.6 * k, 1.0 * k), "y": (-0.4 * k, 0.4 * k), "yaw": (-1.0, 1.0), **(command_ranges or {})}
        for a, (lo, hi) in ranges.items():
            if a not in AXES or not lo <= 0.0 <= hi:
                raise ValueError(f"command range {a}: {lo}..{hi} must be an axis of {AXES} and contain 0")
            if max(-lo, hi) > MAX_COMMAND:
                raise ValueError(f"command_{a} must lie within [-{MAX_COMMAND:g}, {MAX_COMMAND:g}] (m/s or rad/s), got "
                                 f"[{lo:g}, {hi:g}]")
        self.command_ranges = {a: (float(ranges[a][0]), float(ranges[a][1])) for a in AXES}
        checks = {"stand_probability must be in [0, 1]": 0 <= stand_probability <= 1,
                  "resample_s must be [low, high] seconds with 0 < low <= high": 0 < resample_s[0] <= resample_s[1],
                  "resample_s must be at most 3600 seconds": resample_s[1] <= 3600,
                  "episode_s must be positive": episode_s > 0,
                  "episode_s must be at most 3600 seconds (an hour of control steps; evaluation runs whole episodes)":
                      episode_s <= 3600,
                  "tracking_sigma must be in (0, 100]": 0 < tracking_sigma <= 100,
                  "air_time must be in [0, 60] seconds": 0 <= air_time <= 60,
                  "clearance must be in (0, 10] m": 0 < clearance <= 10,
                  "command_curriculum must be in (0, 1] (the part of the command ranges training starts with)":
                      0 < command_curriculum <= 1,
                  "soft_limit must be in (0, 1]": 0 < soft_limit <= 1,
                  "max_tilt must be in (0, pi]": 0 < max_tilt <= math.pi,
                  "reset_noise must be in [0, pi] (rad, or m for a slide joint)": 0 <= reset_noise <= math.pi,
                  "push_interval_s must be in [0, 3600]": 0 <= push_interval_s <= 3600,
                  "push_velocity must be in [0, 10] m/s (a push is a change of the base's velocity)":
                      0 <= push_velocity <= 10,
                  f"episode_s must be at least one control period ({self.dt:g} s)": episode_s >= self.dt,
                  f"episode_s must be at most 100,000 control steps ({1e5 * self.dt:g} s at the control period "
                  f"{self.dt:g} s; evaluation runs whole episodes)": episode_s <= 1e5 * self.dt,
                  f"episode_s must be at most {MAX_EPISODE_PHYSICS_STEPS:,} physics steps "
                  f"({MAX_EPISODE_PHYSICS_STEPS * r.model.opt.timestep:g} s at the timestep "
                  f"{r.model.opt.timestep:g} s; evaluation runs whole episodes)":
                      episode_s <= MAX_EPISODE_PHYSICS_STEPS * r.model.opt.timestep,
                  f"push_interval_s must be 0 (no pushes) or at least one control period ({self.dt:g} s)":
                      push_interval_s == 0 or push_interval_s >= self.dt}
        for what, ok in checks.items():
            if not ok:
                raise ValueError(what)
        self.stand_probability, self.resample_s = float(stand_probability), tuple(resample_s)
        self.max_steps = round(episode_s / self.dt)
        self.sigma, self.air_time, self.max_tilt = tracking_sigma, air_time, max_tilt
        self.clearance, self.curriculum_start = clearance, float(command_curriculum)
        self.reset_noise, self.only_positive = reset_noise, only_positive_rewards
        self.push_every = round(push_interval_s / self.dt) if push_interval_s > 0 else 0
        self.push_velocity = push_velocity
        self.weights = TERMS.weights(reward_weights)
        self._settings = {  # recorded in the spec: a [legged] table edited after training is noticed
            "command_ranges": {a: list(r) for a, r in self.command_ranges.items()},  # JSON's own types: round-trips
            "stand_probability": float(stand_probability),
            "resample_s": [float(x) for x in resample_s], "episode_s": float(episode_s),
            "tracking_sigma": float(tracking_sigma), "air_time": float(air_time), "clearance": float(clearance),
            "command_curriculum": float(command_curriculum), "soft_limit": float(soft_limit),
            "max_tilt": float(max_tilt), "reset_noise": float(reset_noise), "push_interval_s": float(push_interval_s),
            "push_velocity": float(push_velocity), "only_positive_rewards": bool(only_positive_rewards),
            "rewards": dict(self.weights)}
        if r.config.terrain is not None:
            self._settings["terrain"] = r.config.terrain.to_dict()

        self.model = m = self._model_with_sensors()
        self._qa, self._va, self._act = r.qpos_adr, r.dof_adr, r.actuator
        nf = len(r.config.feet)
        self._feet_cols = sensor_columns(m, [f"robotrl_foot{i}" for i in range(nf)])
        self._footpos_cols = sensor_columns(m, [f"robotrl_footpos{i}" for i in range(nf)])
        self._footvel_cols = sensor_columns(m, [f"robotrl_footvel{i}" for i in range(nf)])
        self._hit_cols = sensor_columns(m, self._hit_sensors)
        self._torque_cols = sensor_columns(m, [f"robotrl_torque{i}" for i in range(len(r.joints))])
        self.low, self.high = r.action_low, r.action_high
        self._offset, self._scale = (self.high + self.low) / 2, (self.high - self.low) / 2
        bounded = np.where(r.limited[:, None], r.range, 0.0)  # an unlimited joint's (-inf, inf) made no nan here
        mid, half = (bounded[:, 0] + bounded[:, 1]) / 2, (bounded[:, 1] - bounded[:, 0]) / 2
        self._soft_lo = np.where(r.limited, mid - soft_limit * half, -np.inf)
        self._soft_hi = np.where(r.limited, mid + soft_limit * half, np.inf)
        # the torque a joint's `effort` term counts against: its limit, or what its servo gives at the action's edge
        self._effort = np.where(np.isfinite(r.effort_limit), r.effort_limit, np.maximum(r.kp * self._scale, 1e-6))
        n = len(r.joints)
        self.obs_dim = 9 + 3 * n
        self.task_spec = self._spec(task_id)
        self._settle()
        d = mujoco.MjData(m)
        d.qpos[:] = self._rest_qpos
        mujoco.mj_forward(m, d)
        self._foot_rest_z = d.sensordata[self._footpos_cols].reshape(nf, 3)[:, 2].copy()  # feet on the ground

        N = self.num_worlds = int(num_worlds)
        self.worlds = Worlds(m, N, threads=threads)
        self.ctrl = np.zeros((N, m.nu))
        self.command = np.zeros((N, 3))
        self.command_locked = np.zeros(N, dtype=bool)
        self.prev_action = np.zeros((N, n))
        self.feet_air = np.zeros((N, len(r.config.feet)))
        self.t = np.zeros(N, dtype=np.int64)
        self._next_resample = np.zeros(N, dtype=np.int64)
        self.rngs = [seeding.np_random(None)[0] for _ in range(N)]
        # the command curriculum (training only, `set_training`): world i's commands span level[i] of the ranges
        self.training = False
        self.command_level = np.ones(N)
        self._ep_kernels = np.zeros((N, 2))  # this episode's summed tracking kernels (planar, yaw)
        self._fell = np.zeros(N, dtype=bool)
        self._observer = sim_observer(m, self.task_spec.observation)
        self._frame = SimpleNamespace(qpos=self.worlds.qpos, qvel=self.worlds.qvel, command=self.command,
                                      prev_action=self.prev_action, action_joints=tuple(r.joints))
        self.curriculum = self._terrain_curriculum()

    def _terrain_curriculum(self) -> Curriculum | None:
        """On the robot config's [terrain]: each world's tile and level (`robotrl.envs.terrain`); None on the flat
        floor."""
        settings = self.robot.config.terrain
        if settings is None:
            return None
        radius = footprint_radius(self.model, self._rest_qpos, self.base_body)
        return Curriculum(terrain_of(settings), self.num_worlds, radius)

    @property
    def terrain_level(self) -> float | None:
        """The mean terrain level of the worlds (0: the easiest), for training to log; None on the flat floor."""
        return float(self.curriculum.level.clip(0).mean()) if self.curriculum is not None else None

    def _model_with_sensors(self) -> mujoco.MjModel:
        """The robot's model with what this template reads after a step as sensors: a contact sensor per foot
        (touching anything), the base touching anything not of the robot, and the force of each servo."""
        r = self.robot
        spec = r.spec.copy()
        m = r.model
        feet = [_foot_object(m, spec, foot) for foot in r.config.feet]
        for i, foot in enumerate(feet):
            add_contact_sensor(spec, f"robotrl_foot{i}", foot)
        # not the robot's own: the ground and anything else outside the base's kinematic tree (a fall is the base
        # touching one of these; the trunk brushing a thigh is a self-contact, not a fall)
        base = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, r.config.base)
        roots = sorted({int(m.body_rootid[b]) for b in range(m.nbody)} - {int(m.body_rootid[base])})
        self._hit_sensors = []
        for k, root in enumerate(roots):
            other = ((mujoco.mjtObj.mjOBJ_BODY, "world") if root == 0 else
                     (mujoco.mjtObj.mjOBJ_XBODY, mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, root)))
            add_contact_sensor(spec, f"robotrl_basehit{k}", (mujoco.mjtObj.mjOBJ_BODY, r.config.base), other)
            self._hit_sensors.append(f"robotrl_basehit{k}")
        for i, (kind, name) in enumerate(feet):  # where each foot is and how fast it moves (gait terms)
            frame = (mujoco.mjtObj.mjOBJ_XBODY if kind == mujoco.mjtObj.mjOBJ_BODY else kind, name)
            add_frame_position_sensor(spec, f"robotrl_footpos{i}", frame)
            add_frame_velocity_sensor(spec, f"robotrl_footvel{i}", frame)
        for i, a in enumerate(r.actuator):
            add_actuator_force_sensor(spec, f"robotrl_torque{i}", mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_ACTUATOR,
                                                                                   int(a)))
        return spec.compile()

    # the spec ----------------------------------------------------------------------------------------
    def _spec(self, task_id: str) -> TaskSpec:
        r, root = self.robot, self.robot.free_joint
        obs = [ObsElement("base_ang_vel", root, "rad/s", axis=a, frame="base") for a in "xyz"]
        obs += [ObsElement("projected_gravity", root, "", axis=a, frame="base") for a in "xyz"]
        obs += [ObsElement("velocity_command", "cmd_vel", "rad/s" if a == "yaw" else "m/s", axis=a,
                           range=self.command_ranges[a]) for a in AXES]
        units = ["rad" if int(self.model.jnt_type[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, j)])
                 == int(mujoco.mjtJoint.mjJNT_HINGE) else "m" for j in r.joints]
        obs += [ObsElement("joint_pos_rel", j, u, offset=float(d)) for j, u, d in zip(r.joints, units, r.default,
                                                                                        strict=True)]
        obs += [ObsElement("joint_vel", j, u + "/s") for j, u in zip(r.joints, units, strict=True)]
        obs += [ObsElement("prev_action", j) for j in r.joints]
        act = [ActElement(j, "position", float(lo), float(hi), u)
               for j, lo, hi, u in zip(r.joints, self.low, self.high, units, strict=True)]
        ranges = {j: (float(a), float(b)) for j, (a, b), lim in zip(r.joints, r.range, r.limited, strict=True) if lim}
        robot = {"template": "legged", "base": r.config.base, "imu_site": r.config.imu_site,
                 "feet": list(r.config.feet), "default_pose": dict(zip(r.joints, r.default.tolist(), strict=True)),
                 "kp": r.kp.tolist(), "kd": r.kd.tolist(), "effort_limit": [float(x) for x in r.effort_limit],
                 "physics_timestep": float(self.model.opt.timestep), "decimation": self.frame_skip,
                 "settings": self._settings, "physics_parts": r.physics_parts(), "physics": r.physics_fingerprint()}
        return TaskSpec(task_id=task_id, observation=tuple(obs), action=tuple(act), control_period=self.dt,
                        frame_skip=self.frame_skip, max_episode_steps=self.max_steps, deployable=True,
                        extras={"robot": robot}, joint_ranges=ranges)

    # episodes ----------------------------------------------------------------------------------------
    def _settle(self) -> None:
        """The start state: the robot dropped onto the floor on its default pose and settled (1 s); refused
        where it does not stand (`_StandWatch`)."""
        m = self.model
        d = mujoco.MjData(m)
        d.qpos[self._qa] = self.robot.default
        d.qpos[self._qb + 2] = 0.0
        mujoco.mj_kinematics(m, d)
        mujoco.mj_collision(m, d)
        lowest = min(float(d.geom_xpos[g, 2] - m.geom_rbound[g]) for g in range(m.ngeom)
                     if m.geom_bodyid[g] != 0 and (m.geom_contype[g] or m.geom_conaffinity[g]))
        watch = _StandWatch(self, m, d)
        d.qpos[self._qb + 2] = -lowest + 0.01
        d.ctrl[self._act] = self.robot.default
        second = round(1.0 / m.opt.timestep)
        with warnings.catch_warnings():  # MuJoCo's instability warning: refused below, in one line
            warnings.simplefilter("ignore")
            for k in range(2 * second):  # a second to settle (the start state), one more to see that it stands
                mujoco.mj_step(m, d)
                watch(d)
                if k == second - 1:
                    # MuJoCo reset the state: nothing to learn
                    unstable = self.robot.unstable(d, " as it settles on the floor")
                    if unstable:
                        raise RobotConfigError(f"{self.robot.config.where}: {unstable}")
                    rest = d.qpos.copy()
        watch.check(d, rest)
        self._rest_qpos = rest
        self._rest_qpos[self._qb:self._qb + 2] = 0.0
        self.stand_height = float(rest[self._qb + 2])

    def seed(self, worlds: np.ndarray | list[int], seeds: list[int | None]) -> None:
        """A new random generator for each world whose seed is not None (Gymnasium's, as `Env.reset(seed=)`)."""
        for i, s in zip(worlds, seeds, strict=True):
            if s is not None:
                self.rngs[i] = seeding.np_random(int(s))[0]
                if self.curriculum is not None:
                    self.curriculum.forget([i])

    def set_training(self, on: bool) -> None:
        """Training (`on`) starts every world's commands at `command_curriculum` of the ranges, to be widened by
        `_advance_curriculum`; otherwise (evaluation, the simulated robot) commands span the whole ranges."""
        self.training = bool(on)
        self.command_level[:] = self.curriculum_start if on else 1.0

    CURRICULUM_STEP = 0.1
    CURRICULUM_GOOD = 0.8

    def _advance_curriculum(self, i: int) -> None:
        """After world i's episode (training): a fall narrows its command ranges by CURRICULUM_STEP (not below the
        start); an episode that ran to its end with mean tracking kernels of at least CURRICULUM_GOOD (planar: an
        error of about half of sqrt(tracking_sigma)) widens them (legged_gym's command curriculum, per world)."""
        if self._fell[i]:
            self.command_level[i] = max(self.curriculum_start, self.command_level[i] - self.CURRICULUM_STEP)
        elif self.t[i] >= self.max_steps and np.all(self._ep_kernels[i] / self.t[i] >= self.CURRICULUM_GOOD):
            self.command_level[i] = min(1.0, self.command_level[i] + self.CURRICULUM_STEP)

    def reset(self, worlds: np.ndarray | list[int]) -> None:
        """New episodes in `worlds`: the settled pose, a random heading, joints perturbed by reset_noise; on terrain
        the pose is moved to the world's tile (its curriculum's step) and lifted by the ground's height there."""
        w = self.worlds
        qb, vb = self._qb, self._vb
        for i in worlds:
            rng = self.rngs[i]
            if self.training and self.t[i] > 0:
                self._advance_curriculum(i)
            self._ep_kernels[i] = 0.0
            self._fell[i] = False
            q = self._rest_qpos.copy()
            if self.curriculum is not None:  # reads where the last episode ended, before the state is reset
                q[qb:qb + 3] += self.curriculum.start(i, w.qpos[i, qb:qb + 2], rng)
            yaw = rng.uniform(-math.pi, math.pi)
            q[qb + 3:qb + 7] = _quat_mul(np.array([math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)]), q[qb + 3:qb + 7])
            noise = rng.uniform(-self.reset_noise, self.reset_noise, len(self._qa))
            q[self._qa] = np.clip(q[self._qa] + noise, self.robot.range[:, 0], self.robot.range[:, 1])
            w.state[i] = w.initial
            w.qpos[i] = q
            w.qvel[i, vb:vb + 6] = rng.uniform(-0.2, 0.2, 6)
            self.t[i] = 0
            self.prev_action[i] = 0.0
            self.feet_air[i] = 0.0
            if not self.command_locked[i]:
                self._resample(i)
        self.ctrl[worlds] = 0.0
        self.ctrl[np.ix_(np.asarray(worlds, dtype=np.intp), self._act)] = self.robot.default

    def _resample(self, i: int) -> None:
        rng = self.rngs[i]
        if rng.uniform() < self.stand_probability:
            self.command[i] = 0.0
        else:
            level = self.command_level[i]
            self.command[i] = [rng.uniform(*(level * np.asarray(self.command_ranges[a]))) for a in AXES]
        self._next_resample[i] = self.t[i] + max(1, round(rng.uniform(*self.resample_s) / self.dt))

    def set_command(self, i: int, vx: float, vy: float, yaw_rate: float, *, lock: bool = True) -> None:
        """Fix world i's command (clamped to the ranges); with `lock`, it is no longer resampled."""
        self.command[i] = [np.clip(v, *self.command_ranges[a]) for v, a in zip((vx, vy, yaw_rate), AXES, strict=True)]
        self.command_locked[i] = lock

    # stepping ----------------------------------------------------------------------------------------
    def observe(self) -> np.ndarray:
        """The observation of every world ``[N, 9 + 3n]`` (the table in the module docstring), each element computed
        as its kind says (`robotrl.kinds`)."""
        return self._observer(self._frame)

    def apply(self, actions: np.ndarray) -> None:
        """Set the servo targets of every world from ``actions [N, n]`` (clipped to the action bounds)."""
        self._target = np.clip(np.asarray(actions, dtype=np.float64).reshape(self.num_worlds, -1), self.low,
                               self.high)
        self.ctrl[:, self._act] = self._target

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Observations, rewards, terminations and the task's bookkeeping after `simulate`."""
        w, N, target = self.worlds, self.num_worlds, self._target
        self.stop_if_diverged()
        self.t += 1
        a = (target - self._offset) / self._scale

        R = rotations(w.qpos[:, self._qb + 3:self._qb + 7])
        v_world = w.qvel[:, self._vb:self._vb + 3]
        # R^T v, written out: the same arithmetic for any number of worlds (einsum's order depends on the shape)
        v_body = R[:, 0, :] * v_world[:, 0:1] + R[:, 1, :] * v_world[:, 1:2] + R[:, 2, :] * v_world[:, 2:3]
        w_body = w.qvel[:, self._vb + 3:self._vb + 6].copy()
        sens = w.sensordata
        feet_down = sens[:, self._feet_cols] > 0
        base_hit = np.any(sens[:, self._hit_cols] > 0, axis=1)
        first_contact = feet_down & (self.feet_air > 0)
        self.feet_air += self.dt
        air = self.feet_air.copy()
        self.feet_air[feet_down] = 0.0
        cmd = self.command.copy()
        if self.curriculum is not None:
            self.curriculum.track(cmd, self.dt)
        q = w.qpos[:, self._qa]
        nf = feet_down.shape[1]
        foot_vel = sens[:, self._footvel_cols].reshape(N, nf, 3)
        s = SimpleNamespace(n=N, cmd=cmd, v=v_body, w=w_body, up=R[:, 2, :], torque=sens[:, self._torque_cols],
                            effort=self._effort, a=a, prev_a=self.prev_action, q=q, q_rel=q - self.robot.default,
                            soft_lo=self._soft_lo, soft_hi=self._soft_hi, moving=np.abs(cmd).sum(axis=1) > 0.1,
                            air=air, first_contact=first_contact, air_time=self.air_time, sigma=self.sigma,
                            feet_down=feet_down, foot_speed=np.hypot(foot_vel[..., 0], foot_vel[..., 1]),
                            foot_height=sens[:, self._footpos_cols].reshape(N, nf, 3)[..., 2] - self._foot_rest_z,
                            clearance=self.clearance)
        terms = TERMS.evaluate(s, self.weights, self.dt)
        reward = sum(terms.values())
        if self.only_positive:
            reward = np.maximum(reward, 0.0)
        self.prev_action[:] = a  # in place: the observation frame holds this array
        terminated = base_hit | (R[:, 2, 2] < math.cos(self.max_tilt))
        if self.push_every:
            for i in np.flatnonzero(self.t % self.push_every == 0):
                w.qvel[i, self._vb:self._vb + 2] += self.rngs[i].uniform(-self.push_velocity, self.push_velocity, 2)
        for i in np.flatnonzero(~self.command_locked & (self.t >= self._next_resample)):
            self._resample(i)
        truncated = self.t >= self.max_steps
        off_field = None
        if self.curriculum is not None:  # at the heightfield's edge: cut, as at the time limit
            off_field = self.curriculum.off_field(w.qpos[:, self._qb:self._qb + 2])
            truncated |= off_field
        err_lin = np.hypot(cmd[:, 0] - v_body[:, 0], cmd[:, 1] - v_body[:, 1])
        err_yaw = np.abs(cmd[:, 2] - w_body[:, 2])
        if self.training:
            self._ep_kernels[:, 0] += np.exp(-err_lin ** 2 / self.sigma)
            self._ep_kernels[:, 1] += np.exp(-err_yaw ** 2 / self.sigma)
            self._fell |= terminated
        info = {"reward_terms": terms, "command": cmd, "base_lin_vel": v_body, "base_yaw_rate": w_body[:, 2],
                "tracking_error_lin": err_lin, "tracking_error_yaw": err_yaw, "feet_contact": feet_down}
        if self.curriculum is not None:
            info["terrain_level"], info["off_field"] = self.curriculum.level.astype(float), off_field
        return self.observe(), reward, terminated, truncated, info


class _StandWatch:
    """What the robot standing on its default pose for 2 s shows, step by step (`__call__`), and the refusal where it
    does not stand (`check`): the base touching the ground, tilting beyond max_tilt, or sinking under half the height
    the legs reach on the default pose (the servos give way to the joints' limits) means a pose that collapses under
    its gains, or a base that reaches below the feet; a foot that never touches the ground is a `feet` name that is
    not a foot. Every episode would be a fall, or every foot term a constant: nothing to learn."""

    def __init__(self, task: LeggedVelocityTask, m: mujoco.MjModel, d: mujoco.MjData):
        """`d`: the default pose with the base at height 0, its kinematics computed."""
        self.task, self.m = task, m
        self.root = int(m.body_rootid[task.base_body])
        self.feet = [np.asarray(foot_geoms(m, f), dtype=np.intp) for f in task.robot.config.feet]
        self.touched = np.zeros(len(self.feet), dtype=bool)
        self.all_touched = False
        self.fell: str | None = None
        self.hit = [int(c) for c in task._hit_cols]  # per physics step: plain Python, cheaper than numpy here
        self.min_up = math.cos(task.max_tilt)
        geoms = np.concatenate(self.feet)
        self.reach = float(-(d.geom_xpos[geoms, 2] - m.geom_rbound[geoms]).min()) if len(geoms) else 0.0

    def __call__(self, d: mujoco.MjData) -> None:
        if not self.all_touched and d.ncon:
            m, geoms = self.m, d.contact.geom[:d.ncon]
            outside = m.body_rootid[m.geom_bodyid[geoms]] != self.root  # the ground, or anything not of the robot
            ours = np.concatenate([geoms[outside[:, 1], 0], geoms[outside[:, 0], 1]])
            self.touched |= [bool(np.isin(f, ours).any()) for f in self.feet]
            self.all_touched = bool(self.touched.all())
        if self.fell is None:
            up = float(d.xmat[self.task.base_body, 8])
            if any(d.sensordata[c] > 0 for c in self.hit):
                self.fell = f"the base {self.task.robot.config.base!r} touches the ground"
            elif up < self.min_up:
                self.fell = (f"the base tilts {math.degrees(math.acos(max(-1.0, up))):.0f} degrees, beyond max_tilt "
                             f"({math.degrees(self.task.max_tilt):.0f})")

    def check(self, d: mujoco.MjData, rest: np.ndarray) -> None:
        """`d` after the 2 s, `rest` the state after the first."""
        r = self.task.robot
        where = r.config.where
        z = float(d.xpos[self.task.base_body, 2])
        if self.fell is None and z < 0.5 * self.reach:
            self.fell = f"the base sinks to {z:.2f} m, under half the {self.reach:.2f} m its legs reach"
        if self.fell is not None or is_unstable(d):  # (in the second second: MuJoCo reset the state)
            # a timestep too large for the gains collapses too: say that, as the build-time probe would
            unstable = r.probe(rest) or r.unstable(d, " as it stands on the floor")
            if unstable:
                raise RobotConfigError(f"{where}: {unstable}")
            raise RobotConfigError(f"{where}: the robot does not stand on its default pose: holding it for 2 s, "
                                   f"{self.fell}; raise kp (now {np.nanmin(r.kp):g} to {np.nanmax(r.kp):g}) or change "
                                   "the default pose so that the legs hold the base up")
        for foot, geoms, touched in zip(r.config.feet, self.feet, self.touched, strict=True):
            if not len(geoms):
                raise RobotConfigError(f"{where}: feet names {foot!r}, which has no geom that collides (contype or "
                                       "conaffinity): name the bodies, geoms or sites at the ends of the legs")
            if not touched:
                height = float(d.geom_xpos[geoms, 2].min())
                raise RobotConfigError(f"{where}: feet names {foot!r}, which does not touch the ground while the "
                                       f"robot stands on its default pose (its centre stays {height:.2f} m high): "
                                       "name the bodies, geoms or sites at the ends of the legs")


class LeggedVelocityEnv(gym.Env):
    """One world of `LeggedVelocityTask` behind Gymnasium's API (evaluation, videos, the simulated robot, check_env).

    The keyword arguments are the task's. `data` holds the world's current state with its kinematics computed
    (for rendering and for readers of `MjData`); episodes are truncated by the TimeLimit that `make` wraps around
    (`max_steps`), not here."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}  # noqa: RUF012
    settings_class = LeggedVelocityTask  # the [legged] table's keys are its keyword arguments
    batched = True  # one world of a batched task, which watches its own simulation for divergence

    def __init__(self, robot: Robot | str, *, render_mode: str | None = None, **settings: Any):
        self.task = LeggedVelocityTask(robot, num_worlds=1, threads=0, **settings)
        t = self.task
        self.robot, self.model, self.dt, self.frame_skip = t.robot, t.model, t.dt, t.frame_skip
        self.task_spec, self.max_steps, self.command_ranges = t.task_spec, t.max_steps, t.command_ranges
        self.weights, self.push_every, self.stand_height = t.weights, t.push_every, t.stand_height
        self._rest_qpos = t._rest_qpos  # the start state (the stability probe starts there)
        self.base_body, self._qb, self._qa, self._act = t.base_body, t._qb, t._qa, t._act
        self.low, self.high = t.low, t.high
        self._data = mujoco.MjData(self.model)
        self._stale = True
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.dt)}
        self.render_mode = render_mode
        n = len(t.robot.joints)
        self.action_space = gym.spaces.Box(t.low.astype(np.float32), t.high.astype(np.float32), dtype=np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (t.obs_dim,), np.float64)
        self._renderer = None
        assert t.obs_dim == 9 + 3 * n

    @property
    def command(self) -> np.ndarray:
        return self.task.command[0].copy()

    @property
    def command_locked(self) -> bool:
        return bool(self.task.command_locked[0])

    @property
    def prev_action(self) -> np.ndarray:
        return self.task.prev_action[0].copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.task.rngs[0] = self.np_random  # the task draws from the generator Gymnasium seeded
        if seed is not None and self.task.curriculum is not None:
            self.task.curriculum.forget([0])
        self.task.reset([0])
        self._sync()
        return self._observe(), {"command": self.command}

    def set_command(self, vx: float, vy: float, yaw_rate: float, *, lock: bool = True) -> None:
        """Fix the command (clamped to the ranges); with `lock`, it is no longer resampled."""
        self.task.set_command(0, vx, vy, yaw_rate, lock=lock)

    def _observe(self) -> np.ndarray:
        return self.task.observe()[0]

    @property
    def data(self) -> mujoco.MjData:
        """The world's current state with its kinematics, contacts and sensors computed (copied from the task's
        arrays when asked for: training and evaluation do not need it at every step)."""
        if self._stale:
            self.task.worlds.load(0, self._data)
            self._stale = False
        return self._data

    def _sync(self) -> None:
        self._stale = True

    def step(self, action):
        obs, reward, terminated, _, info = self.task.step(np.asarray(action, dtype=np.float64)[None])
        self._sync()
        level, off_field = info.get("terrain_level"), info.get("off_field")
        info = {"reward_terms": {k: float(v[0]) for k, v in info["reward_terms"].items()},
                "command": info["command"][0], "base_lin_vel": info["base_lin_vel"][0],
                "base_yaw_rate": float(info["base_yaw_rate"][0]),
                "tracking_error_lin": float(info["tracking_error_lin"][0]),
                "tracking_error_yaw": float(info["tracking_error_yaw"][0]), "feet_contact": info["feet_contact"][0]}
        if level is not None:
            info["terrain_level"] = float(level[0])
        # the time limit is the TimeLimit's; the terrain's edge cuts an episode here
        return obs[0], float(reward[0]), bool(terminated[0]), off_field is not None and bool(off_field[0]), info

    def render(self):
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, 480, 640)
            self._camera = mujoco.MjvCamera()
            self._camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
            self._camera.trackbodyid = self.base_body
            self._camera.distance, self._camera.elevation, self._camera.azimuth = 1.5, -20.0, 135.0
        self._renderer.update_scene(self.data, self._camera)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self.task.close()


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


# the scripted command sequence of `robotrl sim2sim` and the benchmark: (seconds, (vx, vy, yaw rate))
COMMAND_SCRIPT: tuple[tuple[float, tuple[float, float, float]], ...] = (
    (2.0, (0.0, 0.0, 0.0)),      # stand
    (4.0, (0.6, 0.0, 0.0)),      # walk forward
    (4.0, (0.3, 0.0, 0.8)),      # turn left while walking
    (3.0, (0.0, 0.0, -0.8)),     # turn right on the spot
    (2.0, (0.0, 0.0, 0.0)),      # stop
)
SETTLE_S = 0.5  # tracking errors are not counted for this long after a command changes


def command_at(script: Any, t: float) -> tuple[float, float, float]:
    """The scripted command in force at time `t` (the last one after the script's end)."""
    end = 0.0
    for seconds, cmd in script:
        end += seconds
        if t < end - 1e-9:
            return cmd
    return script[-1][1]


def script_steps(script: Any, dt: float) -> int:
    return round(sum(s for s, _ in script) / dt)


class TrackingMeter:
    """Mean absolute tracking errors of a velocity-tracking episode, counted from `SETTLE_S` after each
    command change: forward (vx), lateral (vy) and yaw rate; and whether the robot fell."""

    def __init__(self, dt: float):
        self.dt, self.err, self.fell, self._since, self._last = dt, [], False, 0.0, None

    def add(self, info: dict[str, Any], terminated: bool) -> None:
        cmd = tuple(info["command"])
        self._since = 0.0 if cmd != self._last else self._since + self.dt
        self._last = cmd
        if self._since >= SETTLE_S:
            v = info["base_lin_vel"]
            self.err.append((abs(cmd[0] - v[0]), abs(cmd[1] - v[1]), abs(cmd[2] - info["base_yaw_rate"])))
        self.fell |= bool(terminated)

    def result(self) -> dict[str, float]:
        e = np.asarray(self.err) if self.err else np.full((1, 3), np.nan)
        return {"err_vx": float(e[:, 0].mean()), "err_vy": float(e[:, 1].mean()), "err_yaw": float(e[:, 2].mean()),
                "fell": self.fell, "counted_steps": len(self.err)}


def evaluate_tracking(policy: Any, task_id: str, *, episodes: int = 1, seed: int = 0,
                      script: Any = COMMAND_SCRIPT, env_kwargs: dict[str, Any] | None = None,
                      watch: Any = None) -> dict[str, Any]:
    """Velocity tracking of `policy` (raw observation -> command in robot units, one at a time) on a
    legged task: episode k seeded ``seed + k``, commands from `script` (None: the task's own random
    commands over a whole episode). Per-episode and mean errors, falls, returns. `watch(episode, env,
    reward, info, done)` sees every reset (reward None) and step, as in `robotrl.run.evaluate.evaluate`."""
    from robotrl.envs import make

    env = make(task_id, **(env_kwargs or {}))
    u = env.unwrapped
    if not hasattr(u, "set_command"):
        raise ValueError(f"{task_id} is not a velocity-tracking task")
    per_episode, returns = [], []
    for k in range(episodes):
        obs, info = env.reset(seed=seed + k)
        meter = TrackingMeter(u.dt)
        steps = script_steps(script, u.dt) if script is not None else u.max_steps
        ret = 0.0
        for i in range(steps):
            if script is not None:
                u.set_command(*command_at(script, i * u.dt))
                obs = u._observe()  # the new command is part of this step's observation
            if watch is not None and i == 0:
                watch(k, env, None, {**info, "command": u.command.copy()}, False)
            obs, r, term, trunc, info = env.step(np.asarray(policy(obs), dtype=np.float64))
            ret += float(r)
            meter.add(info, term)
            done = term or trunc or i == steps - 1
            if watch is not None:
                watch(k, env, float(r), info, done)
            if done:
                break
        per_episode.append(meter.result())
        returns.append(ret)
    env.close()
    mean = {k: float(np.mean([e[k] for e in per_episode])) for k in ("err_vx", "err_vy", "err_yaw")}
    return {**mean, "falls": int(sum(e["fell"] for e in per_episode)), "episodes": per_episode,
            "mean_return": float(np.mean(returns)), "returns": returns}
