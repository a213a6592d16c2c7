"""Soft Actor-Critic with automatic temperature (Haarnoja et al. 2018, arXiv:1812.05905, Algorithm 1).

A stochastic actor pi(a|s): u ~ N(mu(s), sigma(s)^2), a = tanh(u), trained to maximise return plus
alpha times its entropy; two critics with target copies (no target actor); alpha tuned so that the
policy's entropy stays near a target H~. On a minibatch, with a~ ~ pi(.|s) and a~' ~ pi(.|s') drawn
with the reparameterisation a = tanh(mu + sigma * eps):

    log pi(a|s) = log N(u; mu, sigma^2) - sum_i log(1 - tanh(u_i)^2)     (the tanh correction, appendix C)
    y       = r + gamma (1 - terminated) (min_{j=1,2} Q'_j(s', a~') - alpha log pi(a~'|s'))
    critics: minimise  E[(Q_j(s, a) - y)^2]                   for j = 1, 2
    actor:   minimise  E[alpha log pi(a~|s) - min_j Q_j(s, a~)]
    alpha:   minimise  E[-alpha (log pi(a~|s) + H~)]           (H~ = -|A| by default; skipped with --alpha)
    targets: theta'_j <- tau theta_j + (1 - tau) theta'_j      (every update)

The exported, deterministic actor is tanh(mu(s)), scaled to robot units like every other actor.
Replay and the acting loop are the off-policy core's (`robotrl.algorithms.offpolicy`); before
`learning_starts` actions are uniform, then sampled from pi.

Deviations from the paper: alpha is parameterised as exp(log alpha) (as in the authors' softlearning
code), orthogonal initialisation, log sigma clamped to [-20, 2], time-limit truncations bootstrapped, a
uniform-random warm-up. With `actor_update="concurrent"` (default) the actor and alpha steps take the
critics as they were before this update's critic step and run in a second thread beside the TD
target (computed from a frozen copy of the actor as it was before its step, which is what the target
sees in the paper's order too), then Q_1's regression runs beside Q_2's; `"sequential"` steps the
actor after the critics, the paper's order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from robotrl.algorithms.functional import gaussian_log_prob
from robotrl.algorithms.offpolicy import OffPolicyAlgorithm, OffPolicyConfig, TwinAdam, regress
from robotrl.algorithms.optim import Adam
from robotrl.config import check_range
from robotrl.errors import UserError
from robotrl.policies import SquashedGaussianActor, TwinQCritic
from robotrl.spec import TaskSpec

LOG_2 = math.log(2.0)


@dataclass
class SACConfig(OffPolicyConfig):
    """SAC hyper-parameters. Defaults follow the paper's table 1 (256x256, Adam 3e-4, batch 256, tau 0.005)."""

    actor_learning_rate: float = 3e-4
    """Adam step size of the actor."""
    critic_learning_rate: float = 3e-4
    """Adam step size of each critic."""
    alpha: float | None = None
    """Fixed entropy temperature alpha (e.g. 0.2); none (default): alpha is tuned automatically toward
    target_entropy."""
    alpha_init: float = 1.0
    """Initial alpha when it is tuned automatically."""
    alpha_learning_rate: float = 3e-4
    """Adam step size of log alpha when it is tuned automatically."""
    target_entropy: float | None = None
    """H~: the policy entropy (nats, of the tanh-squashed actions) the tuned alpha steers toward; none: -act_dim,
    the paper's -|A|."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "alpha", ge=0, le=1e6)
        check_range(self, "alpha_init", gt=0, le=1e6)
        check_range(self, "alpha_learning_rate", gt=0, le=10)
        check_range(self, "target_entropy", ge=-1e6, le=1e6)

    def check_spec(self, spec: TaskSpec) -> None:
        """Settings that depend on the task: a target entropy must be one a squashed action can have (at most
        ln 2 nats per dimension, the uniform distribution on [-1, 1]); above it alpha could only grow."""
        top = spec.act_dim * math.log(2.0)
        if self.target_entropy is not None and self.target_entropy >= top:
            raise UserError(f"target_entropy {self.target_entropy:g} is out of reach: {spec.act_dim} action "
                            f"dimension(s) squashed to [-1, 1] have at most {spec.act_dim} x ln 2 = {top:.3f} nats "
                            f"(default: -{spec.act_dim}, the paper's -|A|)")


def squashed_gaussian_log_prob(u: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log pi(a) of a = tanh(u), u ~ N(mean, diag(exp(log_std))^2); all ``[B, A]`` -> ``[B]``.

    ``log N(u; mean, std) - sum_i log(1 - tanh(u_i)^2)``, the second term written as
    ``2 (log 2 - u - softplus(-2 u))``, which stays finite where tanh(u) rounds to +-1."""
    correction = 2.0 * (LOG_2 - u - nn.functional.softplus(-2.0 * u))
    return gaussian_log_prob(u, mean, log_std) - correction.sum(-1)


def sample_action(actor: SquashedGaussianActor, obs: torch.Tensor, eps: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """a = tanh(mu(s) + sigma(s) eps) and log pi(a|s), reparameterised (differentiable in the actor)."""
    mean, log_std = actor(obs)
    u = mean + log_std.exp() * eps
    return torch.tanh(u), squashed_gaussian_log_prob(u, mean, log_std)


class Temperature(nn.Module):
    """alpha = exp(log_alpha), a module so that it checkpoints like the networks."""

    def __init__(self, alpha: float, learn: bool):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.tensor(math.log(alpha)) if alpha > 0 else torch.tensor(-math.inf),
                                      requires_grad=learn)

    def forward(self) -> torch.Tensor:
        return self.log_alpha.exp()


class SAC(OffPolicyAlgorithm):
    name = "sac"
    Config = SACConfig
    checkpointed = ("actor", "critic", "critic_target", "temperature", "actor_opt", "critic_opt", "alpha_opt")

    def __init__(self, config: SACConfig, spec: TaskSpec, envs: Any, *, seed: int, total_steps: int,
                 device: str = "cpu"):
        super().__init__(config, spec, envs, seed=seed, total_steps=total_steps, device=device)
        cfg, obs_dim, act_dim = config, spec.obs_dim, spec.act_dim
        self.actor = SquashedGaussianActor(obs_dim, act_dim, cfg.hidden_sizes, cfg.activation,
                                           generator=self.gen).to(self.device)
        self.critic = TwinQCritic(obs_dim, act_dim, cfg.hidden_sizes, cfg.activation,
                                  generator=self.gen).to(self.device)
        (self.critic_target,) = self.targets(self.critic)
        self.auto_alpha = cfg.alpha is None
        self.target_entropy = float(-act_dim if cfg.target_entropy is None else cfg.target_entropy)
        self.temperature = Temperature(cfg.alpha_init if cfg.alpha is None else cfg.alpha,
                                       learn=self.auto_alpha).to(self.device)
        self.actor_opt = Adam(self.actor.parameters(), lr=cfg.actor_learning_rate)
        self.critic_opt = TwinAdam(self.critic, lr=cfg.critic_learning_rate)
        self.alpha_opt = Adam([self.temperature.log_alpha], lr=cfg.alpha_learning_rate)
        self.critic_view = self.view(self.critic)
        self.actor_view = self.view(self.actor)

    @torch.no_grad()
    def explore(self, obs: torch.Tensor) -> np.ndarray:
        eps = torch.randn((obs.shape[0], self.spec.act_dim), generator=self.gen).to(self.device)
        return sample_action(self.actor, obs, eps)[0].cpu().numpy().astype(np.float32)

    def update(self) -> dict[str, torch.Tensor]:
        cfg = self.config
        b = self.sample()
        eps = torch.randn((2, *b.actions.shape), generator=self.gen).to(self.device)  # for a~' and a~
        alpha = self.temperature().detach()
        concurrent = cfg.actor_update == "concurrent"

        @torch.no_grad()
        def target(actor: SquashedGaussianActor) -> torch.Tensor:
            a_next, logp_next = sample_action(actor, b.next_obs, eps[0])
            soft_q = self.critic_target(b.next_obs, a_next).min(0).values - alpha * logp_next
            return b.rewards + cfg.gamma * (1.0 - b.terminated) * soft_q

        if concurrent:  # 1. actor and alpha steps (through the critics before this update) beside the TD target
            self.refresh_views()
            actor_stats, y = self.beside(lambda: self._actor_step(b.obs, eps[1], alpha),
                                         lambda: target(self.actor_view))
        else:
            y = target(self.actor)
        # 2. the two critics' regressions side by side
        (loss2, _), (loss1, q1) = self.beside(lambda: regress(self.critic.q2, self.critic_opt.q2, b.obs, b.actions, y),
                                              lambda: regress(self.critic.q1, self.critic_opt.q1, b.obs, b.actions, y))
        if not concurrent:  # the paper's order: the actor through the updated critics
            self.refresh_views()
            actor_stats = self._actor_step(b.obs, eps[1], alpha)
        self.polyak()
        self.updates += 1
        return {"critic_loss": (loss1 + loss2) / 2, **actor_stats, "q_mean": q1.mean()}

    def _actor_step(self, obs: torch.Tensor, eps: torch.Tensor, alpha: torch.Tensor) -> dict[str, torch.Tensor]:
        """One Adam step of the actor through the critic view, then (automatic temperature) one of log alpha."""
        a, logp = sample_action(self.actor, obs, eps)
        loss = (alpha * logp - self.critic_view(obs, a).min(0).values).mean()
        self.actor_opt.zero_grad()
        loss.backward()
        self.actor_opt.step()
        logp = logp.detach()
        out = {"actor_loss": loss.detach(), "entropy": -logp.mean()}
        if self.auto_alpha:
            alpha_loss = -(self.temperature() * (logp + self.target_entropy)).mean()
            self.alpha_opt.zero_grad()
            alpha_loss.backward()
            self.alpha_opt.step()
            out["alpha_loss"] = alpha_loss.detach()
        return out

    def iteration_metrics(self) -> dict[str, float]:
        return {"train/alpha": float(self.temperature().detach()), "train/target_entropy": self.target_entropy}

    def policy_record(self) -> dict[str, Any]:
        return self.record(self.actor.mu, layer_norm=False)
