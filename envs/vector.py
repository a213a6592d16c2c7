"""A batched template task (`LeggedVelocityTask`, ...) as a Gymnasium vector env: every world in one process.

The training loop steps a `VectorEnv`; for a task whose template is batched this is it, in place of N copies of the
single-world env split over worker processes (`robotrl.run.vec_env.ShardedVectorEnv`, which Gymnasium's own tasks keep).
Autoreset is the same as there, Gymnasium's SAME_STEP mode: a world that ends an episode at a step returns the first
observation of its next episode, with the last one in ``info["final_obs"]`` (mask ``info["_final_obs"]``) and the
episode's return and length in ``info["episode"]`` (mask ``info["_episode"]``). Terminated and truncated (the task's
episode length) are kept apart. World i is seeded ``seed + i`` by ``reset(seed=seed)``, as env i is there.

`GroupedVectorEnv` splits the worlds into groups, one task each, whose physics run on threads of their own: while
MuJoCo steps one group (without the GIL), the learner works on another group's observations (its policy, its
bookkeeping), so the physics and the Python of a training step share the cores instead of taking turns. A learner
that knows this steps each group with `step_async(group, actions)` / `step_wait(group)`; to anyone else it is one
vector env whose `step` steps every group at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space


class TaskVectorEnv(VectorEnv):
    """The worlds of `task` (a batched template task, or one with sim-to-real settings applied over its worlds:
    `robotrl.envs.sim2real.WorldsSim2Real`) behind the `VectorEnv` API."""

    metadata: ClassVar[dict] = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, task: Any, executor: ThreadPoolExecutor | None = None):
        self.task = task
        self._executor = executor  # where `step_async` runs the physics (None: in the calling thread)
        self._pending: Future | None = None
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
        self.closed = False

    def reset(self, *, seed: int | Sequence[int | None] | None = None,
              options: dict | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed)
            self.task.seed(self._all, seeds)
        self.task.reset(self._all)
        self._ep_ret[:] = 0.0
        self._ep_len[:] = 0
        return self.task.observe(), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions: np.ndarray) -> None:
        """Start a step: the actions applied, the physics running (on the executor's thread, if given)."""
        self.task.apply(actions)
        if self._executor is None:
            self.task.simulate()
        else:
            self._pending = self._executor.submit(self.task.simulate)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Finish the step `step_async` started: observations, rewards, ends, autoreset."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()
        obs, reward, terminated, truncated, _ = self.task.finish()
        self._ep_ret += reward
        self._ep_len += 1
        done = terminated | truncated
        info: dict[str, Any] = {}
        if done.any():
            ended = np.flatnonzero(done)
            info = {"final_obs": obs.copy(), "_final_obs": done,
                    "episode": {"r": np.where(done, self._ep_ret, 0.0), "l": np.where(done, self._ep_len, 0)},
                    "_episode": done}
            self._ep_ret[ended] = 0.0
            self._ep_len[ended] = 0
            self.task.reset(ended)
            obs = self.task.observe()
        return obs, reward, terminated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        if self._pending is not None:  # a step in flight: let MuJoCo finish with the arrays before freeing them
            self._pending.exception()
            self._pending = None
        self.task.close()


class GroupedVectorEnv(VectorEnv):
    """`groups` (TaskVectorEnvs of one task) as one vector env, each group's physics on a thread of its own.

    Env i of the whole is world i of the groups laid end to end (``slices[g]`` are group g's envs), seeded
    ``seed + i`` as in a single `TaskVectorEnv`, so a world steps to the same numbers whichever way it is grouped."""

    metadata: ClassVar[dict] = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, tasks: Sequence[Any]):
        self._executor = ThreadPoolExecutor(max_workers=len(tasks), thread_name_prefix="robotrl-physics")
        self.groups = [TaskVectorEnv(t, self._executor) for t in tasks]
        sizes = [g.num_envs for g in self.groups]
        starts = np.concatenate([[0], np.cumsum(sizes)])
        self.slices = [slice(int(a), int(b)) for a, b in itertools.pairwise(starts)]
        self.num_envs = int(starts[-1])
        first = self.groups[0]
        self.single_action_space, self.single_observation_space = first.single_action_space, \
            first.single_observation_space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.spec = None
        self.closed = False

    def reset(self, *, seed: int | Sequence[int | None] | None = None,
              options: dict | None = None) -> tuple[np.ndarray, dict]:
        seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else seed
        obs = [g.reset(seed=None if seeds is None else list(seeds[sl]))[0]
               for g, sl in zip(self.groups, self.slices, strict=True)]
        return np.concatenate(obs), {}

    def step_async(self, group: int, actions: np.ndarray) -> None:
        """Start group `group`'s step with its envs' actions (``[len(slices[group]), n]``)."""
        self.groups[group].step_async(actions)

    def step_wait(self, group: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Finish group `group`'s step: its envs' results, indexed within the group."""
        return self.groups[group].step_wait()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        for g, sl in enumerate(self.slices):
            self.step_async(g, actions[sl])
        results = [self.step_wait(g) for g in range(len(self.groups))]
        obs, reward, terminated, truncated = (np.concatenate([r[k] for r in results]) for k in range(4))
        return obs, reward, terminated, truncated, self._merge([r[4] for r in results], obs)

    def _merge(self, infos: list[dict], obs: np.ndarray) -> dict:
        """The groups' autoreset infos as one over all envs (the keys `TaskVectorEnv` gives)."""
        if not any(infos):
            return {}
        done = np.zeros(self.num_envs, dtype=bool)
        final = np.zeros_like(obs)
        r, length = np.zeros(self.num_envs), np.zeros(self.num_envs, dtype=np.int64)
        for info, sl in zip(infos, self.slices, strict=True):
            if info:
                done[sl], final[sl] = info["_final_obs"], info["final_obs"]
                r[sl], length[sl] = info["episode"]["r"], info["episode"]["l"]
        return {"final_obs": final, "_final_obs": done, "episode": {"r": r, "l": length}, "_episode": done.copy()}

    def close_extras(self, **kwargs: Any) -> None:
        for g in self.groups:
            g.close()
        self._executor.shutdown(wait=True)
