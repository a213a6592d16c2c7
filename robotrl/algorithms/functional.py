"""Pure math shared by the algorithms: GAE, Gaussian policy terms, conjugate gradient, line search,
flat parameter vectors and Polyak averaging. No state, no RNG; each is unit-tested on a case small
enough to check by hand.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

LOG_2PI = math.log(2 * math.pi)


# --------------------------------------------------------------------------------------------------
# Advantage estimation


def compute_gae(rewards: np.ndarray, values: np.ndarray, next_values: np.ndarray, terminated: np.ndarray,
                episode_end: np.ndarray, gamma: float, lam: float) -> np.ndarray:
    """Generalised advantage estimation (Schulman et al. 2016), all arrays shaped ``[T, B]``.

    ``delta_t = r_t + gamma * (1 - terminated_t) * next_values_t - values_t``
    ``A_t     = delta_t + gamma * lam * (1 - episode_end_t) * A_{t+1}``,  ``A_T = 0``

    `next_values[t]` is V of the state reached by the action at step t: V(s_{t+1}) inside an
    episode, V(final observation) where the episode was truncated (time limit: the state still has a
    future), anything where it terminated (masked). `episode_end` = terminated or truncated: the
    sum stops at the episode's end either way.
    """
    T = rewards.shape[0]
    adv = np.zeros_like(values, dtype=np.float64)
    not_term = 1.0 - terminated.astype(np.float64)
    not_end = 1.0 - episode_end.astype(np.float64)
    delta = rewards + gamma * not_term * next_values - values
    last = np.zeros(values.shape[1:], dtype=np.float64)
    for t in reversed(range(T)):
        last = delta[t] + gamma * lam * not_end[t] * last
        adv[t] = last
    return adv


def explained_variance(y_pred: np.ndarray, y_true: np.ndarray) -> float:
    """1 - Var[y_true - y_pred] / Var[y_true]: 1 is perfect, 0 is no better than the mean."""
    var = np.var(y_true)
    return float("nan") if var == 0 else float(1.0 - np.var(y_true - y_pred) / var)


# --------------------------------------------------------------------------------------------------
# Diagonal Gaussian policy terms (log_std is state-independent: shape [A])


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, diag(exp(log_std))^2) summed over the last axis. x, mean: ``[B, A]`` -> ``[B]``."""
    z = (x - mean) * torch.exp(-log_std)
    return -0.5 * (z * z).sum(-1) - log_std.sum(-1) - 0.5 * LOG_2PI * x.shape[-1]


def gaussian_kl(mean_p: torch.Tensor, log_std_p: torch.Tensor, mean_q: torch.Tensor,
                log_std_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) of diagonal Gaussians, summed over the last axis: ``[B, A]`` -> ``[B]``.

    ``sum_i log(s_q/s_p) + (s_p^2 + (m_p - m_q)^2) / (2 s_q^2) - 1/2``
    """
    var_p = torch.exp(2 * log_std_p)
    var_q = torch.exp(2 * log_std_q)
    return (log_std_q - log_std_p + (var_p + (mean_p - mean_q) ** 2) / (2 * var_q) - 0.5).sum(-1)


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """Entropy of a diagonal Gaussian: ``sum_i log_std_i + A/2 (1 + log 2 pi)``; ``[A]`` -> scalar."""
    return log_std.sum(-1) + 0.5 * log_std.shape[-1] * (1.0 + LOG_2PI)


# --------------------------------------------------------------------------------------------------
# Flat parameter vectors (TRPO)


def flat_params(params: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in params])


def set_flat_params(params: Sequence[torch.Tensor], flat: torch.Tensor) -> None:
    """Write the 1-D `flat` back into `params`, in order."""
    offset = 0
    with torch.no_grad():
        for p in params:
            n = p.numel()
            p.copy_(flat[offset:offset + n].view_as(p))
            offset += n
    if offset != flat.numel():
        raise ValueError(f"flat vector has {flat.numel()} elements, parameters have {offset}")


def flat_grad(output: torch.Tensor, params: Sequence[torch.Tensor], *, retain_graph: bool | None = None,
              create_graph: bool = False) -> torch.Tensor:
    """d output / d params as one 1-D vector (zeros for parameters the output does not depend on).

    The graph is kept when `create_graph` is set (so the result can be differentiated again).
    """
    grads = torch.autograd.grad(output, list(params), retain_graph=retain_graph, create_graph=create_graph,
                                allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params,
                                                                                                strict=True)])


# --------------------------------------------------------------------------------------------------
# Conjugate gradient and backtracking line search (TRPO)


def conjugate_gradient(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int = 10,
                       tol: float = 1e-10) -> torch.Tensor:
    """Approximately solve ``A x = b`` for symmetric positive-definite A given only ``matvec(v) = A v``.

    `b`: ``[n]``. Stops after `iters` iterations or when the squared residual falls below `tol`.
    Starts from x = 0 (Nocedal & Wright, Algorithm 5.2).
    """
    x = torch.zeros_like(b)
    r = b.clone()  # residual b - A x
    p = r.clone()  # search direction
    rr = r @ r
    for _ in range(iters):
        if rr < tol:
            break
        Ap = matvec(p)
        alpha = rr / (p @ Ap)
        x += alpha * p
        r -= alpha * Ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def backtracking_line_search(evaluate: Callable[[torch.Tensor], tuple[float, float]], full_step: torch.Tensor,
                             max_kl: float, max_iter: int = 10, shrink: float = 0.8
                             ) -> tuple[torch.Tensor | None, int]:
    """Find the largest ``shrink**k * full_step`` (k = 0, 1, ...) that improves the objective and keeps
    the KL divergence within `max_kl`.

    `evaluate(step)` applies a candidate step and returns ``(improvement, kl)``. Returns the accepted
    step and k, or ``(None, max_iter)`` when no candidate is acceptable (the caller keeps the old
    parameters).
    """
    for k in range(max_iter):
        step = full_step * (shrink**k)
        improvement, kl = evaluate(step)
        if math.isfinite(improvement) and math.isfinite(kl) and kl <= max_kl and improvement > 0:
            return step, k
    return None, max_iter


# --------------------------------------------------------------------------------------------------
# Target networks (DDPG)


@torch.no_grad()
def polyak_update(target: Iterable[torch.Tensor], online: Iterable[torch.Tensor], tau: float) -> None:
    """``target <- (1 - tau) * target + tau * online``, in place, as one fused multi-tensor op."""
    t, o = list(target), list(online)
    torch._foreach_lerp_(t, o, tau)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
