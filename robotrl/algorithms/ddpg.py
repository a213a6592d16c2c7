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

import torch

from robotrl.algorithms.offpolicy import DeterministicActorAlgorithm, NoiseConfig, regress
from robotrl.algorithms.optim import Adam
from robotrl.policies import QCritic


@dataclass
class DDPGConfig(NoiseConfig):
    """DDPG hyper-parameters. Defaults follow Spinning Up / Tianshou's MuJoCo settings."""


class DDPG(DeterministicActorAlgorithm):
    name = "ddpg"
    Config = DDPGConfig

    def make_critic(self) -> tuple[QCritic, Adam, QCritic]:
        cfg, spec = self.config, self.spec
        critic = QCritic(spec.obs_dim, spec.act_dim, cfg.hidden_sizes, cfg.activation, generator=self.gen)
        critic = critic.to(self.device)
        return critic, Adam(critic.parameters(), lr=cfg.critic_learning_rate), critic

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
            actor_loss = self.actor_step(b.obs)
        else:  # the actor through the critic before this step's critic update, in the second thread
            self.refresh_views()
            actor_loss, (critic_loss, q) = self.beside(lambda: self.actor_step(b.obs), critic_step)
        self.polyak()
        self.updates += 1
        return {"critic_loss": critic_loss, "actor_loss": actor_loss, "q_mean": q.mean()}
