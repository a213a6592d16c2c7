"""Exploration noise for deterministic policies, in normalised action units (actions in [-1, 1]).

Every process takes an injected `numpy.random.Generator`, works on a batch of `num_envs` envs, and
has `reset(indices)` to restart the envs whose episodes ended.

- `OrnsteinUhlenbeckNoise` (Uhlenbeck & Ornstein 1930; used by Lillicrap et al. 2015): the
  Euler-Maruyama discretisation ``x <- x + theta (mu - x) dt + sigma sqrt(dt) N(0, 1)``. Its stationary
  standard deviation is ``sigma sqrt(dt / (1 - (1 - theta dt)^2))`` (about ``sigma / sqrt(2 theta)``
  for small dt: 0.365 for theta 0.15, sigma 0.2, dt 0.01), and it forgets its state on a time scale
  of ``1 / (theta dt)`` steps.
- `GaussianNoise`: independent N(0, sigma^2) per step.
- `AdaptiveParamNoise` (Plappert et al. 2018, "Parameter Space Noise for Exploration"): the scale
  sigma of a Gaussian perturbation of the actor's weights, adapted multiplicatively so that the
  distance between perturbed and unperturbed actions, measured on replay states, tracks a desired
  action-space standard deviation. Applying the perturbation is the algorithm's job (`robotrl.ddpg`).

`sigma` of OU and Gaussian noise may decay linearly from `sigma` to `sigma_final` over `decay_steps`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def linear_schedule(start: float, end: float, steps: int, t: int) -> float:
    """`start` at t = 0, `end` from t = `steps` on, linear in between (`start` forever if steps <= 0)."""
    if steps <= 0:
        return start
    frac = min(max(t / steps, 0.0), 1.0)
    return start + frac * (end - start)


class OrnsteinUhlenbeckNoise:
    def __init__(self, num_envs: int, act_dim: int, rng: np.random.Generator, *, theta: float = 0.15,
                 sigma: float = 0.2, dt: float = 1e-2, mu: float = 0.0, sigma_final: float | None = None,
                 decay_steps: int = 0):
        self.rng, self.theta, self.dt, self.mu = rng, theta, dt, mu
        self.sigma0 = sigma
        self.sigma_final = sigma if sigma_final is None else sigma_final
        self.decay_steps = decay_steps
        self.sigma = sigma
        self.x = np.full((num_envs, act_dim), mu, dtype=np.float64)

    @property
    def stationary_std(self) -> float:
        a = 1.0 - self.theta * self.dt
        return self.sigma * math.sqrt(self.dt / (1.0 - a * a))

    def set_step(self, t: int) -> None:
        """Apply the linear sigma decay for global step `t`."""
        self.sigma = linear_schedule(self.sigma0, self.sigma_final, self.decay_steps, t)

    def reset(self, indices: Sequence[int] | np.ndarray | None = None) -> None:
        if indices is None:
            self.x[:] = self.mu
        else:
            self.x[np.asarray(indices)] = self.mu

    def __call__(self) -> np.ndarray:
        """Advance one step; returns the noise ``[num_envs, act_dim]``."""
        self.x += self.theta * (self.mu - self.x) * self.dt + \
            self.sigma * math.sqrt(self.dt) * self.rng.standard_normal(self.x.shape)
        return self.x.copy()

    def state_dict(self) -> dict:
        return {"x": self.x.tolist(), "sigma": self.sigma}

    def load_state_dict(self, state: dict) -> None:
        self.x[:] = np.asarray(state["x"])
        self.sigma = float(state["sigma"])


class GaussianNoise:
    def __init__(self, num_envs: int, act_dim: int, rng: np.random.Generator, *, sigma: float = 0.1,
                 sigma_final: float | None = None, decay_steps: int = 0):
        self.rng, self.shape = rng, (num_envs, act_dim)
        self.sigma0 = self.sigma = sigma
        self.sigma_final = sigma if sigma_final is None else sigma_final
        self.decay_steps = decay_steps

    stationary_std = property(lambda self: self.sigma)

    def set_step(self, t: int) -> None:
        self.sigma = linear_schedule(self.sigma0, self.sigma_final, self.decay_steps, t)

    def reset(self, indices: Sequence[int] | np.ndarray | None = None) -> None:
        """Nothing to forget: every step is independent."""

    def __call__(self) -> np.ndarray:
        return self.sigma * self.rng.standard_normal(self.shape)

    def state_dict(self) -> dict:
        return {"sigma": self.sigma}

    def load_state_dict(self, state: dict) -> None:
        self.sigma = float(state["sigma"])


class AdaptiveParamNoise:
    """Scale of a weight perturbation, adapted so that its effect in action space stays near a target.

    After each measurement of ``d = sqrt(mean((mu_perturbed(s) - mu(s))^2))`` over replay states:
    ``sigma <- sigma / alpha`` if ``d > desired_std`` else ``sigma <- sigma * alpha`` (Plappert et al.
    2018, sec. 3, with alpha = 1.01).
    """

    def __init__(self, *, initial_std: float = 0.1, desired_action_std: float = 0.2, alpha: float = 1.01):
        if alpha <= 1.0:
            raise ValueError(f"alpha must be > 1, got {alpha}")
        self.sigma = initial_std
        self.desired_action_std = desired_action_std
        self.alpha = alpha
        self.last_distance = float("nan")

    def adapt(self, distance: float) -> None:
        self.last_distance = float(distance)
        if distance > self.desired_action_std:
            self.sigma /= self.alpha
        else:
            self.sigma *= self.alpha

    def state_dict(self) -> dict:
        return {"sigma": self.sigma, "last_distance": self.last_distance}

    def load_state_dict(self, state: dict) -> None:
        self.sigma = float(state["sigma"])
        self.last_distance = float(state["last_distance"])
