"""Proximal Policy Optimization (Schulman et al. 2017, arXiv:1707.06347).

Each iteration collects ``num_envs x rollout_steps`` transitions with pi_old, computes GAE
advantages A_t, then runs ``update_epochs`` passes of minibatch Adam over one of the paper's two
surrogate objectives, with r_t(theta) = pi_theta(a_t|s_t) / pi_old(a_t|s_t):

    clip (sec. 3):        L^CLIP = E_t[ min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t) ]
    kl_penalty (sec. 4):  L^KLPEN = E_t[ r_t A_t - beta KL[pi_old(.|s_t), pi_theta(.|s_t)] ]
                          after each update, with d = E_t[KL]:
                          d < d_targ / 1.5 -> beta /= 2;   d > d_targ * 1.5 -> beta *= 2

maximised together with the value loss and entropy bonus of the paper's eq. 9:
``L = L^policy - c1 (V(s_t) - V_t^targ)^2 + c2 S[pi_theta](s_t)``.

Deviations from the paper, all standard for MuJoCo (Andrychowicz et al. 2021; Huang et al. 2022,
"The 37 implementation details of PPO"):
- separate actor and critic networks (no shared trunk), one Adam over both; the value target is
  the GAE return A_t + V_old(s_t);
- state-independent log-std; observation normalisation; reward scaling by the running std of the
  discounted return; per-minibatch advantage standardisation; orthogonal initialisation with a
  0.01-gain last policy layer; global gradient-norm clipping; linear learning-rate annealing;
- optional: re-computing advantages with the current critic before every epoch
  (``recompute_advantage``), early stop of an update when the approximate KL passes ``target_kl``, and a
  learning rate adapted after every minibatch to keep the analytic KL between the rollout's policy and the updated
  one near ``desired_kl`` (``adaptive_lr``: divided by 1.5 above twice it, multiplied by 1.5 below half of it, within
  [1e-5, 1e-2], as rsl_rl does for legged robots; it replaces ``anneal_lr``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from robotrl.algorithms.functional import explained_variance, gaussian_entropy, gaussian_kl, gaussian_log_prob
from robotrl.algorithms.onpolicy import OnPolicyAlgorithm, OnPolicyConfig
from robotrl.algorithms.optim import Adam, clip_grad_norm_
from robotrl.config import check_range


def clipped_surrogate(ratio: torch.Tensor, advantage: torch.Tensor, clip_coef: float) -> torch.Tensor:
    """L^CLIP per sample: min(r A, clip(r, 1 - eps, 1 + eps) A). Outside the clip range, on the side the
    advantage favours, it is constant in r (no gradient): the update gains nothing by moving further."""
    return torch.min(ratio * advantage, ratio.clamp(1 - clip_coef, 1 + clip_coef) * advantage)


def adapt_kl_beta(beta: float, kl: float, kl_target: float) -> float:
    """The paper's rule (sec. 4): halve beta when the update's KL was below d_targ / 1.5, double it above
    d_targ * 1.5, keep it in between."""
    if kl < kl_target / 1.5:
        return beta / 2
    if kl > kl_target * 1.5:
        return beta * 2
    return beta


@dataclass
class PPOConfig(OnPolicyConfig):
    """PPO hyper-parameters. Defaults suit MuJoCo locomotion; per-task overrides live in `registry.py`."""

    learning_rate: float = 3e-4
    """Adam step size for actor and critic (annealed linearly to 0 if anneal_lr). Typical 1e-4 to 1e-3."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over the run's total steps."""
    update_epochs: int = 10
    """Passes over each batch. Typical 3-20."""
    minibatch_size: int = 64
    """Samples per gradient step; must divide num_envs * rollout_steps. Typical 64-4096."""
    objective: Literal["clip", "kl_penalty"] = "clip"
    """Surrogate objective: the clipped ratio (sec. 3 of the paper) or the adaptive KL penalty (sec. 4)."""
    clip_coef: float = 0.2
    """epsilon of the clipped objective: the ratio is clipped to [1 - eps, 1 + eps]. Typical 0.1-0.3."""
    kl_target: float = 0.01
    """d_targ of the KL-penalty objective: the KL per update that beta is adapted toward."""
    kl_beta_init: float = 1.0
    """Initial beta of the KL-penalty objective."""
    vf_coef: float = 0.5
    """c1: weight of the value loss 0.5 * (V - V_targ)^2."""
    ent_coef: float = 0.0
    """c2: weight of the entropy bonus (0 is best on MuJoCo locomotion)."""
    max_grad_norm: float = 0.5
    """Clip the global gradient norm of actor + critic to this value."""
    target_kl: float | None = None
    """Stop an update's remaining epochs once the approximate KL exceeds this (none: never)."""
    recompute_advantage: bool = False
    """Recompute values and GAE with the current critic before every epoch."""
    adam_eps: float = 1e-5
    """epsilon of Adam."""
    adaptive_lr: bool = False
    """Adapt the learning rate after every minibatch to keep the KL of the update near desired_kl (replaces
    anneal_lr; learning_rate is where it starts)."""
    desired_kl: float = 0.01
    """The KL per minibatch step that adaptive_lr steers toward."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "minibatch_size", ge=2 if self.normalize_advantage else 1)  # std of one sample: NaN
        self.check_divides_batch("minibatch_size")
        if self.update_epochs < 1:
            raise ValueError(f"update_epochs must be >= 1, got {self.update_epochs}")
        if not 0 < self.clip_coef < 1:
            raise ValueError(f"clip_coef must be in (0, 1), got {self.clip_coef}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        check_range(self, "update_epochs", le=10_000)
        check_range(self, "learning_rate", le=10)
        check_range(self, "kl_target", gt=0)
        check_range(self, "kl_beta_init", ge=0)
        check_range(self, "vf_coef", ge=0)
        check_range(self, "ent_coef", ge=0)
        check_range(self, "max_grad_norm", gt=0)
        check_range(self, "target_kl", gt=0)
        check_range(self, "adam_eps", gt=0, lt=1)
        check_range(self, "desired_kl", gt=0, le=10)


class PPO(OnPolicyAlgorithm):
    name = "ppo"
    Config = PPOConfig

    def __init__(self, config: PPOConfig, spec: Any, envs: Any, *, seed: int, total_steps: int,
                 device: str = "cpu"):
        super().__init__(config, spec, envs, seed=seed, total_steps=total_steps, device=device)
        self.params = [*self.actor.parameters(), *self.critic.parameters()]
        self.optimizer = Adam(self.params, lr=config.learning_rate, eps=config.adam_eps)
        self.kl_beta = config.kl_beta_init
        self.lr = config.learning_rate  # adaptive_lr's current rate

    ADAPTIVE_LR_RANGE = (1e-5, 1e-2)

    def adapt_lr(self, kl: float) -> None:
        """adaptive_lr's rule after a minibatch step whose policy moved by `kl` from the rollout's."""
        lo, hi = self.ADAPTIVE_LR_RANGE
        if kl > 2.0 * self.config.desired_kl:
            self.lr = max(lo, self.lr / 1.5)
        elif 0.0 < kl < 0.5 * self.config.desired_kl:
            self.lr = min(hi, self.lr * 1.5)
        self.optimizer.lr = self.lr

    def update(self) -> dict[str, float]:
        cfg, buf = self.config, self.buffer
        if cfg.adaptive_lr:
            lr = self.lr
        elif cfg.anneal_lr:
            lr = cfg.learning_rate * max(0.0, 1.0 - self.num_steps / self.total_steps)
        else:
            lr = cfg.learning_rate
        self.optimizer.lr = lr
        dev = self.device
        obs, actions = buf.flat("obs").to(dev), buf.flat("actions").to(dev)
        old_logp = buf.flat("log_probs").to(dev)
        old_log_std = self.actor.log_std.detach().clone()
        if cfg.objective == "kl_penalty" or cfg.adaptive_lr:
            with torch.no_grad():
                old_mean = self.actor(obs)
        B, mb = cfg.batch_size, cfg.minibatch_size
        stats: dict[str, list[torch.Tensor]] = {k: [] for k in ("policy_loss", "value_loss", "entropy",
                                                                "approx_kl", "clip_fraction")}
        epochs_done = 0
        n_mb = B // mb
        for epoch in range(cfg.update_epochs):
            if epoch > 0 and cfg.recompute_advantage:
                self.compute_advantages()
            advantages, returns = buf.flat("advantages").to(dev), buf.flat("returns").to(dev)
            # One gather per tensor and epoch; the minibatches are then contiguous views.
            perm = torch.randperm(B, generator=self.gen).to(dev)
            p_obs, p_act, p_logp, p_ret = obs[perm], actions[perm], old_logp[perm], returns[perm]
            p_adv = advantages[perm].view(n_mb, mb)
            if cfg.normalize_advantage:  # per minibatch, all minibatches at once
                p_adv = (p_adv - p_adv.mean(1, keepdim=True)) / (p_adv.std(1, keepdim=True) + 1e-8)
            p_old_mean = old_mean[perm] if cfg.objective == "kl_penalty" or cfg.adaptive_lr else None
            ratios, log_ratios = [], []
            for i in range(n_mb):
                sl = slice(i * mb, (i + 1) * mb)
                o, adv = p_obs[sl], p_adv[i]
                mean, log_std = self.actor(o), self.actor.log_std
                logp = gaussian_log_prob(p_act[sl], mean, log_std)
                log_ratio = logp - p_logp[sl]
                ratio = log_ratio.exp()
                if cfg.objective == "clip":
                    surrogate = clipped_surrogate(ratio, adv, cfg.clip_coef)
                else:
                    kl = gaussian_kl(p_old_mean[sl], old_log_std, mean, log_std)
                    surrogate = ratio * adv - self.kl_beta * kl
                policy_loss = -surrogate.mean()
                value_loss = 0.5 * (self.critic(o) - p_ret[sl]).pow(2).mean()
                entropy = gaussian_entropy(log_std)
                loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy

                self.optimizer.zero_grad()
                loss.backward()
                clip_grad_norm_(self.params, cfg.max_grad_norm)
                self.optimizer.step()
                if cfg.adaptive_lr:  # the KL of this minibatch's policy before its step, as rsl_rl measures it
                    self.adapt_lr(float(gaussian_kl(p_old_mean[sl], old_log_std, mean.detach(),
                                                    log_std.detach()).mean()))

                ratios.append(ratio.detach())
                log_ratios.append(log_ratio.detach())
                stats["policy_loss"].append(policy_loss.detach())
                stats["value_loss"].append(value_loss.detach())
            with torch.no_grad():  # statistics of the epoch in a few batched ops
                ratio, log_ratio = torch.stack(ratios), torch.stack(log_ratios)
                # KL(pi_old || pi) estimate of Schulman's blog "k3": E[(r - 1) - log r], per minibatch
                approx_kl = ((ratio - 1) - log_ratio).mean(1)
                stats["approx_kl"].append(approx_kl)
                stats["clip_fraction"].append(((ratio - 1).abs() > cfg.clip_coef).float().mean(1))
                stats["entropy"].append(gaussian_entropy(self.actor.log_std).detach().expand(n_mb))
            epochs_done += 1
            if cfg.target_kl is not None and float(approx_kl.mean()) > cfg.target_kl:
                break
            if self.should_stop():  # a stop signal: the epochs done so far are the update (as target_kl ends it)
                break

        metrics = {f"train/{k}": float(torch.cat([x.reshape(-1) for x in v]).mean()) for k, v in stats.items()}
        if cfg.objective == "kl_penalty":
            with torch.no_grad():
                d = float(gaussian_kl(old_mean, old_log_std, self.actor(obs), self.actor.log_std).mean())
            self.kl_beta = adapt_kl_beta(self.kl_beta, d, cfg.kl_target)
            metrics["train/kl"] = d
            metrics["train/kl_beta"] = self.kl_beta
        metrics["train/learning_rate"] = self.lr if cfg.adaptive_lr else lr
        metrics["train/epochs"] = epochs_done
        metrics["train/explained_variance"] = explained_variance(buf.values.ravel(), buf.returns.ravel())
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {**self._base_state(), "optimizer": self.optimizer.state_dict(), "kl_beta": self.kl_beta,
                "lr": self.lr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._load_base_state(state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.kl_beta = float(state["kl_beta"])
        self.lr = float(state.get("lr", self.config.learning_rate))

