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
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from robotrl.envs.robot import MAX_EPISODE_PHYSICS_STEPS, Robot, RobotConfigError
from robotrl.spec import ActElement, ObsElement, TaskSpec

AXES = ("x", "y", "yaw")
REWARD_WEIGHTS = {
    "track_lin": 1.0, "track_yaw": 0.5, "lin_vel_z": -2.0, "ang_vel_xy": -0.05, "orientation": -1.0,
    "torque": -2e-4, "action_rate": -0.01, "joint_limits": -10.0, "stand_still": -0.5, "feet_air_time": 1.0,
}


def _geoms_of(model: mujoco.MjModel, names: tuple[str, ...] | list[str]) -> list[np.ndarray]:
    """Per name: the collidable geoms of that body, or the geom of that name."""
    out = []
    for n in names:
        b = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n)
        if b >= 0:
            ids = [g for g in range(model.ngeom) if model.geom_bodyid[g] == b
                   and (model.geom_contype[g] or model.geom_conaffinity[g])]
        else:
            ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, n)]
        out.append(np.asarray(ids, dtype=np.intp))
    return out


class LeggedVelocityEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}  # noqa: RUF012

    def __init__(self, robot: Robot | str, *, task_id: str = "legged", command_ranges: dict[str, tuple] | None = None,
                 stand_probability: float = 0.1, resample_s: tuple[float, float] = (4.0, 8.0),
                 episode_s: float = 20.0, tracking_sigma: float = 0.25, air_time: float = 0.3,
                 soft_limit: float = 0.9, max_tilt: float = 1.0, reset_noise: float = 0.1,
                 push_interval_s: float = 8.0, push_velocity: float = 0.5, only_positive_rewards: bool = True,
                 reward_weights: dict[str, float] | None = None, render_mode: str | None = None):
        self.robot = robot if isinstance(robot, Robot) else Robot.load(robot, "legged")
        r = self.robot
        self.model = r.model
        self.data = mujoco.MjData(self.model)
        self.frame_skip = r.config.decimation
        self.dt = r.control_period
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.dt)}
        self.render_mode = render_mode
        ranges = {"x": (-0.6, 1.0), "y": (-0.4, 0.4), "yaw": (-1.0, 1.0), **(command_ranges or {})}
        for a, (lo, hi) in ranges.items():
            if a not in AXES or not lo <= 0.0 <= hi:
                raise ValueError(f"command range {a}: {lo}..{hi} must be an axis of {AXES} and contain 0")
            if max(-lo, hi) > 20:
                raise ValueError(f"command_{a} must lie within [-20, 20] (m/s or rad/s), got [{lo:g}, {hi:g}]")
        self.command_ranges = {a: (float(ranges[a][0]), float(ranges[a][1])) for a in AXES}
        checks = {"stand_probability must be in [0, 1]": 0 <= stand_probability <= 1,
                  "resample_s must be [low, high] seconds with 0 < low <= high": 0 < resample_s[0] <= resample_s[1],
                  "resample_s must be at most 3600 seconds": resample_s[1] <= 3600,
                  "episode_s must be positive": episode_s > 0,
                  "episode_s must be at most 3600 seconds (an hour of control steps; evaluation runs whole episodes)":
                      episode_s <= 3600,
                  "tracking_sigma must be in (0, 100]": 0 < tracking_sigma <= 100,
                  "air_time must be in [0, 60] seconds": 0 <= air_time <= 60,
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
                  f"({MAX_EPISODE_PHYSICS_STEPS * self.model.opt.timestep:g} s at the timestep "
                  f"{self.model.opt.timestep:g} s; evaluation runs whole episodes)":
                      episode_s <= MAX_EPISODE_PHYSICS_STEPS * self.model.opt.timestep,
                  f"push_interval_s must be 0 (no pushes) or at least one control period ({self.dt:g} s)":
                      push_interval_s == 0 or push_interval_s >= self.dt}
        for what, ok in checks.items():
            if not ok:
                raise ValueError(what)
        self.stand_probability, self.resample_s = float(stand_probability), tuple(resample_s)
        self.max_steps = round(episode_s / self.dt)
        self.sigma, self.air_time, self.max_tilt = tracking_sigma, air_time, max_tilt
        self.reset_noise, self.only_positive = reset_noise, only_positive_rewards
        self.push_every = round(push_interval_s / self.dt) if push_interval_s > 0 else 0
        self.push_velocity = push_velocity
        unknown = set(reward_weights or {}) - set(REWARD_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown reward terms {sorted(unknown)}; known: {', '.join(REWARD_WEIGHTS)}")
        self.weights = {**REWARD_WEIGHTS, **(reward_weights or {})}
        self._settings = {  # recorded in the spec: a [legged] table edited after training is noticed
            "command_ranges": {a: list(r) for a, r in self.command_ranges.items()},  # JSON's own types: round-trips
            "stand_probability": float(stand_probability),
            "resample_s": [float(x) for x in resample_s], "episode_s": float(episode_s),
            "tracking_sigma": float(tracking_sigma), "air_time": float(air_time), "soft_limit": float(soft_limit),
            "max_tilt": float(max_tilt), "reset_noise": float(reset_noise), "push_interval_s": float(push_interval_s),
            "push_velocity": float(push_velocity), "only_positive_rewards": bool(only_positive_rewards),
            "rewards": dict(self.weights)}

        m = self.model
        free = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, r.free_joint)
        self._qb, self._vb = int(m.jnt_qposadr[free]), int(m.jnt_dofadr[free])
        self.base_body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, r.config.base)
        self._base_geoms = np.asarray([g for g in range(m.ngeom) if m.geom_bodyid[g] == self.base_body], np.intp)
        self._is_base = np.zeros(m.ngeom, dtype=bool)
        self._is_base[self._base_geoms] = True
        # not the robot's own: the ground and anything else outside the base's kinematic tree (a fall is the base
        # touching one of these; the trunk brushing a thigh is a self-contact, not a fall)
        self._foreign = m.body_rootid[m.geom_bodyid] != m.body_rootid[self.base_body]
        feet = _geoms_of(m, r.config.feet)
        self._feet_flat = np.concatenate(feet)
        self._feet_start = np.cumsum([0] + [len(f) for f in feet[:-1]]).astype(np.intp)
        self._n_feet = len(feet)
        self._touch = np.zeros(m.ngeom, dtype=bool)
        self._qa, self._va, self._act = r.qpos_adr, r.dof_adr, r.actuator
        self.low, self.high = r.action_low, r.action_high
        self._offset, self._scale = (self.high + self.low) / 2, (self.high - self.low) / 2
        bounded = np.where(r.limited[:, None], r.range, 0.0)  # an unlimited joint's (-inf, inf) made no nan here
        mid, half = (bounded[:, 0] + bounded[:, 1]) / 2, (bounded[:, 1] - bounded[:, 0]) / 2
        self._soft_lo = np.where(r.limited, mid - soft_limit * half, -np.inf)
        self._soft_hi = np.where(r.limited, mid + soft_limit * half, np.inf)
        n = len(r.joints)
        self.action_space = gym.spaces.Box(self.low.astype(np.float32), self.high.astype(np.float32),
                                           dtype=np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (9 + 3 * n,), np.float64)
        self.task_spec = self._spec(task_id)
        self._R9 = np.zeros(9)
        self._settle()
        self.command = np.zeros(3)
        self.command_locked = False
        self.prev_action = np.zeros(n)
        self.feet_air = np.zeros(self._n_feet)
        self.t = 0
        self._next_resample = 0
        self._renderer = None

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
        """The start state: the robot dropped onto the floor on its default pose and settled (1 s)."""
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        d.qpos[self._qa] = self.robot.default
        d.qpos[self._qb + 2] = 0.0
        mujoco.mj_kinematics(m, d)
        mujoco.mj_collision(m, d)
        lowest = min(float(d.geom_xpos[g, 2] - m.geom_rbound[g]) for g in range(m.ngeom)
                     if m.geom_bodyid[g] != 0 and (m.geom_contype[g] or m.geom_conaffinity[g]))
        d.qpos[self._qb + 2] = -lowest + 0.01
        d.ctrl[self._act] = self.robot.default
        import warnings

        with warnings.catch_warnings():  # MuJoCo's instability warning: refused below, in one line
            warnings.simplefilter("ignore")
            for _ in range(round(1.0 / m.opt.timestep)):
                mujoco.mj_step(m, d)
        unstable = self.robot.unstable(d, " as it settles on the floor")  # MuJoCo reset the state: nothing to learn
        if unstable:
            raise RobotConfigError(f"{self.robot.config.where}: {unstable}")
        self._rest_qpos = d.qpos.copy()
        self._rest_qpos[self._qb:self._qb + 2] = 0.0
        self.stand_height = float(d.qpos[self._qb + 2])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        m, d, rng = self.model, self.data, self.np_random
        mujoco.mj_resetData(m, d)
        q = self._rest_qpos.copy()
        yaw = rng.uniform(-math.pi, math.pi)
        q[self._qb + 3:self._qb + 7] = _quat_mul(np.array([math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)]),
                                                q[self._qb + 3:self._qb + 7])
        noise = rng.uniform(-self.reset_noise, self.reset_noise, len(self._qa))
        q[self._qa] = np.clip(q[self._qa] + noise, self.robot.range[:, 0], self.robot.range[:, 1])
        d.qpos[:] = q
        d.qvel[self._vb:self._vb + 6] = rng.uniform(-0.2, 0.2, 6)
        d.ctrl[self._act] = self.robot.default
        mujoco.mj_forward(m, d)
        self.t = 0
        self.prev_action = np.zeros(len(self._qa))
        self.feet_air = np.zeros(self._n_feet)
        if not self.command_locked:
            self._resample()
        return self._observe(), {"command": self.command.copy()}

    def _resample(self) -> None:
        rng = self.np_random
        if rng.uniform() < self.stand_probability:
            self.command = np.zeros(3)
        else:
            self.command = np.array([rng.uniform(*self.command_ranges[a]) for a in AXES])
        self._next_resample = self.t + max(1, round(rng.uniform(*self.resample_s) / self.dt))

    def set_command(self, vx: float, vy: float, yaw_rate: float, *, lock: bool = True) -> None:
        """Fix the command (clamped to the ranges); with `lock`, it is no longer resampled."""
        self.command = np.array([np.clip(v, *self.command_ranges[a]) for v, a in zip((vx, vy, yaw_rate), AXES,
                                                                                      strict=True)])
        self.command_locked = lock

    # stepping ----------------------------------------------------------------------------------------
    def _base_rotation(self) -> np.ndarray:
        """Base to world, from the free joint's quaternion (current, unlike xmat after mj_step)."""
        q = self.data.qpos[self._qb + 3:self._qb + 7]
        mujoco.mju_quat2Mat(self._R9, q / math.sqrt(float(q @ q)))
        return self._R9.reshape(3, 3)

    def _observe(self) -> np.ndarray:
        d = self.data
        R = self._base_rotation()
        return np.concatenate([d.qvel[self._vb + 3:self._vb + 6], -R[2], self.command,
                               d.qpos[self._qa] - self.robot.default, d.qvel[self._va], self.prev_action])

    def step(self, action):
        m, d = self.model, self.data
        target = np.clip(np.asarray(action, dtype=np.float64), self.low, self.high)
        d.ctrl[self._act] = target
        mujoco.mj_step(m, d, self.frame_skip)
        self.t += 1
        a = (target - self._offset) / self._scale

        R = self._base_rotation()
        v_body = R.T @ d.qvel[self._vb:self._vb + 3]
        w_body = d.qvel[self._vb + 3:self._vb + 6]
        touch = self._touch
        touch[:] = False
        base_hit = False
        if d.ncon:
            pairs = d.contact.geom[:d.ncon]
            touch[pairs.ravel()] = True
            g1, g2 = pairs[:, 0], pairs[:, 1]
            base_hit = bool(np.any((self._is_base[g1] & self._foreign[g2]) | (self._is_base[g2] & self._foreign[g1])))
        feet_down = np.logical_or.reduceat(touch[self._feet_flat], self._feet_start)
        first_contact = feet_down & (self.feet_air > 0)
        self.feet_air += self.dt
        air = self.feet_air.copy()
        self.feet_air[feet_down] = 0.0
        moving = bool(np.abs(self.command).sum() > 0.1)
        cmd = self.command
        q_rel = d.qpos[self._qa] - self.robot.default
        terms = {
            "track_lin": math.exp(-((cmd[0] - v_body[0]) ** 2 + (cmd[1] - v_body[1]) ** 2) / self.sigma),
            "track_yaw": math.exp(-((cmd[2] - w_body[2]) ** 2) / self.sigma),
            "lin_vel_z": v_body[2] ** 2,
            "ang_vel_xy": w_body[0] ** 2 + w_body[1] ** 2,
            "orientation": R[2, 0] ** 2 + R[2, 1] ** 2,
            "torque": float(np.sum(d.actuator_force[self._act] ** 2)),
            "action_rate": float(np.sum((a - self.prev_action) ** 2)),
            "joint_limits": float(np.sum(np.maximum(self._soft_lo - d.qpos[self._qa], 0)
                                         + np.maximum(d.qpos[self._qa] - self._soft_hi, 0))),
            "stand_still": 0.0 if moving else float(np.sum(np.abs(q_rel))),
            "feet_air_time": float(np.sum((air - self.air_time) * first_contact)) if moving else 0.0,
        }
        terms = {k: self.weights[k] * v * self.dt for k, v in terms.items()}
        reward = sum(terms.values())
        if self.only_positive:
            reward = max(reward, 0.0)
        self.prev_action = a
        terminated = base_hit or R[2, 2] < math.cos(self.max_tilt)
        if self.push_every and self.t % self.push_every == 0:
            d.qvel[self._vb:self._vb + 2] += self.np_random.uniform(-self.push_velocity, self.push_velocity, 2)
        if not self.command_locked and self.t >= self._next_resample:
            self._resample()
        info = {"reward_terms": terms, "command": cmd.copy(), "base_lin_vel": v_body, "base_yaw_rate": w_body[2],
                "tracking_error_lin": float(math.hypot(cmd[0] - v_body[0], cmd[1] - v_body[1])),
                "tracking_error_yaw": float(abs(cmd[2] - w_body[2])), "feet_contact": feet_down}
        return self._observe(), float(reward), bool(terminated), False, info

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
    reward, info, done)` sees every reset (reward None) and step, as in `robotrl.evaluate.evaluate`."""
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
