"""Shared fixtures. Tests run real MuJoCo envs and real training; nothing is mocked."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def robotrl_cmd() -> list[str]:
    """Command prefix that runs the CLI in a fresh interpreter (for kill/resume tests)."""
    return [sys.executable, "-m", "robotrl"]


def _random_policy_return(task: str, episodes: int, seed: int) -> float:
    import gymnasium as gym

    env = gym.make(task)
    env.action_space.seed(seed)
    total = 0.0
    for k in range(episodes):
        env.reset(seed=seed + k)
        done = False
        while not done:
            _, r, term, trunc, _ = env.step(env.action_space.sample())
            total += float(r)
            done = term or trunc
    env.close()
    return total / episodes


@pytest.fixture
def random_policy_return():
    """`random_policy_return(task, episodes, seed)`: the mean return of uniform-random actions, the floor a learning
    test must clear."""
    return _random_policy_return
