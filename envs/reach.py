"""Arm reaching: the task template that turns any fixed-base arm (`envs.robot.Robot` with an
``end_effector``) into a reaching task, as `robotrl/ArmReach-v0` is for our own arm.

    env = ReachEnv(Robot.load("my_arm.toml", "reach"))        # or: robotrl train ppo reach:my_arm.toml

Observation (n = actuated joints): joint positions (n, rad or m), joint velocities (n), the goal
(x, y, z in the world frame, m) and the end effector minus the goal (x, y, z, m): the elements of our
arm's card, so the robot side needs nothing new (a goal on ``/goal``, the end effector from TF on
``/points/NAME``).

Action (n): joint position targets for the PD servos, in [default - action_scale, default +
action_scale] where the config gives a scale, else the joint's range.

Goals come from forward kinematics of random joint positions (uniform over ``goal_fraction`` of each
joint's action range around the home pose), so every goal is reachable; the episode starts at the
home pose plus ``reset_noise``. Reward per step: ``-distance_weight * |ee - goal| - velocity_weight *
|qvel|^2`` (terms in ``info``); ``info["is_success"]``: within ``tolerance``.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from robotrl.envs.robot import MAX_EPISODE_PHYSICS_STEPS, Robot
from robotrl.envs.templates.reach import GOAL_BODY
from robotrl.spec import ActElement, ObsElement, TaskSpec


class ReachEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}  # noqa: RUF012

    def __init__(self, robot: Robot | str, *, task_id: str = "reach", episode_steps: int = 100,
                 goal_fraction: float = 0.6, min_goal_height: float = 0.05, reset_noise: float = 0.0,
                 tolerance: float = 0.05, distance_weight: float = 1.0, velocity_weight: float = 1e-3,
                 render_mode: str | None = None):
        self.robot = robot if isinstance(robot, Robot) else Robot.load(robot, "reach")
        r = self.robot
        self.model = r.model
        self.data = mujoco.MjData(self.model)
        self._scratch = mujoco.MjData(self.model)
        self.frame_skip = r.config.decimation
        self.dt = r.control_period
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.dt)}
        self.render_mode = render_mode
        checks = {"episode_steps must be a whole number from 1 to 100,000 (evaluation runs whole episodes)":
                  float(episode_steps).is_integer() and 1 <= episode_steps <= 10**5,
                  f"episode_steps must be at most {MAX_EPISODE_PHYSICS_STEPS // self.frame_skip:,} at decimation "
                  f"{self.frame_skip} ({MAX_EPISODE_PHYSICS_STEPS:,} physics steps; evaluation runs whole episodes)":
                      episode_steps * self.frame_skip <= MAX_EPISODE_PHYSICS_STEPS,
                  "goal_fraction must be in [0, 1]": 0 <= goal_fraction <= 1,
                  "reset_noise must be >= 0": reset_noise >= 0,
                  "reset_noise must be at most pi (rad, or m for a slide joint)": reset_noise <= math.pi,
                  "tolerance must be positive": tolerance > 0, "tolerance must be at most 10 m": tolerance <= 10,
                  "min_goal_height must be in [-100, 100] m": -100 <= min_goal_height <= 100,
                  "distance_weight must be >= 0": distance_weight >= 0,
                  "velocity_weight must be >= 0": velocity_weight >= 0,
                  "distance_weight and velocity_weight must be at most 1e6":
                      max(distance_weight, velocity_weight) <= 1e6}
        for what, ok in checks.items():
            if not ok:
                raise ValueError(what)
        self.max_steps = int(episode_steps)
        self.goal_fraction, self.min_goal_height = goal_fraction, min_goal_height
        self.reset_noise, self.tolerance = reset_noise, tolerance
        self.distance_weight, self.velocity_weight = distance_weight, velocity_weight
        m = self.model
        self._qa, self._va, self._act = r.qpos_adr, r.dof_adr, r.actuator
        ee = r.config.end_effector
        self._ee_site = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, ee)
        self._ee_body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, ee) if self._ee_site < 0 else -1
        self._goal_body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, GOAL_BODY)
        self._mocap = int(m.body_mocapid[self._goal_body])
        self.low, self.high = r.action_low, r.action_high
        n = len(r.joints)
        self.action_space = gym.spaces.Box(self.low.astype(np.float32), self.high.astype(np.float32),
                                           dtype=np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2 * n + 6,), np.float64)
        units = ["rad" if int(m.jnt_type[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, j)])
                 == int(mujoco.mjtJoint.mjJNT_HINGE) else "m" for j in r.joints]
        obs = [ObsElement("joint_pos", j, u) for j, u in zip(r.joints, units, strict=True)]
        obs += [ObsElement("joint_vel", j, u + "/s") for j, u in zip(r.joints, units, strict=True)]
        obs += [ObsElement("goal", GOAL_BODY, "m", axis=a, frame="world") for a in "xyz"]
        obs += [ObsElement("body_pos", ee, "m", axis=a, frame=GOAL_BODY) for a in "xyz"]
        act = [ActElement(j, "position", float(lo), float(hi), u)
               for j, lo, hi, u in zip(r.joints, self.low, self.high, units, strict=True)]
        ranges = {j: (float(a), float(b)) for j, (a, b), lim in zip(r.joints, r.range, r.limited, strict=True) if lim}
        extras = {"robot": {"template": "reach", "end_effector": ee,
                            "default_pose": dict(zip(r.joints, r.default.tolist(), strict=True)),
                            "kp": r.kp.tolist(), "kd": r.kd.tolist(),
                            "effort_limit": [float(x) for x in r.effort_limit],
                            "physics_timestep": float(m.opt.timestep), "decimation": self.frame_skip,
                            "settings": {  # recorded: a [reach] table edited after training is noticed
                                "episode_steps": self.max_steps, "goal_fraction": float(goal_fraction),
                                "min_goal_height": float(min_goal_height), "reset_noise": float(reset_noise),
                                "tolerance": float(tolerance), "distance_weight": float(distance_weight),
                                "velocity_weight": float(velocity_weight)},
                            "physics_parts": r.physics_parts(), "physics": r.physics_fingerprint()}}
        self.task_spec = TaskSpec(task_id=task_id, observation=tuple(obs), action=tuple(act), control_period=self.dt,
                                  frame_skip=self.frame_skip, max_episode_steps=self.max_steps, deployable=True,
                                  extras=extras, joint_ranges=ranges)
        self.goal = np.zeros(3)
        self._renderer = None
        highest = max(self._goal_heights(np.random.default_rng(0), 1000))
        if highest <= min_goal_height:  # else every goal would be the 100th try's, below the floor asked for
            raise ValueError(f"min_goal_height {min_goal_height:g} m is above every goal: over goal_fraction "
                             f"{goal_fraction:g} of the joint ranges the end effector reaches at most {highest:.3g} m")

    def _ee(self, data: mujoco.MjData) -> np.ndarray:
        return data.site_xpos[self._ee_site] if self._ee_site >= 0 else data.xpos[self._ee_body]

    def _goal_heights(self, rng: np.random.Generator, n: int) -> list[float]:
        """Heights of the end effector at `n` random joint positions of the goal range (a check at start-up)."""
        r = self.robot
        lo = r.default - self.goal_fraction * (r.default - self.low)
        hi = r.default + self.goal_fraction * (self.high - r.default)
        heights = []
        for _ in range(n):
            self._scratch.qpos[:] = self.model.qpos0
            self._scratch.qpos[self._qa] = rng.uniform(lo, hi)
            mujoco.mj_kinematics(self.model, self._scratch)
            heights.append(float(self._ee(self._scratch)[2]))
        return heights

    def _sample_goal(self) -> np.ndarray:
        r, rng = self.robot, self.np_random
        lo = r.default - self.goal_fraction * (r.default - self.low)
        hi = r.default + self.goal_fraction * (self.high - r.default)
        for _ in range(100):
            self._scratch.qpos[:] = self.data.qpos
            self._scratch.qpos[self._qa] = rng.uniform(lo, hi)
            mujoco.mj_kinematics(self.model, self._scratch)
            goal = self._ee(self._scratch).copy()
            if goal[2] > self.min_goal_height:
                return goal
        return goal

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        m, d, r = self.model, self.data, self.robot
        mujoco.mj_resetData(m, d)
        q = r.default + self.np_random.uniform(-self.reset_noise, self.reset_noise, len(self._qa))
        d.qpos[self._qa] = np.clip(q, self.low, self.high)
        d.ctrl[self._act] = d.qpos[self._qa]
        self.goal = self._sample_goal()
        d.mocap_pos[self._mocap] = self.goal
        mujoco.mj_forward(m, d)
        return self._observe(), {}

    def _observe(self) -> np.ndarray:
        d = self.data
        goal = d.xpos[self._goal_body]
        return np.concatenate([d.qpos[self._qa], d.qvel[self._va], goal, self._ee(d) - goal])

    def step(self, action):
        m, d = self.model, self.data
        d.ctrl[self._act] = np.clip(np.asarray(action, dtype=np.float64), self.low, self.high)
        mujoco.mj_step(m, d, self.frame_skip)
        mujoco.mj_kinematics(m, d)  # positions of the state just reached
        obs = self._observe()
        distance = float(np.linalg.norm(obs[-3:]))
        r_dist = -self.distance_weight * distance
        r_vel = -self.velocity_weight * float(d.qvel[self._va] @ d.qvel[self._va])
        info = {"distance": distance, "is_success": distance < self.tolerance, "reward_distance": r_dist,
                "reward_velocity": r_vel}
        return obs, r_dist + r_vel, False, False, info

    def render(self):
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, 480, 640)
        self._renderer.update_scene(self.data)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
