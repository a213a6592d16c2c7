"""Replay buffer for off-policy learning, storing each observation once.

Layout: per env, a ring of `slots` observations ``obs[k, env]``, written in the order the env
produced them. A transition that starts at slot k has its action, reward and `terminated` flag at
slot k, and its next observation at slot k + 1. When an episode ends, the episode's final
observation is written to the next slot (and marked as no transition start), followed by the first
observation of the next episode; so next observations never need a second array, and a
time-limit truncation bootstraps from the true final state while a termination does not.

Memory, float32 observations and actions: ``slots x num_envs x (4 (obs_dim + act_dim) + 4 + 2)`` bytes;
1,000,000 transitions of a 17-dim observation and 6-dim action (HalfCheetah) take 98 MB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class Batch:
    obs: torch.Tensor  # [B, obs_dim]
    actions: torch.Tensor  # [B, act_dim], normalised units
    rewards: torch.Tensor  # [B]
    next_obs: torch.Tensor  # [B, obs_dim]
    terminated: torch.Tensor  # [B], 1.0 where the transition ended the episode by termination


MIN_SLOTS = 4
"""Slots per env, at least: a step that ends an episode writes its transition's slot and the two after it (the
final observation, the next episode's first), and a resume writes one more (fresh episodes); with fewer, those
writes can overwrite every transition start and `sample` would find none (issue 31: it looped for ever)."""


class ReplayBuffer:
    def __init__(self, capacity: int, num_envs: int, obs_dim: int, act_dim: int):
        self.slots = capacity // num_envs
        if self.slots < MIN_SLOTS:
            raise ValueError(f"a replay buffer of {capacity} transitions over {num_envs} envs has {self.slots} slots "
                             f"per env; it needs at least {MIN_SLOTS} (capacity >= {MIN_SLOTS} x num_envs)")
        self.num_envs = num_envs
        S, N = self.slots, num_envs
        self.obs = np.zeros((S, N, obs_dim), dtype=np.float32)
        self.actions = np.zeros((S, N, act_dim), dtype=np.float32)
        self.rewards = np.zeros((S, N), dtype=np.float32)
        self.terminated = np.zeros((S, N), dtype=bool)
        self.starts = np.zeros((S, N), dtype=bool)  # slot holds a complete transition start
        self.pos = np.full(N, -1, dtype=np.int64)  # slot of each env's current (latest) observation
        self.high = 0  # slots [0, high) have been written (the ring fills from 0 before it wraps)
        self.has_transitions = False
        self._env = np.arange(N)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.obs, self.actions, self.rewards, self.terminated, self.starts))

    def __len__(self) -> int:
        """Number of stored transitions (all envs); scans the buffer, not for hot paths."""
        return int(self.starts.sum())

    def _advance(self, envs: np.ndarray, obs: np.ndarray) -> None:
        self.pos[envs] = (self.pos[envs] + 1) % self.slots
        self.obs[self.pos[envs], envs] = obs
        self.starts[self.pos[envs], envs] = False  # overwrites whatever transition started here
        self.high = min(self.slots, max(self.high, int(self.pos[envs].max()) + 1))

    def reset(self, obs: np.ndarray) -> None:
        """First observation of every env, ``[N, obs_dim]`` (after `envs.reset`)."""
        self._advance(self._env, obs)

    def add(self, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray, terminated: np.ndarray,
            episode_end: np.ndarray, final_obs: np.ndarray | None) -> None:
        """Record one vector step. `next_obs` is what the envs returned (first observations of new episodes
        where `episode_end`); `final_obs[i]` is the last observation of env i's ended episode."""
        p, e = self.pos, self._env
        self.actions[p, e] = actions
        self.rewards[p, e] = rewards
        self.terminated[p, e] = terminated
        self.starts[p, e] = True
        self.has_transitions = True
        ended = np.flatnonzero(episode_end)
        if ended.size:
            self._advance(ended, final_obs[ended])  # the final observation: a next obs, never a start
        self._advance(e, next_obs)

    def sample(self, batch_size: int, rng: np.random.Generator, device: torch.device | str = "cpu") -> Batch:
        """Uniform over stored transitions (rejection sampling over slots; few slots are not starts). Where
        rejection keeps failing (almost no slot a start), the starts are listed and drawn from directly, so
        this always ends."""
        if not self.has_transitions:
            raise ValueError("the replay buffer is empty")
        S, N = self.slots, self.num_envs
        ks, es = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        for _ in range(64):
            k = rng.integers(0, self.high, size=2 * batch_size)
            e = rng.integers(0, N, size=2 * batch_size)
            ok = self.starts[k, e]
            ks, es = np.concatenate([ks, k[ok]]), np.concatenate([es, e[ok]])
            if ks.size >= batch_size:
                break
        else:
            ok_k, ok_e = np.nonzero(self.starts)
            if ok_k.size == 0:
                raise ValueError("the replay buffer holds no complete transition")
            i = rng.integers(0, ok_k.size, size=batch_size)
            ks, es = ok_k[i], ok_e[i]
        ks, es = ks[:batch_size], es[:batch_size]
        nxt = (ks + 1) % S

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a).to(device)

        return Batch(obs=t(self.obs[ks, es]), actions=t(self.actions[ks, es]), rewards=t(self.rewards[ks, es]),
                     next_obs=t(self.obs[nxt, es]), terminated=t(self.terminated[ks, es].astype(np.float32)))

    def sample_obs(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """Observations of random stored transitions (for measuring parameter-noise distance)."""
        ok_k, ok_e = np.nonzero(self.starts)
        i = rng.integers(0, ok_k.size, size=min(batch_size, ok_k.size))
        return self.obs[ok_k[i], ok_e[i]]

    _ARRAYS = ("obs", "actions", "rewards", "terminated", "starts")

    def state_dict(self) -> dict[str, Any]:
        """The written part of the ring only (a checkpoint early in a run stays small)."""
        h = self.high
        return {name: torch.from_numpy(getattr(self, name)[:h].copy()) for name in self._ARRAYS} | {
            "pos": torch.from_numpy(self.pos.copy()), "high": h, "has_transitions": self.has_transitions}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        h = int(state["high"])
        for name in self._ARRAYS:
            arr = state[name].numpy()
            if h > self.slots or arr.shape[1:] != getattr(self, name).shape[1:]:
                raise ValueError(f"replay buffer {name} has shape {arr.shape}, which does not fit "
                                 f"{getattr(self, name).shape}")
            getattr(self, name)[:h] = arr
        self.pos[:] = state["pos"].numpy()
        self.high = h
        self.has_transitions = bool(state["has_transitions"])
