"""The off-policy core shared by DDPG, TD3 and SAC: replay buffer, target networks, exploration noise,
the acting loop, a second core for the update, and the checkpointed state.

Each environment step stores (s, a, r, s', terminated) in a replay buffer (`robotrl.algorithms.buffers`: time-limit
truncations bootstrap from the true final state, only termination ends the return). The first
`learning_starts` steps act uniformly at random; after them, every vector step of N envs is followed by
``N * updates_per_step`` calls of the algorithm's `update()`, each on a fresh minibatch. Only the
exploratory action after the warm-up and the update are the algorithm's; the rest is here:

- `OffPolicyConfig`: the fields all three share; `NoiseConfig` adds exploration noise for a
  deterministic actor (DDPG, TD3).
- `ActionNoise`: OU or Gaussian noise added to mu(s), or adaptive parameter-space noise (Plappert et
  al. 2018): each env acts with its own copy of the actor whose weights carry Gaussian noise of scale
  sigma (LayerNorm parameters left alone), re-drawn when its episode starts; every
  `param_noise_interval` steps sigma is adapted so that the perturbed actor's actions differ from mu's
  on replay states by about `param_noise_desired_std` (RMS, normalised action units).
- `OffPolicyAlgorithm`: the training loop's interface (`iterate`, `state_dict`, `policy_record`),
  minibatches with observation normalisation, Polyak averaging, frozen critic views, `beside`.

Two cores (`actor_update="concurrent"`, the default). Once an update's TD target y is computed, the
critic step and the actor step share no state if the actor's gradient is taken through a frozen copy
of the critic as it was before this update's critic step (OpenAI Baselines' DDPG order; the DDPG, TD3
and SAC papers step the actor through the updated critic, ``"sequential"``). `beside` runs one of
them in a second thread while the other runs in this one, each a single-threaded chain of matrix
products; with two critics (TD3, SAC) their two regressions are independent in either order and
are split the same way. Every random number an update needs is drawn in the main thread before the
split, so the results are bit-identical with and without the second thread (tests/algorithms/test_ddpg.py,
tests/algorithms/test_offpolicy.py); only the time differs (bench/offpolicy_update.py).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from robotrl.algorithms.buffers import MIN_SLOTS, Batch, ReplayBuffer
from robotrl.algorithms.core import IterationResult, episode_means, never, spec_action_arrays
from robotrl.algorithms.functional import available_cores, polyak_update
from robotrl.algorithms.noise import AdaptiveParamNoise, GaussianNoise, OrnsteinUhlenbeckNoise
from robotrl.algorithms.optim import Adam
from robotrl.config import MAX_ENVS, check_network, check_range
from robotrl.policies import DeterministicActor, RunningMeanStd, TwinQCritic, make_record
from robotrl.spec import TaskSpec

T = TypeVar("T")
U = TypeVar("U")

SECOND_CORE_MIN_WORK = 2**22
"""Below this batch_size x (widest hidden layer)^2 (256 x 128^2), updates run in one thread: handing work to a
second thread costs tens of microseconds on a quiet machine and a scheduler time slice on a busy one, more than
half of a small network's update takes. (TD3 on Pendulum, 32x32, batch 32, both cores busy with other work:
46 steps/s with the second thread, 1,287 without.)"""


@dataclass
class OffPolicyConfig:
    """Fields shared by DDPG, TD3 and SAC."""

    num_envs: int = 1
    """Environments stepped in parallel; each env step is followed by updates_per_step updates."""
    buffer_size: int = 1_000_000
    """Replay capacity in transitions (all envs together), at least 4 x num_envs: each env keeps a ring of
    buffer_size // num_envs observations, which must hold a transition, its episode's final observation and the
    next episode's first, and keep it across a resume."""
    batch_size: int = 256
    """Transitions per gradient step."""
    learning_starts: int = 10_000
    """Steps of uniform-random actions before learning and policy actions start."""
    actor_learning_rate: float = 1e-3
    """Adam step size of the actor."""
    critic_learning_rate: float = 1e-3
    """Adam step size of the critic(s)."""
    gamma: float = 0.99
    """Discount factor, in (0, 1]."""
    tau: float = 0.005
    """Polyak rate of the target networks: theta' <- tau theta + (1 - tau) theta'."""
    updates_per_step: int = 1
    """Gradient steps per environment step (per env)."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of actor and critic(s)."""
    activation: Literal["relu", "tanh", "elu"] = "relu"
    """Hidden activation of actor and critic(s)."""
    normalize_obs: bool = False
    """Normalise observations by running mean/std (the statistics ship with the exported actor)."""
    obs_clip: float = 10.0
    """Clip normalised observations to +-obs_clip."""
    iteration_steps: int = 1000
    """Environment steps per logged iteration (metrics row, checkpoint granularity)."""
    actor_update: Literal["concurrent", "sequential"] = "concurrent"
    """concurrent: the actor's gradient uses the critic as it was before this update's critic step (as in OpenAI
    Baselines' DDPG), so the two steps run at once on two cores; sequential: it uses the updated critic (the papers'
    and Stable-Baselines3's order). Results do not depend on the number of cores either way."""

    def __post_init__(self) -> None:
        if self.num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {self.num_envs}")
        check_range(self, "num_envs", le=MAX_ENVS)
        if self.buffer_size < MIN_SLOTS * self.num_envs:
            raise ValueError(f"buffer_size must be at least {MIN_SLOTS} x num_envs = {MIN_SLOTS * self.num_envs}, got "
                             f"{self.buffer_size}: each env's share of the replay buffer must hold a transition, its "
                             f"episode's final observation and the next episode's first")
        if self.batch_size < 1 or self.buffer_size < self.batch_size:
            raise ValueError(f"need 1 <= batch_size <= buffer_size, got {self.batch_size} and {self.buffer_size}")
        if not 0 < self.tau <= 1:
            raise ValueError(f"tau must be in (0, 1], got {self.tau}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if self.iteration_steps < self.num_envs:
            raise ValueError(f"iteration_steps must be >= num_envs, got {self.iteration_steps}")
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
        check_range(self, "iteration_steps", le=10**8)


@dataclass
class NoiseConfig(OffPolicyConfig):
    """Exploration of a deterministic actor (DDPG, TD3)."""

    layer_norm: bool | None = None
    """Layer-normalise the actor's hidden layers (default: on with parameter noise, which needs it; off otherwise)."""
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

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.layer_norm is None:
            self.layer_norm = self.noise == "param"
        check_range(self, "ou_theta", gt=0)
        check_range(self, "ou_dt", gt=0)
        if not self.ou_theta * self.ou_dt < 2:  # |1 - theta dt| < 1, or the discretised process diverges
            raise ValueError(f"ou_theta * ou_dt must be < 2, got {self.ou_theta * self.ou_dt}")
        for name in ("ou_sigma", "gaussian_sigma", "noise_sigma_final", "noise_decay_steps"):
            check_range(self, name, ge=0)
        # after each field's own range, so a negative noise_sigma_final is named as such (issue 31)
        if self.noise_sigma_final is not None and self.noise_decay_steps <= 0:
            raise ValueError("noise_sigma_final needs noise_decay_steps > 0")
        check_range(self, "param_noise_initial_std", gt=0)
        check_range(self, "param_noise_desired_std", gt=0)
        check_range(self, "param_noise_alpha", gt=1)
        check_range(self, "param_noise_interval", ge=1)


class ActionNoise:
    """Exploratory actions of a deterministic actor mu(s) in [-1, 1] for `num_envs` envs (see the module
    docstring); `process` is the `robotrl.algorithms.noise` object, whose state is what a checkpoint keeps."""

    def __init__(self, cfg: NoiseConfig, actor: nn.Module, num_envs: int, act_dim: int, rng: np.random.Generator,
                 gen: torch.Generator):
        self.cfg, self.actor, self.gen, self.num_envs = cfg, actor, gen, num_envs
        self.param = cfg.noise == "param"
        if cfg.noise == "ou":
            self.process: Any = OrnsteinUhlenbeckNoise(num_envs, act_dim, rng, theta=cfg.ou_theta, sigma=cfg.ou_sigma,
                                                       dt=cfg.ou_dt, sigma_final=cfg.noise_sigma_final,
                                                       decay_steps=cfg.noise_decay_steps)
        elif cfg.noise == "gaussian":
            self.process = GaussianNoise(num_envs, act_dim, rng, sigma=cfg.gaussian_sigma,
                                         sigma_final=cfg.noise_sigma_final, decay_steps=cfg.noise_decay_steps)
        else:
            self.process = AdaptiveParamNoise(initial_std=cfg.param_noise_initial_std,
                                              desired_action_std=cfg.param_noise_desired_std,
                                              alpha=cfg.param_noise_alpha)
            # LayerNorm gains and biases stay unperturbed (Plappert et al. 2018, sec. 3).
            ln = {name for name, m in actor.named_modules() if isinstance(m, nn.LayerNorm)}
            self.perturbable = {n for n, _ in actor.named_parameters() if n.rsplit(".", 1)[0] not in ln}
            self.perturbed = self.perturbed_params(num_envs)

    @property
    def sigma(self) -> float:
        return float(self.process.sigma)

    def perturbed_params(self, n: int) -> dict[str, torch.Tensor]:
        """n independent copies of the actor's parameters, each with N(0, sigma^2) added to every
        perturbable parameter: ``[n, *shape]`` per parameter."""
        out = {}
        for name, p in self.actor.named_parameters():
            copies = p.detach().unsqueeze(0).repeat(n, *([1] * p.ndim))
            if name in self.perturbable:
                copies += self.process.sigma * torch.randn(copies.shape, generator=self.gen).to(copies.device)
            out[name] = copies
        return out

    def perturbed_actions(self, params: dict[str, torch.Tensor], obs: torch.Tensor) -> torch.Tensor:
        """Actions of the perturbed actors: params ``[n, ...]``, obs ``[n, B, obs_dim]`` -> ``[n, B, act_dim]``."""
        return vmap(lambda p, x: functional_call(self.actor, p, (x,)))(params, obs)

    def set_step(self, t: int) -> None:
        """The sigma decay of OU and Gaussian noise at global step `t`."""
        if not self.param:
            self.process.set_step(t)

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> np.ndarray:
        """Exploratory actions ``[N, act_dim]`` for normalised observations ``[N, obs_dim]``, clipped to [-1, 1]."""
        if self.param:
            a = self.perturbed_actions(self.perturbed, obs.unsqueeze(1)).squeeze(1).cpu().numpy()
        else:
            a = self.actor(obs).cpu().numpy() + self.process()
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    def reset(self, ended: np.ndarray | None = None) -> None:
        """Restart the noise of the envs whose episodes ended (all with None): OU state back to its
        mean, a fresh perturbation of the actor."""
        if not self.param:
            self.process.reset(ended)
        elif ended is None:
            self.perturbed = self.perturbed_params(self.num_envs)
        else:
            fresh = self.perturbed_params(len(ended))
            for name in self.perturbed:
                self.perturbed[name][torch.from_numpy(ended)] = fresh[name]

    def due(self, before: int, after: int) -> bool:
        """Whether parameter noise adapts after the env steps from `before` to `after`."""
        k = self.cfg.param_noise_interval
        return self.param and after // k > before // k

    @torch.no_grad()
    def adapt(self, obs: torch.Tensor) -> None:
        """Measure the action distance of a fresh perturbation on replay observations ``[B, obs_dim]``; adapt sigma."""
        probe = self.perturbed_params(1)
        a = self.actor(obs)
        a_p = self.perturbed_actions(probe, obs.unsqueeze(0))[0]
        self.process.adapt(float(torch.sqrt(((a - a_p) ** 2).mean())))

    def metrics(self) -> dict[str, float]:
        out = {"train/noise_sigma": self.sigma}
        if self.param:
            if np.isfinite(self.process.last_distance):  # measured only once learning has started
                out["train/param_noise_distance"] = self.process.last_distance
        else:
            out["train/noise_stationary_std"] = float(self.process.stationary_std)
        return out

    def state_dict(self) -> dict[str, Any]:
        return self.process.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.process.load_state_dict(state)


class TwinAdam:
    """One Adam per critic of a `TwinQCritic`, so that the two can step in two threads; the same
    arithmetic as one Adam over both (Adam is per parameter)."""

    def __init__(self, critic: TwinQCritic, lr: float):
        self.q1 = Adam(critic.q1.parameters(), lr=lr)
        self.q2 = Adam(critic.q2.parameters(), lr=lr)

    def state_dict(self) -> dict[str, Any]:
        return {"q1": self.q1.state_dict(), "q2": self.q2.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.q1.load_state_dict(state["q1"])
        self.q2.load_state_dict(state["q2"])


def regress(critic: nn.Module, opt: Adam, obs: torch.Tensor, actions: torch.Tensor, y: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """One Adam step of a Q network on the squared TD error ``mean((Q(s, a) - y)^2)``; (loss, Q values)."""
    q = critic(obs, actions)
    loss = (q - y).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.detach(), q.detach()


class OffPolicyAlgorithm:
    """Acting, replay, minibatches and checkpoints for DDPG, TD3 and SAC; subclasses build their networks
    and write `update()` (and, without `ActionNoise`, `explore()`)."""

    name = "offpolicy"
    checkpointed: tuple[str, ...] = ()
    """Attributes with state_dict/load_state_dict kept in a checkpoint, under their own names."""

    def __init__(self, config: OffPolicyConfig, spec: TaskSpec, envs: Any, *, seed: int, total_steps: int,
                 device: str = "cpu"):
        self.config = cfg = config
        self.spec, self.envs, self.seed, self.total_steps = spec, envs, seed, total_steps
        self.device = torch.device(device)
        self.num_steps = 0
        self.iteration = 0
        self.updates = 0
        self.should_stop: Callable[[], bool] = never
        if envs.num_envs != cfg.num_envs:
            raise ValueError(f"envs has {envs.num_envs} envs, config asks for {cfg.num_envs}")
        self.rng = np.random.default_rng(seed)
        self.gen = torch.Generator().manual_seed(seed)
        self.buffer = ReplayBuffer(cfg.buffer_size, cfg.num_envs, spec.obs_dim, spec.act_dim)
        self.obs_rms = RunningMeanStd((spec.obs_dim,))
        self.act_offset, self.act_scale = spec_action_arrays(spec)
        self.noise: ActionNoise | None = None
        self._pool = None
        if self.device.type == "cpu" and available_cores() >= 2 and \
                cfg.batch_size * max(cfg.hidden_sizes) ** 2 >= SECOND_CORE_MIN_WORK:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="robotrl-second-core")
        self._views: list[tuple[list[torch.Tensor], list[torch.Tensor]]] = []
        self._online: list[torch.Tensor] = []
        self._target: list[torch.Tensor] = []
        self._obs: np.ndarray | None = None

    # ---------------------------------------------------------------------------------------------
    # Building blocks for the algorithms

    def targets(self, *online: nn.Module) -> tuple[nn.Module, ...]:
        """Frozen target copies of `online`, moved toward them by `polyak`."""
        copies = tuple(copy.deepcopy(m).requires_grad_(False) for m in online)
        for m, t in zip(online, copies, strict=True):
            self._online += list(m.parameters())
            self._target += list(t.parameters())
        return copies

    def polyak(self) -> None:
        """theta' <- tau theta + (1 - tau) theta' for every target network, in one fused op."""
        polyak_update(self._target, self._online, self.config.tau)

    def view(self, critic: nn.Module) -> nn.Module:
        """A frozen copy of `critic` for the actor's gradient, brought up to date by `refresh_views`. The actor
        step differentiates through it to the action only, never into the critic's own weights."""
        v = copy.deepcopy(critic).requires_grad_(False)
        self._views.append((list(v.parameters()), list(critic.parameters())))
        return v

    @torch.no_grad()
    def refresh_views(self) -> None:
        for dst, src in self._views:
            torch._foreach_copy_(dst, src)

    def beside(self, side: Callable[[], T], main: Callable[[], U]) -> tuple[T, U]:
        """Run `side` in the second thread while `main` runs in this one (without a second core: `side`, then
        `main`); returns both results. The two must share no state that either writes."""
        if self._pool is None:
            s = side()
            return s, main()
        future = self._pool.submit(side)
        try:
            m = main()
        finally:
            wait([future])
        return future.result(), m

    def sample(self) -> Batch:
        """A minibatch of `batch_size` transitions, observations normalised as the policy sees them."""
        b = self.buffer.sample(self.config.batch_size, self.rng, self.device)
        if self.config.normalize_obs:
            b.obs = torch.from_numpy(self._normalize(b.obs.cpu().numpy())).to(self.device)
            b.next_obs = torch.from_numpy(self._normalize(b.next_obs.cpu().numpy())).to(self.device)
        return b

    def adapt_noise(self) -> None:
        """Parameter noise: measure a fresh perturbation's action distance on replay states, adapt sigma."""
        assert self.noise is not None
        obs = self._normalize(self.buffer.sample_obs(self.config.batch_size, self.rng))
        self.noise.adapt(torch.from_numpy(obs).to(self.device))

    def make_noise(self, actor: nn.Module) -> ActionNoise:
        assert isinstance(self.config, NoiseConfig)
        return ActionNoise(self.config, actor, self.config.num_envs, self.spec.act_dim, self.rng, self.gen)

    def record(self, net: nn.Module, layer_norm: bool) -> dict[str, Any]:
        """The policy record of a deterministic actor network ending in tanh (`net` without the tanh)."""
        cfg = self.config
        return make_record(net, obs_dim=self.spec.obs_dim, act_dim=self.spec.act_dim, hidden_sizes=cfg.hidden_sizes,
                           activation=cfg.activation, layer_norm=layer_norm, out_activation="tanh",
                           obs_rms=self.obs_rms if cfg.normalize_obs else None, obs_clip=cfg.obs_clip,
                           action_low=self.spec.action_low, action_high=self.spec.action_high)

    # ---------------------------------------------------------------------------------------------
    # What an algorithm writes

    def explore(self, obs: torch.Tensor) -> np.ndarray:
        """Exploratory actions ``[N, act_dim]`` in [-1, 1] for normalised observations, after the warm-up."""
        if self.noise is None:
            raise NotImplementedError
        return self.noise(obs)

    def update(self) -> dict[str, torch.Tensor]:
        """One gradient step of everything the algorithm learns; detached scalars to log."""
        raise NotImplementedError

    def policy_record(self) -> dict[str, Any]:
        raise NotImplementedError

    def iteration_metrics(self) -> dict[str, float]:
        """Extra train/ metrics at the end of an iteration."""
        return {}

    # ---------------------------------------------------------------------------------------------
    # The loop's interface

    def _normalize(self, obs: np.ndarray) -> np.ndarray:
        if not self.config.normalize_obs:
            return obs.astype(np.float32, copy=False)
        return self.obs_rms.normalize(obs, self.config.obs_clip).astype(np.float32)

    def _reset_envs(self) -> None:
        seeds = [int(s) for s in self.rng.integers(0, 2**31 - 1, size=self.config.num_envs)]
        self._obs, _ = self.envs.reset(seed=seeds)
        self.buffer.reset(self._obs)
        if self.config.normalize_obs:
            self.obs_rms.update(self._obs)
        if self.noise is not None:
            self.noise.reset()

    def _act(self, obs_n: np.ndarray) -> np.ndarray:
        cfg = self.config
        if self.num_steps < cfg.learning_starts:
            return self.rng.uniform(-1.0, 1.0, size=(cfg.num_envs, self.spec.act_dim)).astype(np.float32)
        return self.explore(torch.from_numpy(obs_n).to(self.device))

    def iterate(self) -> IterationResult:
        cfg = self.config
        if self._obs is None:
            self._reset_envs()
        t0 = time.perf_counter()
        learn_time = 0.0
        ep_returns: list[float] = []
        ep_lengths: list[int] = []
        ep_means: dict[str, list[float]] = {}
        stats: dict[str, list[torch.Tensor]] = {}
        target = self.num_steps + cfg.iteration_steps
        while self.num_steps < target and not self.should_stop():
            if self.noise is not None:
                self.noise.set_step(self.num_steps)
            action = self._act(self._normalize(self._obs))
            next_obs, reward, terminated, truncated, info = self.envs.step(self.act_offset + self.act_scale * action)
            episode_end = terminated | truncated
            self.buffer.add(action, reward, next_obs, terminated, episode_end, info.get("final_obs"))
            if cfg.normalize_obs:
                self.obs_rms.update(next_obs)
            if episode_end.any():
                ended = np.flatnonzero(episode_end)
                ep_returns.extend(float(info["episode"]["r"][i]) for i in ended)
                ep_lengths.extend(int(info["episode"]["l"][i]) for i in ended)
                episode_means(info, ended, ep_means)
                if self.noise is not None:
                    self.noise.reset(ended)
            self._obs = next_obs
            before = self.num_steps
            self.num_steps += cfg.num_envs
            if self.num_steps > cfg.learning_starts:
                t_learn = time.perf_counter()
                for _ in range(cfg.num_envs * cfg.updates_per_step):
                    if self.should_stop():  # up to 4096 envs x 1000 updates per step
                        break
                    for k, v in self.update().items():
                        stats.setdefault(k, []).append(v)
                if self.noise is not None and self.noise.due(before, self.num_steps):
                    self.adapt_noise()
                learn_time += time.perf_counter() - t_learn
        self.iteration += 1
        metrics: dict[str, float] = {f"train/{k}": float(torch.stack(v).mean()) for k, v in stats.items() if v}
        metrics["train/updates"] = self.updates
        if self.noise is not None:
            metrics.update(self.noise.metrics())
        metrics.update(self.iteration_metrics())
        metrics["time/update_s"] = learn_time
        metrics["time/collect_s"] = time.perf_counter() - t0 - learn_time
        return IterationResult(metrics, ep_returns, ep_lengths, ep_means)

    def state_dict(self) -> dict[str, Any]:
        return {
            "num_steps": self.num_steps, "iteration": self.iteration, "updates": self.updates,
            **{name: getattr(self, name).state_dict() for name in self.checkpointed},
            "obs_rms": self.obs_rms.state_dict(), "replay": self.buffer.state_dict(),
            "torch_rng": self.gen.get_state(), "numpy_rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.num_steps, self.iteration = int(state["num_steps"]), int(state["iteration"])
        self.updates = int(state["updates"])
        for name in self.checkpointed:
            getattr(self, name).load_state_dict(state[name])
        self.refresh_views()
        self.obs_rms.load_state_dict(state["obs_rms"])
        self.buffer.load_state_dict(state["replay"])
        self.gen.set_state(state["torch_rng"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self._obs = None  # envs restart from fresh episodes; the replay buffer keeps what was learned from

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        self.envs.close()


class DeterministicActorAlgorithm(OffPolicyAlgorithm):
    """DDPG and TD3: a deterministic actor mu(s) ending in tanh, explored with action or parameter noise and
    trained up dQ/da of a critic; target copies of both. Subclasses build the critic(s) in `make_critic` and
    write `update()`, calling `actor_step`."""

    checkpointed = ("actor", "critic", "actor_target", "critic_target", "actor_opt", "critic_opt", "noise")

    def __init__(self, config: NoiseConfig, spec: TaskSpec, envs: Any, *, seed: int, total_steps: int,
                 device: str = "cpu"):
        super().__init__(config, spec, envs, seed=seed, total_steps=total_steps, device=device)
        cfg = config
        self.actor = DeterministicActor(spec.obs_dim, spec.act_dim, cfg.hidden_sizes, cfg.activation, cfg.layer_norm,
                                        generator=self.gen).to(self.device)
        self.critic, self.critic_opt, actor_q = self.make_critic()
        self.actor_target, self.critic_target = self.targets(self.actor, self.critic)
        self.actor_opt = Adam(self.actor.parameters(), lr=cfg.actor_learning_rate)
        self.actor_q = self.view(actor_q)
        self.noise = self.make_noise(self.actor)

    def make_critic(self) -> tuple[nn.Module, Any, nn.Module]:
        """(the critic module, its optimiser, the Q(s, a) module whose dQ/da the actor climbs)."""
        raise NotImplementedError

    def actor_step(self, obs: torch.Tensor) -> torch.Tensor:
        """One Adam step of the actor up dQ/da of the critic view (no gradient for the critic's own weights);
        the caller brings the view up to date first (`refresh_views`)."""
        loss = -self.actor_q(obs, self.actor(obs)).mean()
        self.actor_opt.zero_grad()
        loss.backward()
        self.actor_opt.step()
        return loss.detach()

    def policy_record(self) -> dict[str, Any]:
        return self.record(self.actor.mu, layer_norm=bool(self.config.layer_norm))
