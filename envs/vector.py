"""A batched template task (`LeggedVelocityTask`, ...) as a Gymnasium vector env: every world in one process.

The training loop steps a `VectorEnv`; for a task whose template is batched this is it, in place of N copies of the
single-world env split over worker processes (`robotrl.run.vec_env.ShardedVectorEnv`, which Gymnasium's own tasks keep).
Autoreset is the same as there, Gymnasium's SAME_STEP mode: a world that ends an episode at a step returns the first
observation of its next episode, with the last one in ``info["final_obs"]`` (mask ``info["_final_obs"]``) and the
episode's return and length in ``info["episode"]`` (mask ``info["_episode"]``). Terminated and truncated (the task's
episode length) are kept apart. World i is seeded ``seed + i`` by ``reset(seed=seed)``, as env i is there.

"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

EPISODE_MEANS = ("tracking_error_lin", "tracking_error_yaw")
"""a task's info arrays averaged over each episode and reported with its return and length, ``info["episode"][key]``
(the legged task's velocity tracking errors, m/s and rad/s: training's progress lines and metrics show them)"""


class TaskVectorEnv(VectorEnv):
    """The worlds of `task` (a batched template task, or one with sim-to-real settings applied over its worlds:
    `robotrl.envs.sim2real.WorldsSim2Real`) behind the `VectorEnv` API."""

    metadata: ClassVar[dict] = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, task: Any):
        self.task = task
        self.num_envs = task.num_worlds
        low, high = task.low.astype(np.float32), task.high.astype(np.float32)
        self.single_action_space = gym.spaces.Box(low, high, dtype=np.float32)
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (task.obs_dim,), np.float64)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.spec = None
        self._all = np.arange(self.num_envs)
        self._ep_ret = np.zeros(self.num_envs)
        self._ep_len = np.zeros(self.num_envs, dtype=np.int64)
        self._ep_sums: dict[str, np.ndarray] = {}  # EPISODE_MEANS the task reports: their sums over the episode
        self.closed = False

    def reset(self, *, seed: int | Sequence[int | None] | None = None,
              options: dict | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed)
            self.task.seed(self._all, seeds)
        self.task.reset(self._all)
        self._ep_ret[:] = 0.0
        self._ep_len[:] = 0
        self._ep_sums.clear()
        return self.task.observe(), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        obs, reward, terminated, truncated, task_info = self.task.step(actions)
        self._ep_ret += reward
        self._ep_len += 1
        for key in EPISODE_MEANS:
            if key in task_info:
                self._ep_sums.setdefault(key, np.zeros(self.num_envs))[:] += task_info[key]
        done = terminated | truncated
        info: dict[str, Any] = {}
        if "terrain_level" in task_info:  # each world's terrain level (`robotrl.envs.terrain`), for training's log
            info = {"terrain_level": task_info["terrain_level"], "_terrain_level": np.ones(self.num_envs, dtype=bool)}
        if done.any():
            ended = np.flatnonzero(done)
            info = {**info, "final_obs": obs.copy(), "_final_obs": done,
                    "episode": {"r": np.where(done, self._ep_ret, 0.0), "l": np.where(done, self._ep_len, 0)},
                    "_episode": done}
            for key, sums in self._ep_sums.items():
                info["episode"][key] = np.where(done, sums / np.maximum(self._ep_len, 1), 0.0)
                sums[ended] = 0.0
            self._ep_ret[ended] = 0.0
            self._ep_len[ended] = 0
            self.task.reset(ended)
            obs = self.task.observe()
        return obs, reward, terminated, truncated, info

    def task_metrics(self) -> dict[str, float]:
        """The task's training state for the run's log: the mean command curriculum level (while training) and the
        mean terrain level (on terrain), where the task has them."""
        out = {}
        if getattr(self.task, "training", False):
            out["env/command_level"] = float(np.mean(self.task.command_level))
        terrain = getattr(self.task, "terrain_level", None)
        if terrain is not None:
            out["env/terrain_level"] = float(terrain)
        return out

    def close_extras(self, **kwargs: Any) -> None:
        self.task.close()

