"""Deep Deterministic Policy Gradient (Lillicrap et al. 2015, arXiv:1509.02971), Algorithm 1.

Deterministic actor mu(s), critic Q(s, a), and slowly-tracking target copies mu', Q'. On a minibatch
of N transitions from the replay buffer, after every environment step:

    y_i      = r_i + gamma * (1 - terminated_i) * Q'(s'_i, mu'(s'_i))
    critic:  minimise  1/N sum_i (y_i - Q(s_i, a_i))^2
    actor:   ascend    1/N sum_i Q(s_i, mu(s_i))          (the deterministic policy gradient)
    targets: theta' <- tau theta + (1 - tau) theta'

Exploration (`noise`): Ornstein-Uhlenbeck or Gaussian noise added to mu(s), or adaptive parameter-space
noise (Plappert et al. 2018); replay, exploration, the acting loop and the second core are the off-policy
core's (`robotrl.algorithms.offpolicy`).

Deviations from the paper: 256x256 ReLU networks with orthogonal initialisation (paper: 400x300 with
fan-in uniform), layer normalisation in the actor with parameter noise (paper: batch normalisation;
by default none otherwise), the action enters the critic at the input (paper: at the second
layer), no L2 weight decay on the critic, one Adam step per environment step with lr 1e-3 for both
networks, tau 0.005 (paper 0.001), a uniform-random warm-up of `learning_starts` steps, and
time-limit truncations bootstrapped (only termination ends the return).

The actor's gradient is taken through the critic as it was before the same step's critic update
(`actor_update="concurrent"`, the order of OpenAI Baselines' DDPG; the paper's Algorithm 1 does not
say), so the actor step runs in a second thread while the critic step runs in the first: on a two-core
CPU one 256x256 update takes about 60 % of the time of the sequential one (bench/offpolicy_update.py), with
the same results as without the thread. `actor_update="sequential"` gives the SB3/TD3 order (actor
through the updated critic) on one core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from robotrl.algorithms.offpolicy import NoiseConfig, OffPolicyAlgorithm, regress
from robotrl.optim import Adam
from robotrl.policies import DeterministicActor, QCritic
from robotrl.spec import TaskSpec


@dataclass
class DDPGConfig(NoiseConfig):
    """DDPG hyper-parameters. Defaults follow Spinning Up / Tianshou's MuJoCo settings."""


class DDPG(OffPolicyAlgorithm):
    name = "ddpg"
    Config = DDPGConfig
    checkpointed = ("actor", "critic", "actor_target", "critic_target", "actor_opt", "critic_opt", "noise")

    def __init__(self, config: DDPGConfig, spec: TaskSpec, envs: Any, *, seed: int, total_steps: int,
                 device: str = "cpu"):
        super().__init__(config, spec, envs, seed=seed, total_steps=total_steps, device=device)
        cfg, obs_dim, act_dim = config, spec.obs_dim, spec.act_dim
        self.actor = DeterministicActor(obs_dim, act_dim, cfg.hidden_sizes, cfg.activation, cfg.layer_norm,
                                        generator=self.gen).to(self.device)
        self.critic = QCritic(obs_dim, act_dim, cfg.hidden_sizes, cfg.activation, generator=self.gen).to(self.device)
        self.actor_target, self.critic_target = self.targets(self.actor, self.critic)
        self.actor_opt = Adam(self.actor.parameters(), lr=cfg.actor_learning_rate)
        self.critic_opt = Adam(self.critic.parameters(), lr=cfg.critic_learning_rate)
        self.critic_view = self.view(self.critic)
        self.noise = self.make_noise(self.actor)

    def update(self) -> dict[str, torch.Tensor]:
        b = self.sample()

        def critic_step() -> tuple[torch.Tensor, torch.Tensor]:
            with torch.no_grad():
                y = b.rewards + self.config.gamma * (1.0 - b.terminated) * self.critic_target(
                    b.next_obs, self.actor_target(b.next_obs))
            return regress(self.critic, self.critic_opt, b.obs, b.actions, y)

        if self.config.actor_update == "sequential":
            critic_loss, q = critic_step()
            self.refresh_views()
            actor_loss = self._actor_step(b.obs)
        else:  # the actor through the critic before this step's critic update, in the second thread
            self.refresh_views()
            actor_loss, (critic_loss, q) = self.beside(lambda: self._actor_step(b.obs), critic_step)
        self.polyak()
        self.updates += 1
        return {"critic_loss": critic_loss, "actor_loss": actor_loss, "q_mean": q.mean()}

    def _actor_step(self, obs: torch.Tensor) -> torch.Tensor:
        """One Adam step up dQ/da of the critic view (no gradient for the critic's own weights)."""
        loss = -self.critic_view(obs, self.actor(obs)).mean()
        self.actor_opt.zero_grad()
        loss.backward()
        self.actor_opt.step()
        return loss.detach()

    def policy_record(self) -> dict[str, Any]:
        return self.record(self.actor.mu, layer_norm=bool(self.config.layer_norm))
