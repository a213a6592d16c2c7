"""The deployable policy: raw robot observation in, robot command out.

    command = offset + scale * clip(actor(clip((obs - mean) / sqrt(var + eps), -c, c)), -1, 1)

Every algorithm hands over its trained actor as a *policy record*, a dict of tensors and plain
values that describes the network and carries the frozen observation statistics and the action
bounds. Records are stored in checkpoints (loadable with ``torch.load(weights_only=True)``),
rebuilt into a `DeployedPolicy` for evaluation, and exported to ONNX as one graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from robotrl.policies.networks import mlp
from robotrl.policies.normalizer import RunningMeanStd

RECORD_FORMAT = "robotrl-policy/1"
OBS_EPS = 1e-8


class DeployedPolicy(nn.Module):
    """Deterministic map from raw observations ``[N, obs_dim]`` to commands ``[N, act_dim]``."""

    def __init__(self, net: nn.Module, obs_mean: torch.Tensor, obs_var: torch.Tensor, obs_clip: float | None,
                 action_low: torch.Tensor, action_high: torch.Tensor):
        super().__init__()
        self.net = net
        self.register_buffer("obs_mean", obs_mean.to(torch.float32))
        self.register_buffer("obs_inv_std", (1.0 / torch.sqrt(obs_var.to(torch.float64) + OBS_EPS)).to(torch.float32))
        self.obs_clip = obs_clip
        self.register_buffer("act_scale", ((action_high - action_low) / 2).to(torch.float32))
        self.register_buffer("act_offset", ((action_high + action_low) / 2).to(torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = (obs - self.obs_mean) * self.obs_inv_std
        if self.obs_clip is not None:
            x = x.clamp(-self.obs_clip, self.obs_clip)
        a = self.net(x).clamp(-1.0, 1.0)
        return self.act_offset + self.act_scale * a

    @torch.inference_mode()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """NumPy convenience: one observation ``[obs_dim]`` or a batch ``[N, obs_dim]``."""
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        single = x.ndim == 1
        y = self(x[None] if single else x).numpy()
        return y[0] if single else y


def make_record(net: nn.Module, *, obs_dim: int, act_dim: int, hidden_sizes: Sequence[int], activation: str,
                layer_norm: bool, out_activation: str | None, obs_rms: RunningMeanStd | None,
                obs_clip: float | None, action_low: Sequence[float], action_high: Sequence[float]) -> dict[str, Any]:
    """Describe an MLP actor plus its normaliser and bounds as a weights-only dict."""
    if obs_rms is not None:
        mean, var = torch.from_numpy(obs_rms.mean.copy()), torch.from_numpy(obs_rms.var.copy())
    else:  # identity normalisation
        mean, var, obs_clip = torch.zeros(obs_dim, dtype=torch.float64), torch.full((obs_dim,), 1.0 - OBS_EPS,
                                                                                     dtype=torch.float64), None
    return {
        "format": RECORD_FORMAT,
        "obs_dim": int(obs_dim),
        "act_dim": int(act_dim),
        "hidden_sizes": [int(h) for h in hidden_sizes],
        "activation": activation,
        "layer_norm": bool(layer_norm),
        "out_activation": out_activation,
        "net": {k: v.detach().clone() for k, v in net.state_dict().items()},
        "obs_mean": mean,
        "obs_var": var,
        "obs_clip": obs_clip,
        "normalize_obs": obs_rms is not None,
        "obs_count": float(obs_rms.count) if obs_rms is not None else 0.0,
        "action_low": torch.tensor(list(action_low), dtype=torch.float64),
        "action_high": torch.tensor(list(action_high), dtype=torch.float64),
    }


def from_record(record: dict[str, Any]) -> DeployedPolicy:
    """Rebuild the `DeployedPolicy` described by a policy record."""
    if record.get("format") != RECORD_FORMAT:
        raise ValueError(f"not a robotrl policy record (format {record.get('format')!r})")
    net = mlp([record["obs_dim"], *record["hidden_sizes"], record["act_dim"]], record["activation"],
              out_gain=1.0, layer_norm=record["layer_norm"], out_activation=record["out_activation"])
    net.load_state_dict(record["net"])
    policy = DeployedPolicy(net, record["obs_mean"], record["obs_var"], record["obs_clip"],
                            record["action_low"], record["action_high"])
    return policy.eval()
