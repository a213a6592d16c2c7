"""Exploration noise processes: OU statistics, resets, decay, parameter-noise adaptation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from robotrl.algorithms.noise import AdaptiveParamNoise, GaussianNoise, OrnsteinUhlenbeckNoise, linear_schedule


def test_ou_reverts_to_the_mean_at_rate_theta_dt():
    ou = OrnsteinUhlenbeckNoise(3, 2, np.random.default_rng(0), theta=0.15, sigma=0.0, dt=0.1)
    ou.x[:] = 1.0
    for _ in range(10):
        ou()
    np.testing.assert_allclose(ou.x, (1 - 0.015) ** 10)  # deterministic decay without volatility


def test_ou_stationary_std_matches_theory():
    ou = OrnsteinUhlenbeckNoise(4000, 1, np.random.default_rng(1), theta=0.15, sigma=0.2, dt=0.1)
    for _ in range(400):  # 400 steps = 6 time constants (1 / (theta dt) = 66.7 steps)
        x = ou()
    expected = 0.2 * math.sqrt(0.1 / (1 - (1 - 0.015) ** 2))
    assert ou.stationary_std == pytest.approx(expected)
    assert np.std(x) == pytest.approx(expected, rel=0.05)
    assert abs(np.mean(x)) < 0.05
    # the defaults: about sigma / sqrt(2 theta)
    assert OrnsteinUhlenbeckNoise(1, 1, np.random.default_rng()).stationary_std == pytest.approx(0.365, abs=0.001)


def test_ou_is_temporally_correlated_and_resets_per_env():
    ou = OrnsteinUhlenbeckNoise(2000, 1, np.random.default_rng(2), theta=0.15, sigma=0.2, dt=0.1)
    for _ in range(300):
        ou()
    a = ou().ravel()
    b = ou().ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.95  # consecutive steps nearly equal; Gaussian noise would be ~0
    ou.reset([0, 5])
    assert ou.x[0, 0] == 0.0 and ou.x[5, 0] == 0.0 and ou.x[1, 0] != 0.0


def test_gaussian_noise_and_linear_decay():
    g = GaussianNoise(10000, 2, np.random.default_rng(3), sigma=0.3, sigma_final=0.1, decay_steps=100)
    assert np.std(g()) == pytest.approx(0.3, rel=0.03)
    g.set_step(50)
    assert g.sigma == pytest.approx(0.2)
    g.set_step(1000)
    assert g.sigma == pytest.approx(0.1)
    assert np.std(g()) == pytest.approx(0.1, rel=0.03)
    assert linear_schedule(1.0, 0.0, 0, 5) == 1.0


def test_same_seed_same_noise():
    a = OrnsteinUhlenbeckNoise(2, 3, np.random.default_rng(7))
    b = OrnsteinUhlenbeckNoise(2, 3, np.random.default_rng(7))
    for _ in range(5):
        np.testing.assert_array_equal(a(), b())


def test_param_noise_adaptation_moves_sigma_the_right_way():
    pn = AdaptiveParamNoise(initial_std=0.1, desired_action_std=0.2, alpha=1.01)
    pn.adapt(0.5)  # perturbed actions too far from the policy's: perturb less
    assert pn.sigma == pytest.approx(0.1 / 1.01)
    pn.adapt(0.05)  # too close: perturb more
    pn.adapt(0.05)
    assert pn.sigma == pytest.approx(0.1 * 1.01)
    assert pn.last_distance == 0.05
    with pytest.raises(ValueError):
        AdaptiveParamNoise(alpha=1.0)


def test_ou_step_by_hand_with_the_same_draws():
    ou = OrnsteinUhlenbeckNoise(2, 3, np.random.default_rng(5), theta=0.5, sigma=0.3, dt=0.04, mu=0.2)
    np.testing.assert_array_equal(ou.x, np.full((2, 3), 0.2))  # starts at mu
    ou.x[:] = 1.0
    z = np.random.default_rng(5).standard_normal((2, 3))
    out = ou()
    np.testing.assert_allclose(out, 1.0 + 0.5 * (0.2 - 1.0) * 0.04 + 0.3 * math.sqrt(0.04) * z)
    out[:] = 99.0  # a copy: the process's state is not handed out
    assert (ou.x != 99.0).all()
    ou.reset()  # every env
    np.testing.assert_array_equal(ou.x, np.full((2, 3), 0.2))
    assert (OrnsteinUhlenbeckNoise(1, 1, np.random.default_rng(0)).x == 0.0).all()  # default mu 0


def test_ou_sigma_decays_and_the_state_round_trips():
    ou = OrnsteinUhlenbeckNoise(2, 1, np.random.default_rng(0), sigma=0.3, sigma_final=0.1, decay_steps=100)
    ou.set_step(50)
    assert ou.sigma == pytest.approx(0.2)
    ou.set_step(100)
    assert ou.sigma == pytest.approx(0.1)
    fixed = OrnsteinUhlenbeckNoise(2, 1, np.random.default_rng(0), sigma=0.3, decay_steps=100)  # no final: constant
    fixed.set_step(100)
    assert fixed.sigma == 0.3
    ou()
    state = ou.state_dict()
    other = OrnsteinUhlenbeckNoise(2, 1, np.random.default_rng(1))
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.x, ou.x)
    assert other.sigma == ou.sigma == state["sigma"]
    assert json.loads(json.dumps(state)) == state  # plain data, for the checkpoint


def test_linear_schedule_boundaries():
    assert linear_schedule(1.0, 0.0, 1, 0) == 1.0
    assert linear_schedule(1.0, 0.0, 1, 1) == 0.0  # one step of decay is a decay
    assert linear_schedule(1.0, 0.0, 4, 1) == 0.75
    assert linear_schedule(1.0, 0.0, 4, -3) == 1.0 and linear_schedule(1.0, 0.0, 4, 9) == 0.0
    assert linear_schedule(1.0, 0.0, -1, 9) == 1.0


def test_gaussian_noise_defaults_by_hand_and_state():
    g = GaussianNoise(2, 3, np.random.default_rng(4))
    assert g.sigma == 0.1 and g.stationary_std == 0.1
    np.testing.assert_allclose(g(), 0.1 * np.random.default_rng(4).standard_normal((2, 3)))
    g.set_step(10**6)
    assert g.sigma == 0.1  # no decay unless asked for
    d = GaussianNoise(1, 1, np.random.default_rng(0), sigma=0.4, sigma_final=0.2, decay_steps=10)
    d.set_step(5)
    assert d.stationary_std == pytest.approx(0.3)
    other = GaussianNoise(1, 1, np.random.default_rng(0))
    other.load_state_dict(d.state_dict())
    assert other.sigma == d.sigma and d.state_dict() == {"sigma": d.sigma}
    g.reset([0])  # nothing to forget, but it is there for every process


def test_param_noise_defaults_boundary_and_state():
    pn = AdaptiveParamNoise()
    assert (pn.sigma, pn.desired_action_std, pn.alpha) == (0.1, 0.2, 1.01) and math.isnan(pn.last_distance)
    pn.adapt(0.2)  # exactly on target: not too far, so perturb more
    assert pn.sigma == pytest.approx(0.1 * 1.01)
    other = AdaptiveParamNoise(initial_std=1.0)
    other.load_state_dict(pn.state_dict())
    assert (other.sigma, other.last_distance) == (pn.sigma, 0.2)
    assert pn.state_dict() == {"sigma": pn.sigma, "last_distance": 0.2}
    with pytest.raises(ValueError, match=r"alpha must be > 1, got 0\.5"):
        AdaptiveParamNoise(alpha=0.5)
    AdaptiveParamNoise(alpha=1.0001)


@pytest.mark.parametrize("cls", [OrnsteinUhlenbeckNoise, GaussianNoise])
def test_a_final_sigma_without_decay_steps_means_no_decay(cls):
    # decay_steps = 0 (the default) is "no schedule": sigma stays where it started, whatever sigma_final says.
    n = cls(1, 2, np.random.default_rng(0), sigma=0.3, sigma_final=0.05)
    for t in (0, 1, 10**6):
        n.set_step(t)
        assert n.sigma == 0.3
