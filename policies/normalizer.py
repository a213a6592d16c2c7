"""Running mean and variance, for observation normalisation and reward scaling."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class RunningMeanStd:
    """Mean and variance of every sample seen so far, merged batch by batch.

    Batches are merged with the parallel algorithm of Chan, Golub and LeVeque (1979): for a batch of
    `n` samples with mean `m_b` and (population) variance `v_b`, and running statistics over `N`
    samples, ``delta = m_b - m``, ``m += delta n / (N + n)``,
    ``v = (v N + v_b n + delta^2 N n / (N + n)) / (N + n)``. float64 throughout.
    """

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4):
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = float(epsilon)

    def update(self, x: np.ndarray) -> None:
        """Merge a batch; `x` has shape ``[n, *shape]``."""
        x = np.asarray(x, dtype=np.float64)
        n = x.shape[0]
        if n == 0:
            return
        batch_mean = x.mean(axis=0)
        batch_var = x.var(axis=0)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = np.asarray(self.mean + delta * (n / total))
        self.var = np.asarray((self.var * self.count + batch_var * n + delta**2 * (self.count * n / total)) / total)
        self.count = total

    def normalize(self, x: np.ndarray, clip: float | None, eps: float = 1e-8) -> np.ndarray:
        y = (x - self.mean) / np.sqrt(self.var + eps)
        return np.clip(y, -clip, clip) if clip is not None else y

    def state_dict(self) -> dict[str, Any]:
        return {"mean": torch.from_numpy(self.mean.copy()), "var": torch.from_numpy(self.var.copy()),
                "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean = state["mean"].numpy().astype(np.float64).copy()
        self.var = state["var"].numpy().astype(np.float64).copy()
        self.count = float(state["count"])
