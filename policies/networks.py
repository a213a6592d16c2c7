"""Actor and critic networks.

All networks are plain MLPs with orthogonal initialisation (gain sqrt(2) on hidden layers, a small
gain on the policy's last layer so that initial actions are near zero; Andrychowicz et al. 2021,
"What matters in on-policy RL", sec. 3.2) and zero biases. Initialisation draws from an explicit
`torch.Generator`, never from the global RNG.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


def mlp(sizes: Sequence[int], activation: str, *, out_gain: float, layer_norm: bool = False,
        out_activation: str | None = None, generator: torch.Generator | None = None) -> nn.Sequential:
    """Linear layers ``sizes[0] -> ... -> sizes[-1]`` with `activation` between them.

    `layer_norm` puts a LayerNorm after each hidden linear layer (before the activation), which
    parameter-space noise needs so that a perturbation means the same at every layer.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; known: {', '.join(ACTIVATIONS)}")
    layers: list[nn.Module] = []
    n = len(sizes) - 1
    for i in range(n):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        last = i == n - 1
        nn.init.orthogonal_(lin.weight, gain=out_gain if last else math.sqrt(2), generator=generator)
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        if not last:
            if layer_norm:
                layers.append(nn.LayerNorm(sizes[i + 1]))
            layers.append(ACTIVATIONS[activation]())
    if out_activation is not None:
        layers.append(ACTIVATIONS[out_activation]())
    return nn.Sequential(*layers)


class GaussianActor(nn.Module):
    """pi(a|s) = N(mu(s), diag(sigma^2)) in normalised action units, sigma = exp(log_std) state-independent.

    `forward` returns the mean; the deterministic (deployed) action is the mean clipped to [-1, 1].
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: Sequence[int], activation: str,
                 log_std_init: float, generator: torch.Generator | None = None):
        super().__init__()
        self.mu = mlp([obs_dim, *hidden_sizes, act_dim], activation, out_gain=0.01, generator=generator)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std_init)))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mu(obs)


class ValueCritic(nn.Module):
    """V(s), a separate network from the actor."""

    def __init__(self, obs_dim: int, hidden_sizes: Sequence[int], activation: str,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.v = mlp([obs_dim, *hidden_sizes, 1], activation, out_gain=1.0, generator=generator)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.v(obs).squeeze(-1)


class DeterministicActor(nn.Module):
    """mu(s) in [-1, 1] (tanh output), normalised action units.

    With `layer_norm`, hidden layers are layer-normalised, which parameter-space noise needs: a
    weight perturbation of a given scale then has a comparable effect on every layer.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: Sequence[int], activation: str,
                 layer_norm: bool, generator: torch.Generator | None = None):
        super().__init__()
        self.mu = mlp([obs_dim, *hidden_sizes, act_dim], activation, out_gain=0.01, layer_norm=layer_norm,
                      out_activation="tanh", generator=generator)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mu(obs)


class QCritic(nn.Module):
    """Q(s, a): state and action concatenated at the input."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: Sequence[int], activation: str,
                 layer_norm: bool = False, generator: torch.Generator | None = None):
        super().__init__()
        self.q = mlp([obs_dim + act_dim, *hidden_sizes, 1], activation, out_gain=1.0, layer_norm=layer_norm,
                     generator=generator)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.q(torch.cat([obs, action], dim=-1)).squeeze(-1)


class TwinQCritic(nn.Module):
    """Q_1(s, a) and Q_2(s, a): two independent `QCritic` networks (TD3's clipped double-Q, SAC).

    `forward` evaluates both, ``[2, B]``. They are two calls, not one batched one: on a CPU core, two
    256x256 critics as one vmap'd (batched matmul) chain are about 20 % slower than two ``addmm`` chains
    (bench/offpolicy_update.py --twin-batched), and two separate networks can be stepped on two cores.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: Sequence[int], activation: str,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.q1 = QCritic(obs_dim, act_dim, hidden_sizes, activation, generator=generator)
        self.q2 = QCritic(obs_dim, act_dim, hidden_sizes, activation, generator=generator)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.q1(obs, action), self.q2(obs, action)])


class SquashedGaussianActor(nn.Module):
    """SAC's policy: u ~ N(mu(s), diag(sigma(s)^2)), a = tanh(u) in [-1, 1] (normalised action units).

    `mu` is an ordinary MLP (the deployed, deterministic action is tanh(mu(s))); the log standard
    deviation is a second linear head on mu's last hidden layer, clamped to [log_std_min, log_std_max].
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: Sequence[int], activation: str,
                 log_std_min: float = -20.0, log_std_max: float = 2.0, generator: torch.Generator | None = None):
        super().__init__()
        self.mu = mlp([obs_dim, *hidden_sizes, act_dim], activation, out_gain=0.01, generator=generator)
        self.log_std = nn.Linear(hidden_sizes[-1], act_dim)
        nn.init.orthogonal_(self.log_std.weight, gain=0.01, generator=generator)
        nn.init.zeros_(self.log_std.bias)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log_std) of the Gaussian before the tanh, each ``[B, act_dim]``."""
        *hidden, last = self.mu
        h = obs
        for layer in hidden:
            h = layer(h)
        return last(h), self.log_std(h).clamp(self.log_std_min, self.log_std_max)

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        """tanh(mu(s)): the action the exported actor takes."""
        return torch.tanh(self.mu(obs))
