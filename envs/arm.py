"""Our own arm: a 6-joint arm with position servos (`assets/arm6.xml`) that must bring its fingertip to
a random goal.

    robotrl/ArmReach-v0      goals in front of the arm, start from the home pose, success within 5 cm
    robotrl/ArmReachHard-v0  goals all around and below, random start pose, 0.5 kg payload at the
                             tool (the servos sag under it), success within 2 cm held to the end

Action (6): the joint position targets in rad (the servo set-points a ros2_control position
controller takes), bounded by the joint ranges:

    | index | joint           | range [rad]  | servo kp [N m/rad] | torque limit [N m] |
    | 0     | shoulder_yaw    | -2.9 .. 2.9  | 150                | 80                 |
    | 1     | shoulder_pitch  | -1.9 .. 1.9  | 300                | 150                |
    | 2     | elbow_pitch     | -2.4 .. 2.4  | 200                | 100                |
    | 3     | wrist_roll1     | -2.9 .. 2.9  | 30                 | 20                 |
    | 4     | wrist_pitch     | -2.0 .. 2.0  | 30                 | 20                 |
    | 5     | wrist_roll2     | -2.9 .. 2.9  | 10                 | 10                 |

Observation (18):

    | index | element                                  | unit  |
    | 0-5   | joint_pos of the six joints, in order    | rad   |
    | 6-11  | joint_vel of the six joints              | rad/s |
    | 12-14 | goal x, y, z (world = arm base frame)    | m     |
    | 15-17 | fingertip minus goal, x, y, z            | m     |

Reward per step: ``-distance_weight * |fingertip - goal| - velocity_weight * |qvel|^2``; each term is
in ``info`` (``reward_distance``, ``reward_velocity``). Control at 50 Hz (frame skip 10 of a 2 ms
physics step). Goals are drawn by forward kinematics of random joint positions, so every goal is
reachable. ``info["is_success"]``: the fingertip is within the tolerance at this step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mujoco
import numpy as np
from gymnasium import spaces
from gymnasium.envs.mujoco import MujocoEnv

from robotrl.spec import ObsElement

ASSET = Path(__file__).resolve().parent / "assets" / "arm6.xml"
JOINTS = ("shoulder_yaw", "shoulder_pitch", "elbow_pitch", "wrist_roll1", "wrist_pitch", "wrist_roll2")
HOME = np.array([0.0, 0.3, 1.2, 0.0, 0.8, 0.0])


def arm_observation(model: mujoco.MjModel | None = None) -> list[ObsElement]:
    return [*(ObsElement("joint_pos", j, "rad") for j in JOINTS),
            *(ObsElement("joint_vel", j, "rad/s") for j in JOINTS),
            *(ObsElement("goal", "goal", "m", axis=a, frame="world") for a in "xyz"),
            *(ObsElement("body_pos", "fingertip", "m", axis=a, frame="goal") for a in "xyz")]


class ArmReachEnv(MujocoEnv):
    metadata = {"render_modes": ["human", "rgb_array", "depth_array"], "render_fps": 50}  # noqa: RUF012

    def __init__(self, *, hard: bool = False, frame_skip: int = 10, distance_weight: float = 1.0,
                 velocity_weight: float = 1e-3, tolerance: float | None = None, render_mode: str | None = None,
                 **kwargs: Any):
        self.hard = hard
        self.tolerance = tolerance if tolerance is not None else (0.02 if hard else 0.05)
        self.distance_weight, self.velocity_weight = distance_weight, velocity_weight
        obs_space = spaces.Box(-np.inf, np.inf, shape=(18,), dtype=np.float64)
        MujocoEnv.__init__(self, str(ASSET), frame_skip, observation_space=obs_space, render_mode=render_mode,
                           default_camera_config={"distance": 2.0, "elevation": -25.0, "azimuth": 135.0,
                                                  "lookat": np.array([0.0, 0.0, 0.4])}, **kwargs)
        self.metadata["render_fps"] = round(1.0 / self.dt)
        if hard:
            tool = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, "fingertip")
            self.model.body_mass[tool] += 0.5
            mujoco.mj_setConst(self.model, self.data)
        lo, hi = self.model.actuator_ctrlrange[:, 0], self.model.actuator_ctrlrange[:, 1]
        self.action_space = spaces.Box(lo.astype(np.float32), hi.astype(np.float32), dtype=np.float32)
        self._tip = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, "fingertip")
        self._goal_body = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, "goal")
        self._scratch = mujoco.MjData(self.model)
        self.goal = np.zeros(3)

    # goals ----------------------------------------------------------------------------------------
    def _sample_goal(self) -> np.ndarray:
        rng = self.np_random
        while True:
            q = HOME.copy()
            if self.hard:
                q[0] = rng.uniform(-2.8, 2.8)
                q[1] = rng.uniform(-0.6, 1.6)
                q[2] = rng.uniform(0.0, 2.2)
                q[4] = rng.uniform(-1.5, 1.5)
            else:
                q[0] = rng.uniform(-1.2, 1.2)
                q[1] = rng.uniform(0.0, 1.2)
                q[2] = rng.uniform(0.3, 1.8)
                q[4] = rng.uniform(-0.5, 1.5)
            self._scratch.qpos[:] = q
            mujoco.mj_kinematics(self.model, self._scratch)
            goal = self._scratch.xpos[self._tip].copy()
            if goal[2] > 0.08:  # above the floor, clear of the base plate
                return goal

    # gymnasium API --------------------------------------------------------------------------------
    def reset_model(self) -> np.ndarray:
        qpos = HOME.copy()
        if self.hard:
            lo, hi = self.model.jnt_range[:, 0], self.model.jnt_range[:, 1]
            qpos = np.clip(HOME + self.np_random.uniform(-0.8, 0.8, size=6), lo * 0.9, hi * 0.9)
        self.goal = self._sample_goal()
        self.data.mocap_pos[0] = self.goal
        self.set_state(qpos, np.zeros(6))
        self.data.ctrl[:] = qpos
        return self._get_obs()

    def _get_obs(self) -> np.ndarray:
        d = self.data
        tip = d.xpos[self._tip]
        goal = d.xpos[self._goal_body]
        return np.concatenate([d.qpos, d.qvel, goal, tip - goal])

    def step(self, action: np.ndarray):
        action = np.clip(np.asarray(action, dtype=np.float64), self.action_space.low, self.action_space.high)
        self.do_simulation(action, self.frame_skip)
        mujoco.mj_kinematics(self.model, self.data)  # positions of the state just reached
        obs = self._get_obs()
        distance = float(np.linalg.norm(obs[15:18]))
        r_dist = -self.distance_weight * distance
        r_vel = -self.velocity_weight * float(np.dot(self.data.qvel, self.data.qvel))
        reward = r_dist + r_vel
        info = {"distance": distance, "is_success": distance < self.tolerance, "reward_distance": r_dist,
                "reward_velocity": r_vel}
        if self.render_mode == "human":
            self.render()
        return obs, reward, False, False, info
