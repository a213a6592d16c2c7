"""The on-policy core shared by PPO and TRPO: Gaussian actor, value critic, rollout buffer, GAE.

One iteration collects ``rollout_steps`` steps from each of ``num_envs`` envs with the current
policy, then the algorithm's ``update()`` learns from that batch and throws it away.

Collection does per step only what must be done per step: normalise the observation, one batched
forward pass of the actor mean for all envs, sample, step the envs. Values V(s) and the log-
probabilities of the taken actions do not change during a rollout, so they are computed afterwards,
in one batched pass over the whole rollout. Time-limit truncations are bootstrapped from V of the
final observation; only termination means "no future".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from robotrl.algorithms.core import (
    IterationAborted,
    IterationResult,
    episode_means,
    never,
    spec_action_arrays,
    torch_threads,
)
from robotrl.algorithms.functional import compute_gae, gaussian_log_prob
from robotrl.config import MAX_BATCH, MAX_ENVS, check_network, check_range
from robotrl.policies import GaussianActor, RunningMeanStd, ValueCritic, make_record
from robotrl.spec import TaskSpec


@dataclass
class OnPolicyConfig:
    """Fields shared by PPO and TRPO."""

    num_envs: int = 16
    """Environments stepped in parallel (batched inference over all of them). Typical 1-64."""
    rollout_steps: int = 128
    """Steps collected from each env per iteration; batch size = num_envs * rollout_steps."""
    gamma: float = 0.99
    """Discount factor, in (0, 1]."""
    gae_lambda: float = 0.95
    """GAE lambda in [0, 1]: 0 is one-step TD, 1 is Monte-Carlo returns."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer widths of both actor and critic, e.g. 64,64 or 256,256."""
    activation: Literal["tanh", "relu", "elu"] = "tanh"
    """Hidden activation of actor and critic."""
    log_std_init: float = -0.5
    """Initial log standard deviation of the Gaussian policy (normalised action units; -0.5 -> 0.61)."""
    normalize_obs: bool = True
    """Normalise observations by running mean/std (the statistics ship with the exported actor)."""
    obs_clip: float = 10.0
    """Clip normalised observations to +-obs_clip."""
    normalize_reward: bool = True
    """Divide rewards by the running std of the discounted return (rewards as logged stay raw)."""
    reward_clip: float = 10.0
    """Clip scaled rewards to +-reward_clip."""
    normalize_advantage: bool = True
    """Standardise advantages (per minibatch for PPO, per batch for TRPO)."""

    def __post_init__(self) -> None:
        if self.num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {self.num_envs}")
        if self.rollout_steps < 1:
            raise ValueError(f"rollout_steps must be >= 1, got {self.rollout_steps}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if not 0 <= self.gae_lambda <= 1:
            raise ValueError(f"gae_lambda must be in [0, 1], got {self.gae_lambda}")
        check_network(self.hidden_sizes)
        check_range(self, "num_envs", le=MAX_ENVS)
        if self.normalize_advantage and self.batch_size < 2:
            raise ValueError("num_envs * rollout_steps must be >= 2 to standardise advantages (normalize_advantage)")
        if self.batch_size > MAX_BATCH:
            raise ValueError(f"num_envs * rollout_steps must be <= {MAX_BATCH:,}, got {self.batch_size:,}")
        check_range(self, "obs_clip", gt=0)  # 0 would blind the policy
        check_range(self, "reward_clip", gt=0)
        check_range(self, "log_std_init", ge=-20, le=5)

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.rollout_steps

    def check_divides_batch(self, name: str) -> None:
        """Raise ValueError unless setting `name` (a minibatch size) divides the batch, suggesting the largest
        size that does (a per-task default of 512 and --envs 3 would otherwise leave the user guessing)."""
        size, batch = getattr(self, name), self.batch_size
        if batch % size == 0:
            return
        small = [d for d in range(1, math.isqrt(batch) + 1) if batch % d == 0]
        fit = max(d for d in small + [batch // d for d in small] if d <= size)
        raise ValueError(f"{name} {size} must divide the batch size num_envs * rollout_steps = {self.num_envs} x "
                         f"{self.rollout_steps} = {batch}: e.g. --{name.replace('_', '-')} {fit}, or other "
                         f"--num-envs / --rollout-steps")


class RolloutBuffer:
    """Preallocated ``[T, N, ...]`` arrays for one rollout; torch views share the numpy memory."""

    def __init__(self, T: int, N: int, obs_dim: int, act_dim: int):
        self.obs = np.zeros((T, N, obs_dim), dtype=np.float32)  # normalised, as the policy saw them
        self.actions = np.zeros((T, N, act_dim), dtype=np.float32)  # Gaussian samples, before clipping
        self.rewards = np.zeros((T, N), dtype=np.float64)  # scaled if normalize_reward
        self.terminated = np.zeros((T, N), dtype=bool)
        self.episode_end = np.zeros((T, N), dtype=bool)  # terminated or truncated
        self.values = np.zeros((T, N), dtype=np.float64)
        self.next_values = np.zeros((T, N), dtype=np.float64)
        self.log_probs = np.zeros((T, N), dtype=np.float32)
        self.advantages = np.zeros((T, N), dtype=np.float64)
        self.returns = np.zeros((T, N), dtype=np.float64)
        self.last_obs = np.zeros((N, obs_dim), dtype=np.float32)  # normalised obs after the last step
        self.trunc_index: list[tuple[int, int]] = []  # (t, env) of truncated episode ends
        self.trunc_obs: list[np.ndarray] = []  # their normalised final observations

    def flat(self, name: str) -> torch.Tensor:
        """``[T*N, ...]`` float32 torch view/copy of one array."""
        a = getattr(self, name)
        return torch.from_numpy(np.ascontiguousarray(a.reshape(-1, *a.shape[2:]), dtype=np.float32))


class OnPolicyAlgorithm:
    """Rollout collection, normalisation and GAE for PPO and TRPO; subclasses write `update()`."""

    name = "onpolicy"

    def __init__(self, config: OnPolicyConfig, spec: TaskSpec, envs: Any, *, seed: int, total_steps: int,
                 device: str = "cpu"):
        self.config = cfg = config
        self.spec = spec
        self.envs = envs
        self.seed = seed
        self.total_steps = total_steps
        self.device = torch.device(device)
        self.num_steps = 0
        self.iteration = 0
        self.should_stop: Callable[[], bool] = never
        obs_dim, act_dim = spec.obs_dim, spec.act_dim
        if envs.num_envs != cfg.num_envs:
            raise ValueError(f"envs has {envs.num_envs} envs, config asks for {cfg.num_envs}")
        self.rng = np.random.default_rng(seed)
        self.gen = torch.Generator().manual_seed(seed)
        self.actor = GaussianActor(obs_dim, act_dim, cfg.hidden_sizes, cfg.activation, cfg.log_std_init,
                                   generator=self.gen).to(self.device)
        self.critic = ValueCritic(obs_dim, cfg.hidden_sizes, cfg.activation, generator=self.gen).to(self.device)
        self.obs_rms = RunningMeanStd((obs_dim,))
        self.ret_rms = RunningMeanStd(())
        self._ret = np.zeros(cfg.num_envs)  # running discounted return per env, for reward scaling
        self.buffer = RolloutBuffer(cfg.rollout_steps, cfg.num_envs, obs_dim, act_dim)
        self.act_offset, self.act_scale = spec_action_arrays(spec)
        self._obs: np.ndarray | None = None  # raw observation of the current step, per env
        self.update_threads: int | None = None  # torch threads of `update` (None: as for acting)

    # ---------------------------------------------------------------------------------------------
    # Normalisation

    def _normalize_obs(self, obs: np.ndarray, update: bool) -> np.ndarray:
        if not self.config.normalize_obs:
            return obs.astype(np.float32)
        if update:
            self.obs_rms.update(obs)
        return self.obs_rms.normalize(obs, self.config.obs_clip).astype(np.float32)

    def _scale_reward(self, reward: np.ndarray, episode_end: np.ndarray, envs: slice = slice(None)) -> np.ndarray:
        cfg = self.config
        if not cfg.normalize_reward:
            return reward
        ret = self._ret[envs]  # a view: the running returns of these envs
        ret *= cfg.gamma
        ret += reward
        self.ret_rms.update(ret)
        ret[episode_end] = 0.0
        return np.clip(reward / np.sqrt(self.ret_rms.var + 1e-8), -cfg.reward_clip, cfg.reward_clip)

    # ---------------------------------------------------------------------------------------------
    # Collection

    def _reset_envs(self) -> None:
        seeds = [int(s) for s in self.rng.integers(0, 2**31 - 1, size=self.config.num_envs)]
        self._obs, _ = self.envs.reset(seed=seeds)
        self._ret[:] = 0.0

    def collect(self) -> tuple[list[float], list[int]]:
        """Fill the buffer with one rollout and compute advantages; returns finished episodes."""
        cfg, buf = self.config, self.buffer
        if self._obs is None:
            self._reset_envs()
        self._std = torch.exp(self.actor.log_std.detach()).cpu()
        self._episodes: tuple[list[float], list[int]] = ([], [])
        self._episode_means: dict[str, list[float]] = {}
        buf.trunc_index.clear()
        buf.trunc_obs.clear()
        obs = self._obs
        for t in range(cfg.rollout_steps):
            if self.should_stop():  # a rollout may be 2**24 steps: drop it rather than finish it
                self._obs = None  # the envs are mid-episode in a rollout nobody learns from: start afresh
                raise IterationAborted
            obs = self._record(t, slice(None), self.envs.step(self._act(t, slice(None), obs)))
        self._obs = obs
        buf.last_obs[:] = self._normalize_obs(obs, update=False)
        self.num_steps += cfg.batch_size
        with torch.inference_mode():
            mean = self.actor(buf.flat("obs").to(self.device))
            logp = gaussian_log_prob(buf.flat("actions").to(self.device), mean, self.actor.log_std)
        buf.log_probs[:] = logp.cpu().numpy().reshape(buf.log_probs.shape)
        self.compute_advantages()
        return self._episodes

    def _act(self, t: int, envs: slice, obs: np.ndarray) -> np.ndarray:
        """The policy's actions for `envs` at step t (stored in the buffer), as the envs take them."""
        buf = self.buffer
        obs_n = self._normalize_obs(obs, update=True)
        with torch.inference_mode():
            mean = self.actor(torch.from_numpy(obs_n).to(self.device)).cpu()
        action = (mean + self._std * torch.randn(mean.shape, generator=self.gen)).numpy()
        buf.obs[t, envs] = obs_n
        buf.actions[t, envs] = action
        return self.act_offset + self.act_scale * np.clip(action, -1.0, 1.0)

    def _record(self, t: int, envs: slice, result: tuple) -> np.ndarray:
        """Store step t's outcome for `envs` (indices of `result` count from ``envs.start``); the next observation."""
        buf = self.buffer
        next_obs, reward, terminated, truncated, info = result
        episode_end = terminated | truncated
        buf.rewards[t, envs] = self._scale_reward(reward, episode_end, envs)
        buf.terminated[t, envs] = terminated
        buf.episode_end[t, envs] = episode_end
        if episode_end.any():
            first = envs.start or 0
            episode_means(info, np.flatnonzero(episode_end), self._episode_means)
            for i in np.flatnonzero(episode_end):
                self._episodes[0].append(float(info["episode"]["r"][i]))
                self._episodes[1].append(int(info["episode"]["l"][i]))
                if truncated[i] and not terminated[i]:
                    buf.trunc_index.append((t, first + int(i)))
                    buf.trunc_obs.append(self._normalize_obs(info["final_obs"][i:i + 1], update=False)[0])
        return next_obs

    @torch.inference_mode()
    def compute_advantages(self) -> None:
        """Values of the rollout under the current critic, then GAE advantages and returns."""
        cfg, buf = self.config, self.buffer
        T, N = buf.values.shape
        values = self.critic(buf.flat("obs").to(self.device)).cpu().double().numpy().reshape(T, N)
        last = self.critic(torch.from_numpy(buf.last_obs).to(self.device)).cpu().double().numpy()
        buf.values[:] = values
        buf.next_values[:-1] = values[1:]
        buf.next_values[-1] = last
        if buf.trunc_index:
            v_final = self.critic(torch.from_numpy(np.stack(buf.trunc_obs)).to(self.device)).cpu().double().numpy()
            t_idx, e_idx = zip(*buf.trunc_index, strict=True)
            buf.next_values[list(t_idx), list(e_idx)] = v_final
        buf.advantages[:] = compute_gae(buf.rewards, buf.values, buf.next_values, buf.terminated,
                                        buf.episode_end, cfg.gamma, cfg.gae_lambda)
        buf.returns[:] = buf.advantages + buf.values

    # ---------------------------------------------------------------------------------------------
    # The loop's interface

    def update(self) -> dict[str, float]:
        raise NotImplementedError

    def iterate(self) -> IterationResult:
        import time

        t0 = time.perf_counter()
        ep_returns, ep_lengths = self.collect()
        t1 = time.perf_counter()
        with torch_threads(self.update_threads):
            metrics = self.update()
        t2 = time.perf_counter()
        self.iteration += 1
        metrics["time/collect_s"] = t1 - t0
        metrics["time/update_s"] = t2 - t1
        metrics["train/policy_std"] = float(torch.exp(self.actor.log_std.detach()).mean())
        return IterationResult(metrics, ep_returns, ep_lengths, self._episode_means)

    def policy_record(self) -> dict[str, Any]:
        cfg = self.config
        return make_record(self.actor.mu, obs_dim=self.spec.obs_dim, act_dim=self.spec.act_dim,
                           hidden_sizes=cfg.hidden_sizes, activation=cfg.activation, layer_norm=False,
                           out_activation=None, obs_rms=self.obs_rms if cfg.normalize_obs else None,
                           obs_clip=cfg.obs_clip, action_low=self.spec.action_low,
                           action_high=self.spec.action_high)

    def _base_state(self) -> dict[str, Any]:
        return {
            "num_steps": self.num_steps,
            "iteration": self.iteration,
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "obs_rms": self.obs_rms.state_dict(),
            "ret_rms": self.ret_rms.state_dict(),
            "torch_rng": self.gen.get_state(),
            "numpy_rng": self.rng.bit_generator.state,
        }

    def _load_base_state(self, state: dict[str, Any]) -> None:
        self.num_steps = int(state["num_steps"])
        self.iteration = int(state["iteration"])
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.obs_rms.load_state_dict(state["obs_rms"])
        self.ret_rms.load_state_dict(state["ret_rms"])
        self.gen.set_state(state["torch_rng"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self._obs = None  # envs restart from fresh episodes (seeded from the restored RNG)

    def close(self) -> None:
        self.envs.close()
