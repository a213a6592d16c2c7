from __future__ import annotations

import numpy as np
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
