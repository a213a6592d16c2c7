from __future__ import annotations

import numpy as np
import pytest
import torch

from robotrl.policies import RunningMeanStd


def test_batches_merge_to_the_statistics_of_all_samples():
    rng = np.random.default_rng(1)
    data = rng.normal(3.0, 2.0, size=(1000, 5))
    rms = RunningMeanStd((5,), epsilon=0.0 + 1e-12)
    for chunk in np.array_split(data, [1, 7, 100, 333, 999]):
        rms.update(chunk)
    np.testing.assert_allclose(rms.mean, data.mean(0), rtol=1e-9)
    np.testing.assert_allclose(rms.var, data.var(0), rtol=1e-9)


def test_scalar_statistics_and_state_round_trip():
    rms = RunningMeanStd(())
    rms.update(np.array([1.0, 2.0, 3.0]))
    state = rms.state_dict()
    assert all(isinstance(v, torch.Tensor) for k, v in state.items() if k != "count")
    other = RunningMeanStd(())
    other.load_state_dict(state)
    assert other.mean == rms.mean and other.var == rms.var and other.count == rms.count
    out = rms.normalize(np.array([100.0]), clip=5.0)
    assert out[0] == 5.0


def test_normalize_by_hand_both_clips_and_a_constant_input():
    rms = RunningMeanStd((2,))
    rms.mean, rms.var = np.array([1.0, -1.0]), np.array([4.0, 0.25])
    np.testing.assert_allclose(rms.normalize(np.array([5.0, -2.0]), clip=None, eps=0.0), [2.0, -2.0])
    np.testing.assert_allclose(rms.normalize(np.array([[5.0, -2.0], [-100.0, 100.0]]), clip=1.5, eps=0.0),
                               [[1.5, -1.5], [-1.5, 1.5]])
    rms.var = np.zeros(2)  # a constant input: the default eps 1e-8 keeps it finite
    np.testing.assert_allclose(rms.normalize(np.array([1.0 + 1e-4, -1.0]), clip=None), [1.0, 0.0])


def test_the_prior_count_epsilon_by_hand():
    rms = RunningMeanStd(())
    assert rms.count == 1e-4 and rms.mean == 0.0 and rms.var == 1.0
    rms.update(np.array([2.0]))
    # one sample merged with the prior (mean 0, var 1, count 1e-4)
    total = 1.0 + 1e-4
    assert rms.mean == pytest.approx(2.0 / total, rel=1e-12)
    assert rms.var == pytest.approx((1e-4 + 4.0 * 1e-4 / total) / total, rel=1e-12)
    assert rms.count == total
    rms.update(np.zeros((0,)))  # an empty batch changes nothing
    assert rms.count == total
