"""The sharded vector env: Gymnasium's SAME_STEP semantics, worker processes, truncation handling."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from robotrl.envs import EnvFactory
from robotrl.run.vec_env import ShardedVectorEnv

SHORT = EnvFactory("InvertedPendulum-v5", {"max_episode_steps": 7})


def _rollout(ve, steps=20, seed=3):
    obs, _ = ve.reset(seed=seed)
    rng = np.random.default_rng(0)
    out = [obs]
    for _ in range(steps):
        a = rng.uniform(-3, 3, size=(ve.num_envs, 1))
        obs, r, term, trunc, info = ve.step(a)
        final = info.get("final_obs") if info else None
        out.append((obs, r, term, trunc, None if final is None else np.stack(
            [final[i] if m else np.zeros(4) for i, m in enumerate(info["_final_obs"])])))
    return out


def _assert_same(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    for x, y in zip(a[1:], b[1:], strict=True):
        for u, v in zip(x, y, strict=True):
            if u is None or v is None:
                assert u is None and v is None
            else:
                np.testing.assert_array_equal(u, v)


def test_matches_gymnasium_sync_vector_env_in_same_step_mode():
    ours = ShardedVectorEnv(SHORT, 3, workers=0)
    ref = SyncVectorEnv([SHORT] * 3, autoreset_mode=AutoresetMode.SAME_STEP)
    try:
        _assert_same(_rollout(ours), _rollout(ref))
    finally:
        ours.close()
        ref.close()


def test_worker_processes_give_identical_results():
    local = ShardedVectorEnv(SHORT, 4, workers=0)
    sharded = ShardedVectorEnv(SHORT, 4, workers=2)
    try:
        assert sharded.workers == 2
        _assert_same(_rollout(local), _rollout(sharded))
    finally:
        local.close()
        sharded.close()


def test_truncation_reports_final_observation_and_episode_stats():
    ve = ShardedVectorEnv(SHORT, 2, workers=1)
    try:
        obs, _ = ve.reset(seed=0)
        for _t in range(7):
            obs, _r, term, trunc, info = ve.step(np.zeros((2, 1)))
        # Zero torque keeps the pendulum up for 7 steps: every episode is truncated, none terminated.
        assert trunc.all() and not term.any()
        assert info["_final_obs"].all() and info["_episode"].all()
        np.testing.assert_array_equal(info["episode"]["l"], [7, 7])
        np.testing.assert_allclose(info["episode"]["r"], [7.0, 7.0])
        # the returned obs already belongs to the next episode; the final one differs from it
        assert not np.allclose(info["final_obs"], obs)
        assert np.abs(obs).max() < 0.011  # a fresh reset state (uniform noise of +-0.01)
    finally:
        ve.close()


class _Exploding(gym.Wrapper):
    def step(self, action):
        if self.unwrapped.data.time > 0.1:
            raise FloatingPointError("simulated physics blow-up")
        return super().step(action)


class ExplodingFactory:  # module-level, so spawned workers can unpickle it
    def __call__(self):
        return _Exploding(SHORT())


def test_worker_errors_surface_in_the_parent_with_their_traceback():
    ve = ShardedVectorEnv(ExplodingFactory(), 2, workers=1)
    try:
        ve.reset(seed=0)
        with pytest.raises(FloatingPointError):  # shard 0 runs in this process: the error is raised here
            for _ in range(10):
                ve.step(np.zeros((2, 1)))
    finally:
        ve.close()
    ve = ShardedVectorEnv(ExplodingFactory(), 2, workers=1)
    try:
        ve.reset(seed=0)
        ve._local.envs[0] = SHORT()  # only the worker's env explodes now
        ve._local.envs[0].reset(seed=0)
        with pytest.raises(RuntimeError, match=r"(?s)worker failed.*simulated physics blow-up"):
            for _ in range(10):
                ve.step(np.zeros((2, 1)))
    finally:
        ve.close()


def test_is_a_gymnasium_vector_env():
    ve = ShardedVectorEnv(SHORT, 2)
    try:
        assert isinstance(ve, gym.vector.VectorEnv)
        assert ve.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
        assert ve.observation_space.shape == (2, 4) and ve.action_space.shape == (2, 1)
    finally:
        ve.close()
