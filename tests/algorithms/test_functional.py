"""The pure math of robotrl.algorithms.functional, each against a case checkable by hand or by a slower reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robotrl.algorithms.functional import (
    available_cores,
    backtracking_line_search,
    compute_gae,
    conjugate_gradient,
    explained_variance,
    flat_grad,
    flat_params,
    gaussian_entropy,
    gaussian_kl,
    gaussian_log_prob,
    polyak_update,
    set_flat_params,
)


def test_gae_hand_computed_three_steps():
    # One env, three steps, the episode terminates at t=2. gamma=0.5, lambda=0.5.
    r = np.array([[1.0], [2.0], [3.0]])
    v = np.array([[0.5], [1.0], [2.0]])
    nv = np.array([[1.0], [2.0], [99.0]])  # V(s1), V(s2), (ignored: terminated)
    term = np.array([[False], [False], [True]])
    adv = compute_gae(r, v, nv, term, term, gamma=0.5, lam=0.5)
    d2 = 3.0 - 2.0  # = 1.0
    d1 = 2.0 + 0.5 * 2.0 - 1.0  # = 2.0
    d0 = 1.0 + 0.5 * 1.0 - 0.5  # = 1.0
    a2 = d2
    a1 = d1 + 0.25 * a2  # 2.25
    a0 = d0 + 0.25 * a1  # 1.5625
    np.testing.assert_allclose(adv[:, 0], [a0, a1, a2])


def _gae_reference(r, v, nv, term, end, gamma, lam):
    T, B = r.shape
    out = np.zeros((T, B))
    for b in range(B):
        for t in range(T):
            total, coef = 0.0, 1.0
            for k in range(t, T):
                delta = r[k, b] + gamma * (0.0 if term[k, b] else nv[k, b]) - v[k, b]
                total += coef * delta
                if end[k, b]:
                    break
                coef *= gamma * lam
            out[t, b] = total
    return out


def test_gae_matches_explicit_sum_with_truncation_and_termination():
    rng = np.random.default_rng(0)
    T, B = 17, 4
    r, v, nv = rng.normal(size=(T, B)), rng.normal(size=(T, B)), rng.normal(size=(T, B))
    term = rng.random((T, B)) < 0.1
    trunc = (rng.random((T, B)) < 0.1) & ~term
    end = term | trunc
    got = compute_gae(r, v, nv, term, end, 0.97, 0.9)
    np.testing.assert_allclose(got, _gae_reference(r, v, nv, term, end, 0.97, 0.9), rtol=1e-12, atol=1e-12)


def test_gae_truncation_bootstraps_but_termination_does_not():
    r = np.zeros((1, 2))
    v = np.zeros((1, 2))
    nv = np.full((1, 2), 10.0)
    term = np.array([[True, False]])
    end = np.array([[True, True]])  # env 0 terminated, env 1 truncated
    adv = compute_gae(r, v, nv, term, end, 0.9, 0.95)
    assert adv[0, 0] == 0.0
    assert adv[0, 1] == pytest.approx(9.0)


def test_gaussian_terms_match_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mean_p, mean_q = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    ls_p, ls_q = torch.randn(3, generator=g) * 0.3, torch.randn(3, generator=g) * 0.3
    x = torch.randn(5, 3, generator=g)
    p = torch.distributions.Normal(mean_p, ls_p.exp())
    q = torch.distributions.Normal(mean_q, ls_q.exp())
    torch.testing.assert_close(gaussian_log_prob(x, mean_p, ls_p), p.log_prob(x).sum(-1))
    torch.testing.assert_close(gaussian_kl(mean_p, ls_p, mean_q, ls_q), torch.distributions.kl_divergence(p, q).sum(-1))
    torch.testing.assert_close(gaussian_entropy(ls_p), p.entropy()[0].sum())


def test_conjugate_gradient_solves_3x3_spd_system():
    A = torch.tensor([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    x = conjugate_gradient(lambda v: A @ v, b, iters=3)  # exact in n=3 iterations
    torch.testing.assert_close(x, torch.linalg.solve(A, b))
    x1 = conjugate_gradient(lambda v: A @ v, b, iters=1)  # one step = steepest descent from 0
    alpha = (b @ b) / (b @ A @ b)
    torch.testing.assert_close(x1, alpha * b)


def test_line_search_shrinks_until_constraint_and_improvement_hold():
    # maximise f(x) = -(x - 1)^2 from x0 = 0 with a full step of 4; "kl" = step^2.
    def evaluate(step):
        x = float(step)
        return -((x - 1) ** 2) + 1.0, x * x

    step, k = backtracking_line_search(evaluate, torch.tensor(4.0), max_kl=1.0, max_iter=10, shrink=0.5)
    # 4 (kl 16), 2 (kl 4, no improvement), 1 (kl 1, improvement 1) -> accepted at k = 2
    assert k == 2 and float(step) == 1.0
    step, k = backtracking_line_search(evaluate, torch.tensor(-4.0), max_kl=1.0, max_iter=5, shrink=0.5)
    assert step is None and k == 5  # moving away never improves


def test_flat_params_round_trip_and_flat_grad():
    lin = torch.nn.Linear(3, 2)
    params = list(lin.parameters())
    flat = flat_params(params)
    assert flat.shape == (8,)
    set_flat_params(params, torch.arange(8.0))
    torch.testing.assert_close(lin.weight.detach(), torch.arange(6.0).view(2, 3))
    torch.testing.assert_close(lin.bias.detach(), torch.tensor([6.0, 7.0]))
    x = torch.tensor([[1.0, 2.0, 3.0]])
    g = flat_grad(lin(x).sum(), params)  # d/dW = x for each output row, d/db = 1
    torch.testing.assert_close(g, torch.tensor([1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0, 1.0]))
    with pytest.raises(ValueError):
        set_flat_params(params, torch.zeros(9))


def test_polyak_update():
    target, online = [torch.zeros(3), torch.ones(2)], [torch.ones(3), torch.zeros(2)]
    polyak_update(target, online, tau=0.25)
    torch.testing.assert_close(target[0], torch.full((3,), 0.25))
    torch.testing.assert_close(target[1], torch.full((2,), 0.75))


def test_explained_variance():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(y, y) == 1.0
    assert explained_variance(np.full(4, y.mean()), y) == pytest.approx(0.0)
    assert math.isnan(explained_variance(y, np.ones(4)))


def test_gaussian_terms_sum_over_the_last_axis_of_any_batch_shape():
    g = torch.Generator().manual_seed(1)
    x, mean = torch.randn(2, 5, 3, generator=g), torch.randn(2, 5, 3, generator=g)  # [T, B, A]
    ls_p, ls_q = torch.randn(3, generator=g) * 0.3, torch.randn(3, generator=g) * 0.3
    p, q = torch.distributions.Normal(mean, ls_p.exp()), torch.distributions.Normal(x, ls_q.exp())
    torch.testing.assert_close(gaussian_log_prob(x, mean, ls_p), p.log_prob(x).sum(-1))
    torch.testing.assert_close(gaussian_kl(mean, ls_p, x, ls_q), torch.distributions.kl_divergence(p, q).sum(-1))
    # by hand, one dimension: log N(1; 0, e^2) = -1/(2 e^2) - 1 - log(2 pi)/2; entropy 1 + (1 + log 2 pi)/2
    one = torch.tensor([1.0])
    assert float(gaussian_log_prob(one[None], torch.zeros(1, 1), one)) == pytest.approx(
        -0.5 / math.e**2 - 1.0 - 0.5 * math.log(2 * math.pi))
    assert float(gaussian_entropy(one)) == pytest.approx(1.0 + 0.5 * (1.0 + math.log(2 * math.pi)))
    # KL(N(0, 1) || N(1, e^2)) = log e + (1 + 1) / (2 e^2) - 1/2
    assert float(gaussian_kl(torch.zeros(1, 1), torch.zeros(1), torch.ones(1, 1), one)) == pytest.approx(
        1.0 + 1.0 / math.e**2 - 0.5)


def test_conjugate_gradient_defaults_and_tolerance_boundary():
    A = torch.diag(torch.arange(1.0, 13.0, dtype=torch.float64))  # 12 distinct eigenvalues: exact after 12 steps
    b = torch.ones(12, dtype=torch.float64)
    x10 = conjugate_gradient(lambda v: A @ v, b)
    torch.testing.assert_close(x10, conjugate_gradient(lambda v: A @ v, b, iters=10))  # default: 10 iterations
    assert not torch.allclose(x10, conjugate_gradient(lambda v: A @ v, b, iters=11))
    torch.testing.assert_close(conjugate_gradient(lambda v: A @ v, b, iters=12), 1.0 / torch.arange(1.0, 13.0,
                                                                                                      dtype=torch.float64))
    # the residual must fall *below* tol to stop: |b|^2 = 0.25 = tol still takes a step
    two = torch.tensor([[2.0]], dtype=torch.float64)
    x = conjugate_gradient(lambda v: two @ v, torch.tensor([0.5], dtype=torch.float64), tol=0.25)
    torch.testing.assert_close(x, torch.tensor([0.25], dtype=torch.float64))
    x = conjugate_gradient(lambda v: two @ v, torch.tensor([0.5], dtype=torch.float64), tol=0.26)
    torch.testing.assert_close(x, torch.tensor([0.0], dtype=torch.float64))
    # converged early (3x3 in 3 steps): more iterations change nothing
    A3 = torch.tensor([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 2.0]], dtype=torch.float64)
    b3 = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(conjugate_gradient(lambda v: A3 @ v, b3, iters=50), torch.linalg.solve(A3, b3))


def test_line_search_defaults_and_its_acceptance_boundaries():
    steps = []

    def never(step):
        steps.append(float(step))
        return -1.0, 0.0

    assert backtracking_line_search(never, torch.tensor(1.0), max_kl=0.1) == (None, 10)  # default: 10 tries
    assert steps == pytest.approx([0.8**k for k in range(10)])  # default: shrink by 0.8
    # no improvement (exactly 0) is refused; the KL limit itself is allowed
    step, k = backtracking_line_search(lambda s: (0.0 if float(s) > 0.5 else 1.0, 0.1), torch.tensor(1.0), max_kl=0.1,
                                       shrink=0.5)
    assert k == 1 and float(step) == 0.5
    step, k = backtracking_line_search(lambda s: (float("nan") if float(s) > 0.5 else 1.0, 0.0), torch.tensor(1.0),
                                       max_kl=0.1, shrink=0.5)
    assert k == 1  # a non-finite improvement or KL is never accepted
    step, k = backtracking_line_search(lambda s: (1.0, float("inf") if float(s) > 0.5 else 0.0), torch.tensor(1.0),
                                       max_kl=0.1, shrink=0.5)
    assert k == 1


def test_flat_grad_of_unused_parameters_is_zero_and_keeps_no_graph_by_default():
    a, b = torch.nn.Parameter(torch.tensor([2.0, 3.0])), torch.nn.Parameter(torch.tensor([5.0]))
    g = flat_grad((a * a).sum(), [a, b])  # b does not enter the output
    torch.testing.assert_close(g, torch.tensor([4.0, 6.0, 0.0]))
    assert not g.requires_grad
    g2 = flat_grad((a * a * a).sum(), [a], create_graph=True)  # 3 a^2, differentiable again
    assert g2.requires_grad
    torch.testing.assert_close(flat_grad(g2.sum(), [a]), torch.tensor([12.0, 18.0]))  # 6 a


def test_available_cores_is_this_process_affinity():
    import os

    assert available_cores() == len(os.sched_getaffinity(0))
