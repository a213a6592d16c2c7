"""Deep Deterministic Policy Gradient (Lillicrap et al. 2015, arXiv:1509.02971), Algorithm 1.

Deterministic actor mu(s), critic Q(s, a), and slowly-tracking target copies mu', Q'. Each
environment step stores (s, a, r, s', terminated) in a replay buffer; then, per step (after a
random-action warm-up), on a minibatch of N transitions:

    y_i      = r_i + gamma * (1 - terminated_i) * Q'(s'_i, mu'(s'_i))
    critic:  minimise  1/N sum_i (y_i - Q(s_i, a_i))^2
    actor:   ascend    1/N sum_i Q(s_i, mu(s_i))          (the deterministic policy gradient)
    targets: theta' <- tau theta + (1 - tau) theta'

Exploration (`noise`): Ornstein-Uhlenbeck or Gaussian noise added to mu(s), or adaptive
parameter-space noise (Plappert et al. 2018): each env acts with its own copy of the actor whose
weights carry Gaussian noise of scale sigma, re-drawn when its episode starts; every
`param_noise_interval` steps sigma is adapted so that the perturbed actor's actions differ from
mu's on replay states by about `param_noise_desired_std` (RMS, normalised action units).

Deviations from the paper: 256x256 ReLU networks with orthogonal initialisation (paper: 400x300 with
fan-in uniform), layer normalisation in the actor with parameter noise (paper: batch normalisation;
by default none otherwise), the action enters the critic at the input (paper: at the second
layer), no L2 weight decay on the critic, one Adam step per environment step with lr 1e-3 for both
networks, tau 0.005 (paper 0.001), a uniform-random warm-up of `learning_starts` steps, and
time-limit truncations bootstrapped (only termination ends the return).

The actor's gradient is taken through the critic as it was before the same step's critic update
(`actor_update="concurrent"`, the order of OpenAI Baselines' DDPG; the paper's Algorithm 1 does not
say). The two updates then share no state, so the actor step runs in a second thread while the
critic step runs in the first, each a single-threaded chain of matrix products: on a two-core CPU
one 256x256 update takes about 60 % of the time of the sequential one (bench/ddpg_update.py). The
results are the same with and without the thread. `actor_update="sequential"` gives the SB3/TD3
order (actor through the updated critic) on one core.
"""

from __future__ import annotations

import copy
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch.func import functional_call, vmap

from robotrl.buffers import ReplayBuffer
from robotrl.config import MAX_ENVS, check_network, check_range
from robotrl.core import IterationResult, spec_action_arrays
from robotrl.functional import available_cores, polyak_update
from robotrl.noise import AdaptiveParamNoise, GaussianNoise, OrnsteinUhlenbeckNoise
from robotrl.optim import Adam
from robotrl.policies import DeterministicActor, QCritic, RunningMeanStd, make_record
from robotrl.spec import TaskSpec


@dataclass
class DDPGConfig:
    """DDPG hyper-parameters. Defaults follow Spinning Up / Tianshou's MuJoCo settings."""

    num_envs: int = 1
    """Environments stepped in parallel; each env step is followed by updates_per_step updates."""
    buffer_size: int = 1_000_000
    """Replay capacity in transitions (all envs together)."""
    batch_size: int = 256
    """Transitions per gradient step."""
    learning_starts: int = 10_000
    """Steps of uniform-random actions before learning and policy actions start."""
    actor_learning_rate: float = 1e-3
    """Adam step size of the actor."""
    critic_learning_rate: float = 1e-3
    """Adam step size of the critic."""
    gamma: float = 0.99
    """Discount factor, in (0, 1]."""
    tau: float = 0.005
    """Polyak rate of the target networks: theta' <- tau theta + (1 - tau) theta'."""
    updates_per_step: int = 1
    """Gradient steps (critic + actor + targets) per environment step."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of actor and critic."""
    activation: Literal["relu", "tanh", "elu"] = "relu"
    """Hidden activation of actor and critic."""
    layer_norm: bool | None = None
    """Layer-normalise the actor's hidden layers (default: on with parameter noise, which needs it; off otherwise)."""
    normalize_obs: bool = False
    """Normalise observations by running mean/std (the statistics ship with the exported actor)."""
    obs_clip: float = 10.0
    """Clip normalised observations to +-obs_clip."""
    noise: Literal["ou", "gaussian", "param"] = "ou"
    """Exploration: Ornstein-Uhlenbeck action noise, Gaussian action noise, or adaptive parameter noise."""
    ou_theta: float = 0.15
    """OU mean-reversion rate theta."""
    ou_sigma: float = 0.2
    """OU volatility sigma (stationary std = sigma sqrt(dt / (1 - (1 - theta dt)^2)), 0.365 at the defaults)."""
    ou_dt: float = 0.01
    """OU time step dt of the discretisation (0.01 as in OpenAI Baselines and SB3)."""
    gaussian_sigma: float = 0.1
    """Standard deviation of Gaussian action noise (normalised units)."""
    noise_sigma_final: float | None = None
    """Decay the OU/Gaussian sigma linearly to this value (none: no decay)."""
    noise_decay_steps: int = 0
    """Steps over which sigma decays to noise_sigma_final (counted from the start of training)."""
    param_noise_initial_std: float = 0.1
    """Initial weight-perturbation scale sigma of parameter noise."""
    param_noise_desired_std: float = 0.2
    """Target RMS distance between perturbed and unperturbed actions (normalised units)."""
    param_noise_alpha: float = 1.01
    """Multiplicative adaptation factor of sigma (> 1)."""
    param_noise_interval: int = 50
    """Adapt sigma every this many environment steps."""
    iteration_steps: int = 1000
    """Environment steps per logged iteration (metrics row, checkpoint granularity)."""
    actor_update: Literal["concurrent", "sequential"] = "concurrent"
    """concurrent: the actor's gradient uses the critic as it was before this step's critic update (as in OpenAI
    Baselines' DDPG), so the two updates run at once on two cores; sequential: it uses the updated critic (as in
    Stable-Baselines3), one core. Results do not depend on the number of cores either way."""

    def __post_init__(self) -> None:
        if self.num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {self.num_envs}")
        if self.batch_size < 1 or self.buffer_size < self.batch_size:
            raise ValueError(f"need 1 <= batch_size <= buffer_size, got {self.batch_size} and {self.buffer_size}")
        if not 0 < self.tau <= 1:
            raise ValueError(f"tau must be in (0, 1], got {self.tau}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if self.noise_sigma_final is not None and self.noise_decay_steps <= 0:
            raise ValueError("noise_sigma_final needs noise_decay_steps > 0")
        if self.iteration_steps < self.num_envs:
            raise ValueError(f"iteration_steps must be >= num_envs, got {self.iteration_steps}")
        if self.layer_norm is None:
            self.layer_norm = self.noise == "param"
        if self.actor_update not in ("concurrent", "sequential"):
            raise ValueError(f"actor_update must be 'concurrent' or 'sequential', got {self.actor_update!r}")
        check_network(self.hidden_sizes)
        check_range(self, "num_envs", le=MAX_ENVS)
        check_range(self, "buffer_size", le=10**8)
        check_range(self, "learning_starts", ge=0)
        check_range(self, "actor_learning_rate", gt=0, le=10)
        check_range(self, "critic_learning_rate", gt=0, le=10)
        check_range(self, "updates_per_step", ge=1, le=1000)
        check_range(self, "obs_clip", gt=0)  # 0 would blind the policy
        check_range(self, "ou_theta", gt=0)
        check_range(self, "ou_dt", gt=0)
        if not self.ou_theta * self.ou_dt < 2:  # |1 - theta dt| < 1, or the discretised process diverges
            raise ValueError(f"ou_theta * ou_dt must be < 2, got {self.ou_theta * self.ou_dt}")
        for name in ("ou_sigma", "gaussian_sigma", "noise_sigma_final", "noise_decay_steps"):
            check_range(self, name, ge=0)
        check_range(self, "param_noise_initial_std", gt=0)
        check_range(self, "param_noise_desired_std", gt=0)
        check_range(self, "param_noise_alpha", gt=1)
        check_range(self, "param_noise_interval", ge=1)
        check_range(self, "iteration_steps", le=10**8)


class DDPG:
    name = "ddpg"
    Config = DDPGConfig

    def __init__(self, config: DDPGConfig, spec: TaskSpec, envs: Any, *, seed: int, total_steps: int,
                 device: str = "cpu"):
        self.config = cfg = config
        self.spec, self.envs, self.seed, self.total_steps = spec, envs, seed, total_steps
        self.device = torch.device(device)
        self.num_steps = 0
        self.iteration = 0
        self.updates = 0
        obs_dim, act_dim, N = spec.obs_dim, spec.act_dim, cfg.num_envs
        if envs.num_envs != N:
            raise ValueError(f"envs has {envs.num_envs} envs, config asks for {N}")
        self.rng = np.random.default_rng(seed)
        self.gen = torch.Generator().manual_seed(seed)
        self.actor = DeterministicActor(obs_dim, act_dim, cfg.hidden_sizes, cfg.activation, cfg.layer_norm,
                                        generator=self.gen).to(self.device)
        self.critic = QCritic(obs_dim, act_dim, cfg.hidden_sizes, cfg.activation, generator=self.gen).to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = Adam(self.actor.parameters(), lr=cfg.actor_learning_rate)
        self.critic_opt = Adam(self.critic.parameters(), lr=cfg.critic_learning_rate)
        # The actor step reads this copy of the critic, refreshed after every update, so it can run while the
        # critic step changes the critic (actor_update="concurrent").
        self.critic_view = copy.deepcopy(self.critic).requires_grad_(False)
        self._critic_params = list(self.critic.parameters())
        self._critic_view_params = list(self.critic_view.parameters())
        self._pool = None
        if cfg.actor_update == "concurrent" and self.device.type == "cpu" and available_cores() >= 2:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="robotrl-actor-step")
        self._online = [*self.actor.parameters(), *self.critic.parameters()]
        self._target = [*self.actor_target.parameters(), *self.critic_target.parameters()]
        self.buffer = ReplayBuffer(cfg.buffer_size, N, obs_dim, act_dim)
        self.obs_rms = RunningMeanStd((obs_dim,))
        self.act_offset, self.act_scale = spec_action_arrays(spec)
        if cfg.noise == "ou":
            self.noise: Any = OrnsteinUhlenbeckNoise(N, act_dim, self.rng, theta=cfg.ou_theta, sigma=cfg.ou_sigma,
                                                     dt=cfg.ou_dt, sigma_final=cfg.noise_sigma_final,
                                                     decay_steps=cfg.noise_decay_steps)
        elif cfg.noise == "gaussian":
            self.noise = GaussianNoise(N, act_dim, self.rng, sigma=cfg.gaussian_sigma,
                                       sigma_final=cfg.noise_sigma_final, decay_steps=cfg.noise_decay_steps)
        else:
            self.noise = AdaptiveParamNoise(initial_std=cfg.param_noise_initial_std,
                                            desired_action_std=cfg.param_noise_desired_std,
                                            alpha=cfg.param_noise_alpha)
            # LayerNorm gains and biases stay unperturbed (Plappert et al. 2018, sec. 3).
            ln = {name for name, m in self.actor.named_modules() if isinstance(m, torch.nn.LayerNorm)}
            self._perturbable = {n for n, _ in self.actor.named_parameters() if n.rsplit(".", 1)[0] not in ln}
            self._perturbed = self._perturbed_params(N)
        self._obs: np.ndarray | None = None

    # ---------------------------------------------------------------------------------------------
    # Acting

    def _normalize(self, obs: np.ndarray) -> np.ndarray:
        if not self.config.normalize_obs:
            return obs.astype(np.float32, copy=False)
        return self.obs_rms.normalize(obs, self.config.obs_clip).astype(np.float32)

    def _perturbed_params(self, n: int) -> dict[str, torch.Tensor]:
        """n independent copies of the actor's parameters, each with N(0, sigma^2) added to every
        perturbable parameter: ``[n, *shape]`` per parameter."""
        out = {}
        for name, p in self.actor.named_parameters():
            copies = p.detach().unsqueeze(0).repeat(n, *([1] * p.ndim))
            if name in self._perturbable:
                copies += self.noise.sigma * torch.randn(copies.shape, generator=self.gen).to(copies.device)
            out[name] = copies
        return out

    def _perturbed_actions(self, params: dict[str, torch.Tensor], obs: torch.Tensor) -> torch.Tensor:
        """Actions of the perturbed actors: params ``[n, ...]``, obs ``[n, B, obs_dim]`` -> ``[n, B, act_dim]``."""
        return vmap(lambda p, x: functional_call(self.actor, p, (x,)))(params, obs)

    @torch.no_grad()
    def _explore(self, obs_n: np.ndarray) -> np.ndarray:
        """Normalised exploratory actions ``[N, act_dim]`` for the current observations."""
        cfg = self.config
        if self.num_steps < cfg.learning_starts:
            return self.rng.uniform(-1.0, 1.0, size=(cfg.num_envs, self.spec.act_dim)).astype(np.float32)
        x = torch.from_numpy(obs_n).to(self.device)
        if cfg.noise == "param":
            a = self._perturbed_actions(self._perturbed, x.unsqueeze(1)).squeeze(1).cpu().numpy()
        else:
            a = self.actor(x).cpu().numpy() + self.noise()
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    @torch.no_grad()
    def _adapt_param_noise(self) -> None:
        obs = self._normalize(self.buffer.sample_obs(self.config.batch_size, self.rng))
        obs = torch.from_numpy(obs).to(self.device)
        probe = self._perturbed_params(1)
        a = self.actor(obs)
        a_p = self._perturbed_actions(probe, obs.unsqueeze(0))[0]
        self.noise.adapt(float(torch.sqrt(((a - a_p) ** 2).mean())))

    # ---------------------------------------------------------------------------------------------
    # Learning

    def update(self) -> dict[str, torch.Tensor]:
        cfg = self.config
        b = self.buffer.sample(cfg.batch_size, self.rng, self.device)
        obs, next_obs = b.obs, b.next_obs
        if cfg.normalize_obs:
            obs = torch.from_numpy(self._normalize(obs.cpu().numpy())).to(self.device)
            next_obs = torch.from_numpy(self._normalize(next_obs.cpu().numpy())).to(self.device)
        if cfg.actor_update == "sequential":
            critic_loss, q = self._critic_step(obs, b.actions, b.rewards, b.terminated, next_obs)
            self._refresh_critic_view()
            actor_loss = self._actor_step(obs)
        elif self._pool is not None:
            actor_step = self._pool.submit(self._actor_step, obs)
            critic_loss, q = self._critic_step(obs, b.actions, b.rewards, b.terminated, next_obs)
            actor_loss = actor_step.result()
            self._refresh_critic_view()
        else:  # concurrent semantics on one core: the same arithmetic, one step after the other
            actor_loss = self._actor_step(obs)
            critic_loss, q = self._critic_step(obs, b.actions, b.rewards, b.terminated, next_obs)
            self._refresh_critic_view()
        polyak_update(self._target, self._online, cfg.tau)
        self.updates += 1
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(), "q_mean": q.detach().mean()}

    @torch.no_grad()
    def _refresh_critic_view(self) -> None:
        torch._foreach_copy_(self._critic_view_params, self._critic_params)

    def _critic_step(self, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, terminated: torch.Tensor,
                     next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One Adam step on the TD error against the target networks; (loss, Q values)."""
        with torch.no_grad():
            q_next = self.critic_target(next_obs, self.actor_target(next_obs))
            y = rewards + self.config.gamma * (1.0 - terminated) * q_next
        q = self.critic(obs, actions)
        loss = (q - y).pow(2).mean()
        self.critic_opt.zero_grad()
        loss.backward()
        self.critic_opt.step()
        return loss, q

    def _actor_step(self, obs: torch.Tensor) -> torch.Tensor:
        """One Adam step up dQ/da of the critic view (no gradient for the critic's own weights)."""
        loss = -self.critic_view(obs, self.actor(obs)).mean()
        self.actor_opt.zero_grad()
        loss.backward()
        self.actor_opt.step()
        return loss

    # ---------------------------------------------------------------------------------------------
    # The loop's interface

    def _reset_envs(self) -> None:
        seeds = [int(s) for s in self.rng.integers(0, 2**31 - 1, size=self.config.num_envs)]
        self._obs, _ = self.envs.reset(seed=seeds)
        self.buffer.reset(self._obs)
        if self.config.normalize_obs:
            self.obs_rms.update(self._obs)
        if self.config.noise == "param":
            self._perturbed = self._perturbed_params(self.config.num_envs)
        else:
            self.noise.reset()

    def iterate(self) -> IterationResult:
        cfg = self.config
        if self._obs is None:
            self._reset_envs()
        t0 = time.perf_counter()
        learn_time = 0.0
        ep_returns: list[float] = []
        ep_lengths: list[int] = []
        stats: dict[str, list[torch.Tensor]] = {"critic_loss": [], "actor_loss": [], "q_mean": []}
        target = self.num_steps + cfg.iteration_steps
        while self.num_steps < target:
            if cfg.noise != "param":
                self.noise.set_step(self.num_steps)
            action = self._explore(self._normalize(self._obs))
            next_obs, reward, terminated, truncated, info = self.envs.step(self.act_offset + self.act_scale * action)
            episode_end = terminated | truncated
            self.buffer.add(action, reward, next_obs, terminated, episode_end, info.get("final_obs"))
            if cfg.normalize_obs:
                self.obs_rms.update(next_obs)
            if episode_end.any():
                ended = np.flatnonzero(episode_end)
                ep_returns.extend(float(info["episode"]["r"][i]) for i in ended)
                ep_lengths.extend(int(info["episode"]["l"][i]) for i in ended)
                if cfg.noise == "param":
                    fresh = self._perturbed_params(len(ended))
                    for name in self._perturbed:
                        self._perturbed[name][torch.from_numpy(ended)] = fresh[name]
                else:
                    self.noise.reset(ended)
            self._obs = next_obs
            before = self.num_steps
            self.num_steps += cfg.num_envs
            if self.num_steps > cfg.learning_starts:
                t_learn = time.perf_counter()
                for _ in range(cfg.num_envs * cfg.updates_per_step):
                    for k, v in self.update().items():
                        stats[k].append(v)
                interval = cfg.param_noise_interval
                if cfg.noise == "param" and self.num_steps // interval > before // interval:
                    self._adapt_param_noise()
                learn_time += time.perf_counter() - t_learn
        self.iteration += 1
        metrics: dict[str, float] = {f"train/{k}": float(torch.stack(v).mean()) for k, v in stats.items() if v}
        metrics["train/updates"] = self.updates
        metrics["train/noise_sigma"] = float(self.noise.sigma)
        if cfg.noise == "param":
            if np.isfinite(self.noise.last_distance):  # measured only once learning has started
                metrics["train/param_noise_distance"] = self.noise.last_distance
        elif hasattr(self.noise, "stationary_std"):
            metrics["train/noise_stationary_std"] = float(self.noise.stationary_std)
        metrics["time/update_s"] = learn_time
        metrics["time/collect_s"] = time.perf_counter() - t0 - learn_time
        return IterationResult(metrics, ep_returns, ep_lengths)

    def policy_record(self) -> dict[str, Any]:
        cfg = self.config
        return make_record(self.actor.mu, obs_dim=self.spec.obs_dim, act_dim=self.spec.act_dim,
                           hidden_sizes=cfg.hidden_sizes, activation=cfg.activation, layer_norm=cfg.layer_norm,
                           out_activation="tanh", obs_rms=self.obs_rms if cfg.normalize_obs else None,
                           obs_clip=cfg.obs_clip, action_low=self.spec.action_low, action_high=self.spec.action_high)

    def state_dict(self) -> dict[str, Any]:
        state = {
            "num_steps": self.num_steps, "iteration": self.iteration, "updates": self.updates,
            "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
            "actor_target": self.actor_target.state_dict(), "critic_target": self.critic_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
            "obs_rms": self.obs_rms.state_dict(), "noise": self.noise.state_dict(),
            "replay": self.buffer.state_dict(),
            "torch_rng": self.gen.get_state(), "numpy_rng": self.rng.bit_generator.state,
        }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.num_steps, self.iteration = int(state["num_steps"]), int(state["iteration"])
        self.updates = int(state["updates"])
        for name in ("actor", "critic", "actor_target", "critic_target"):
            getattr(self, name).load_state_dict(state[name])
        self.critic_view.load_state_dict(state["critic"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.obs_rms.load_state_dict(state["obs_rms"])
        self.noise.load_state_dict(state["noise"])
        self.buffer.load_state_dict(state["replay"])
        self.gen.set_state(state["torch_rng"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self._obs = None  # envs restart from fresh episodes; the replay buffer keeps what was learned from

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        self.envs.close()
