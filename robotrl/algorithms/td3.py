"""Twin Delayed Deep Deterministic policy gradient, TD3 (Fujimoto et al. 2018, arXiv:1802.09477), Algorithm 1.

DDPG with three changes against the overestimation of Q: two critics Q_1, Q_2 and a pessimistic
target from the smaller of their target copies (clipped double-Q), a target action smoothed with
clipped noise, and an actor (and targets) updated only every `policy_delay` critic updates:

    a~_i     = clip(mu'(s'_i) + clip(eps_i, -c, c), -1, 1),    eps_i ~ N(0, sigma~^2)   (target policy smoothing)
    y_i      = r_i + gamma * (1 - terminated_i) * min_{j=1,2} Q'_j(s'_i, a~_i)        (clipped double-Q)
    critics: minimise  1/N sum_i (y_i - Q_j(s_i, a_i))^2     for j = 1, 2, every update
    every d-th update:
      actor:   ascend  1/N sum_i Q_1(s_i, mu(s_i))
      targets: theta' <- tau theta + (1 - tau) theta'       (mu', Q'_1, Q'_2)

Actions are in normalised units ([-1, 1] over each joint's range), so sigma~ = 0.2 and c = 0.5 are the
paper's values for a unit action bound. Exploration, replay and the acting loop are DDPG's
(`robotrl.algorithms.offpolicy`): `--noise gaussian` (default, sigma 0.1 as in the paper), `ou` or
`param`.

Deviations from the paper: 256x256 networks, Adam lr 3e-4 and batch 256 (the authors' current code;
the paper: 400x300, 1e-3, 100), orthogonal initialisation, the action entering the critic at the
input, time-limit truncations bootstrapped. With `actor_update="concurrent"` (default) the actor's
gradient is taken through Q_1 as it was before this update's critic step, and the update runs on two
cores in two phases: the TD target in this thread beside the (delayed) actor step in the second, then
Q_1's regression beside Q_2's; `"sequential"` steps the actor after the critics, the paper's order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from robotrl.algorithms.offpolicy import DeterministicActorAlgorithm, NoiseConfig, TwinAdam, regress
from robotrl.config import check_range
from robotrl.policies import TwinQCritic


@dataclass
class TD3Config(NoiseConfig):
    """TD3 hyper-parameters. Defaults follow the authors' code (github.com/sfujim/TD3); per-task warm-ups follow
    the paper's experiment script (`robotrl.algorithms.registry`)."""

    actor_learning_rate: float = 3e-4
    """Adam step size of the actor."""
    critic_learning_rate: float = 3e-4
    """Adam step size of each critic."""
    noise: Literal["ou", "gaussian", "param"] = "gaussian"
    """Exploration: Gaussian action noise (the paper's), Ornstein-Uhlenbeck action noise, or adaptive parameter
    noise."""
    policy_delay: int = 2
    """d: the actor and the target networks are updated once every d critic updates."""
    target_noise: float = 0.2
    """sigma~: standard deviation of the target policy smoothing noise (normalised action units)."""
    target_noise_clip: float = 0.5
    """c: the smoothing noise is clipped to +-c (normalised action units)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "policy_delay", ge=1, le=1000)
        check_range(self, "target_noise", ge=0, le=10)
        check_range(self, "target_noise_clip", ge=0, le=10)


def td3_target(rewards: torch.Tensor, terminated: torch.Tensor, next_action: torch.Tensor, noise: torch.Tensor,
               q_target: Any, next_obs: torch.Tensor, gamma: float, noise_clip: float) -> torch.Tensor:
    """y = r + gamma (1 - terminated) min_j Q'_j(s', clip(mu'(s') + clip(eps, -c, c), -1, 1)).

    `next_action` is mu'(s') ``[B, A]``, `noise` eps ``[B, A]`` (already scaled by sigma~), `q_target(s', a)`
    returns both target critics ``[2, B]``; rewards, terminated ``[B]``."""
    a = (next_action + noise.clamp(-noise_clip, noise_clip)).clamp(-1.0, 1.0)
    return rewards + gamma * (1.0 - terminated) * q_target(next_obs, a).min(0).values


class TD3(DeterministicActorAlgorithm):
    name = "td3"
    Config = TD3Config

    def make_critic(self) -> tuple[TwinQCritic, TwinAdam, torch.nn.Module]:
        cfg, spec = self.config, self.spec
        critic = TwinQCritic(spec.obs_dim, spec.act_dim, cfg.hidden_sizes, cfg.activation, generator=self.gen)
        critic = critic.to(self.device)
        return critic, TwinAdam(critic, lr=cfg.critic_learning_rate), critic.q1  # the actor climbs Q_1

    def update(self) -> dict[str, torch.Tensor]:
        cfg = self.config
        b = self.sample()
        delayed = (self.updates + 1) % cfg.policy_delay == 0
        eps = cfg.target_noise * torch.randn(b.actions.shape, generator=self.gen).to(self.device)
        concurrent = delayed and cfg.actor_update == "concurrent"

        @torch.no_grad()
        def target() -> torch.Tensor:
            return td3_target(b.rewards, b.terminated, self.actor_target(b.next_obs), eps, self.critic_target,
                              b.next_obs, cfg.gamma, cfg.target_noise_clip)

        out: dict[str, torch.Tensor] = {}
        if concurrent:  # 1. the actor step (through Q_1 before this update) beside the TD target
            self.refresh_views()
            out["actor_loss"], y = self.beside(lambda: self.actor_step(b.obs), target)
        else:
            y = target()
        # 2. the two critics' regressions side by side
        (loss2, _), (loss1, q1) = self.beside(lambda: regress(self.critic.q2, self.critic_opt.q2, b.obs, b.actions, y),
                                              lambda: regress(self.critic.q1, self.critic_opt.q1, b.obs, b.actions, y))
        if delayed and not concurrent:  # the paper's order: the actor through the updated Q_1
            self.refresh_views()
            out["actor_loss"] = self.actor_step(b.obs)
        if delayed:
            self.polyak()
        self.updates += 1
        return {"critic_loss": (loss1 + loss2) / 2, **out, "q_mean": q1.mean()}
