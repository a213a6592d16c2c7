"""Checks shared by the batched-task tests: a batch against single-world envs seeded alike."""

from __future__ import annotations

import numpy as np


def same_as_singles(vec, singles, steps, seed):
    """Step `vec` and `singles` with the same random actions; compare every output. Returns the number of ends."""
    n = len(singles)
    obs, _ = vec.reset(seed=seed)
    np.testing.assert_array_equal(obs, np.stack([e.reset(seed=seed + i)[0] for i, e in enumerate(singles)]))
    rng = np.random.default_rng(0)
    lo, hi = vec.single_action_space.low, vec.single_action_space.high
    ends = 0
    for t in range(steps):
        a = rng.uniform(lo, hi, (n, len(lo)))
        obs, r, term, trunc, info = vec.step(a)
        for i, e in enumerate(singles):
            o1, r1, term1, trunc1, _ = e.step(a[i])
            assert (term[i], trunc[i]) == (term1, trunc1), (t, i)
            assert abs(r[i] - r1) <= 1e-12 * max(1.0, abs(r1)), (t, i, r[i], r1)
            if term1 or trunc1:
                np.testing.assert_array_equal(info["final_obs"][i], o1, err_msg=f"final, step {t}, world {i}")
                assert info["_episode"][i] and info["episode"]["l"][i] > 0
                o1, _ = e.reset()
                ends += 1
            np.testing.assert_array_equal(obs[i], o1, err_msg=f"step {t}, world {i}")
    return ends
