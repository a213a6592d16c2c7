"""Trust Region Policy Optimization (Schulman et al. 2015, arXiv:1502.05477), practical algorithm of sec. 6.

Each iteration collects a batch with pi_old, computes GAE advantages A, then solves

    maximise_theta  L(theta) = E[ pi_theta(a|s) / pi_old(a|s) A ]
    subject to      KL_bar(theta) = E_s[ KL(pi_old(.|s) || pi_theta(.|s)) ] <= delta

approximately, in four steps:
  1. g = grad L at theta_old;
  2. s ~= F^{-1} g by conjugate gradient, where F v (the Fisher-vector product) is the Hessian of
     KL_bar at theta_old times v, computed as grad((grad KL_bar) . v) plus damping * v;
  3. full step beta s with beta = sqrt(2 delta / s^T F s), the largest step on which the quadratic
     model of the KL equals delta;
  4. backtracking line search: shrink the step until L improves and the exact KL_bar <= delta
     (keep theta_old if no shrink works).
The value function V(s) is fitted separately by Adam regression on the GAE returns.

Deviations from the paper (as in OpenAI Baselines / sb3-contrib): GAE(lambda) advantages instead of
single-path Monte-Carlo returns, standardised advantages, observation normalisation and reward
scaling, state-independent log-std (it is part of theta, so the trust region covers it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from robotrl.algorithms.functional import (
    backtracking_line_search,
    conjugate_gradient,
    explained_variance,
    flat_grad,
    flat_params,
    gaussian_entropy,
    gaussian_kl,
    gaussian_log_prob,
    set_flat_params,
)
from robotrl.algorithms.onpolicy import OnPolicyAlgorithm, OnPolicyConfig
from robotrl.algorithms.optim import Adam
from robotrl.config import check_range


@dataclass
class TRPOConfig(OnPolicyConfig):
    """TRPO hyper-parameters. Defaults suit MuJoCo locomotion; per-task overrides live in `registry.py`."""

    max_kl: float = 0.01
    """delta: the trust region, the largest mean KL(pi_old || pi_new) one update may make. Typical 0.005-0.05."""
    cg_iters: int = 15
    """Conjugate-gradient iterations for the natural-gradient direction."""
    cg_damping: float = 0.1
    """Added to the Fisher matrix's diagonal (F + damping I) for a well-conditioned solve."""
    line_search_steps: int = 10
    """Maximum backtracking steps."""
    line_search_shrink: float = 0.8
    """Factor by which each backtracking step shrinks the step."""
    fisher_subsample: float = 1.0
    """Fraction of the batch used for Fisher-vector products (0.1-1; smaller is faster and noisier)."""
    critic_learning_rate: float = 1e-3
    """Adam step size of the value network."""
    critic_epochs: int = 10
    """Passes of value regression over each batch."""
    critic_minibatch_size: int = 128
    """Samples per value-regression step; must divide num_envs * rollout_steps."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "critic_minibatch_size", ge=1)
        self.check_divides_batch("critic_minibatch_size")
        if self.max_kl <= 0:
            raise ValueError(f"max_kl must be > 0, got {self.max_kl}")
        if not 0 < self.fisher_subsample <= 1:
            raise ValueError(f"fisher_subsample must be in (0, 1], got {self.fisher_subsample}")
        if not 0 < self.line_search_shrink < 1:
            raise ValueError(f"line_search_shrink must be in (0, 1), got {self.line_search_shrink}")
        check_range(self, "max_kl", le=10)
        check_range(self, "cg_iters", ge=1, le=10_000)
        check_range(self, "cg_damping", ge=0)
        check_range(self, "line_search_steps", ge=1, le=1000)
        check_range(self, "critic_learning_rate", gt=0, le=10)
        check_range(self, "critic_epochs", ge=1, le=10_000)


class TRPO(OnPolicyAlgorithm):
    name = "trpo"
    Config = TRPOConfig

    def __init__(self, config: TRPOConfig, spec: Any, envs: Any, *, seed: int, total_steps: int,
                 device: str = "cpu"):
        super().__init__(config, spec, envs, seed=seed, total_steps=total_steps, device=device)
        self.critic_optimizer = Adam(self.critic.parameters(), lr=config.critic_learning_rate)

    def update(self) -> dict[str, float]:
        cfg, buf, dev = self.config, self.buffer, self.device
        obs, actions = buf.flat("obs").to(dev), buf.flat("actions").to(dev)
        old_logp, adv = buf.flat("log_probs").to(dev), buf.flat("advantages").to(dev)
        if cfg.normalize_advantage:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        params = list(self.actor.parameters())
        with torch.no_grad():
            old_mean = self.actor(obs)
            old_log_std = self.actor.log_std.detach().clone()
        n_fisher = max(1, round(cfg.fisher_subsample * cfg.batch_size))
        fisher_idx = torch.randperm(cfg.batch_size, generator=self.gen)[:n_fisher].to(dev)

        def surrogate() -> torch.Tensor:  # L(theta) = E[ pi_theta / pi_old * A ]
            logp = gaussian_log_prob(actions, self.actor(obs), self.actor.log_std)
            return (torch.exp(logp - old_logp) * adv).mean()

        def mean_kl(idx: torch.Tensor | None = None) -> torch.Tensor:  # KL_bar(theta)
            o = obs if idx is None else obs[idx]
            m = old_mean if idx is None else old_mean[idx]
            return gaussian_kl(m, old_log_std, self.actor(o), self.actor.log_std).mean()

        def fisher_vector_product(v: torch.Tensor) -> torch.Tensor:  # (F + damping I) v
            grad_kl = flat_grad(mean_kl(fisher_idx), params, create_graph=True)
            return flat_grad(grad_kl @ v, params) + cfg.cg_damping * v

        # 1-3: natural gradient direction and the step that fills the trust region
        loss_old = surrogate()
        g = flat_grad(loss_old, params)
        step_dir = conjugate_gradient(fisher_vector_product, g, cfg.cg_iters)
        sFs = float(step_dir @ fisher_vector_product(step_dir))
        full_step = math.sqrt(2 * cfg.max_kl / max(sFs, 1e-12)) * step_dir
        # 4: backtracking line search on the exact surrogate and KL
        theta_old = flat_params(params)
        loss_old_value = float(loss_old.detach())

        @torch.no_grad()
        def evaluate(step: torch.Tensor) -> tuple[float, float]:
            set_flat_params(params, theta_old + step)
            return float(surrogate()) - loss_old_value, float(mean_kl())

        step, backtracks = backtracking_line_search(evaluate, full_step, cfg.max_kl, cfg.line_search_steps,
                                                    cfg.line_search_shrink)
        set_flat_params(params, theta_old + step if step is not None else theta_old)
        with torch.no_grad():
            improvement, kl = float(surrogate()) - loss_old_value, float(mean_kl())

        # Value function: regression on the GAE returns
        returns = buf.flat("returns").to(dev)
        value_losses = []
        for _ in range(cfg.critic_epochs):
            perm = torch.randperm(cfg.batch_size, generator=self.gen).to(dev)
            for start in range(0, cfg.batch_size, cfg.critic_minibatch_size):
                idx = perm[start:start + cfg.critic_minibatch_size]
                value_loss = 0.5 * (self.critic(obs[idx]) - returns[idx]).pow(2).mean()
                self.critic_optimizer.zero_grad()
                value_loss.backward()
                self.critic_optimizer.step()
                value_losses.append(value_loss.detach())
            if self.should_stop():  # a stop signal: the critic epochs done so far are its update
                break

        return {
            "train/surrogate_improvement": improvement,
            "train/kl": kl,
            "train/step_accepted": float(step is not None),
            "train/backtracks": float(backtracks),
            "train/value_loss": float(torch.stack(value_losses).mean()),
            "train/entropy": float(gaussian_entropy(self.actor.log_std.detach())),
            "train/explained_variance": explained_variance(buf.values.ravel(), buf.returns.ravel()),
        }

    def state_dict(self) -> dict[str, Any]:
        return {**self._base_state(), "critic_optimizer": self.critic_optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._load_base_state(state)
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])

