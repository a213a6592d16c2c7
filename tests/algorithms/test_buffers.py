"""The replay buffer: one copy of each observation, truncation bootstraps from the true final state."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robotrl.algorithms.buffers import ReplayBuffer


def _obs(v, dim=3):
    return np.full((1, dim), float(v), dtype=np.float32)


def _all_transitions(buf: ReplayBuffer, n: int = 4000):
    b = buf.sample(n, np.random.default_rng(0))
    return {(float(o[0]), float(a[0]), float(r), float(no[0]), float(t))
            for o, a, r, no, t in zip(b.obs, b.actions, b.rewards, b.next_obs, b.terminated, strict=True)}


def test_next_observation_of_truncated_and_terminated_episodes():
    buf = ReplayBuffer(100, 1, 3, 1)
    buf.reset(_obs(0))
    # episode 1: 0 -> 1 -> 2, truncated after the second step (final obs 2, reset obs 10)
    buf.add(np.array([[0.5]]), np.array([1.0]), _obs(1), np.array([False]), np.array([False]), None)
    buf.add(np.array([[1.5]]), np.array([2.0]), _obs(10), np.array([False]), np.array([True]), _obs(2))
    # episode 2: 10 -> 11, terminated (final obs 11, reset obs 20)
    buf.add(np.array([[10.5]]), np.array([3.0]), _obs(20), np.array([True]), np.array([True]), _obs(11))
    got = _all_transitions(buf)
    assert got == {
        (0.0, 0.5, 1.0, 1.0, 0.0),
        (1.0, 1.5, 2.0, 2.0, 0.0),  # truncated: next obs is the true final state, not the reset state
        (10.0, 10.5, 3.0, 11.0, 1.0),  # terminated: flagged, so it is not bootstrapped
    }
    assert len(buf) == 3  # the final observations are stored but never start a transition


def test_ring_wraps_and_forgets_the_oldest():
    buf = ReplayBuffer(5, 1, 3, 1)
    buf.reset(_obs(0))
    for t in range(12):
        buf.add(np.array([[t]]), np.array([t]), _obs(t + 1), np.array([False]), np.array([False]), None)
    got = _all_transitions(buf)
    # 5 slots: the current observation 12 and the 4 transitions before it
    assert got == {(float(t), float(t), float(t), float(t + 1), 0.0) for t in range(8, 12)}


def test_several_envs_keep_their_own_streams():
    buf = ReplayBuffer(1000, 2, 2, 1)
    buf.reset(np.array([[0, 0], [100, 100]], dtype=np.float32))
    for t in range(5):
        end = np.array([t == 2, False])
        final = np.array([[77, 77], [0, 0]], dtype=np.float32)
        nxt = np.array([[t + 1, t + 1], [101 + t, 101 + t]], dtype=np.float32)
        buf.add(np.array([[t], [t]]), np.array([0.0, 1.0]), nxt, np.array([False, False]), end, final)
    b = buf.sample(3000, np.random.default_rng(1))
    pairs = {(float(o[0]), float(n[0])) for o, n in zip(b.obs, b.next_obs, strict=True)}
    assert (2.0, 77.0) in pairs and (100.0, 101.0) in pairs and (104.0, 105.0) in pairs
    assert all(n - o == 1.0 for o, n in pairs if o >= 100)


def test_a_million_transitions_fit_well_under_a_gigabyte():
    buf = ReplayBuffer(1_000_000, 1, 17, 6)
    assert buf.nbytes < 110e6  # 98 MB for HalfCheetah-sized transitions


def test_state_round_trip_saves_only_the_written_part():
    buf = ReplayBuffer(1000, 1, 3, 1)
    buf.reset(_obs(0))
    for t in range(10):
        buf.add(np.array([[t]]), np.array([t]), _obs(t + 1), np.array([False]), np.array([False]), None)
    state = buf.state_dict()
    assert state["obs"].shape == (11, 1, 3)
    assert all(isinstance(v, torch.Tensor) for k, v in state.items() if k not in ("high", "has_transitions"))
    other = ReplayBuffer(1000, 1, 3, 1)
    other.load_state_dict(state)
    assert _all_transitions(other) == _all_transitions(buf)
    with pytest.raises(ValueError):
        ReplayBuffer(1000, 1, 4, 1).load_state_dict(state)


def test_empty_buffer_refuses_to_sample():
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(10, 1, 2, 1).sample(4, np.random.default_rng())


def test_slots_per_env_and_an_empty_checkpoint():
    assert ReplayBuffer(1000, 4, 2, 1).slots == 250
    with pytest.raises(ValueError, match="needs at least 4"):  # fewer: an episode's end can leave no transition
        ReplayBuffer(7, 2, 2, 1)
    state = ReplayBuffer(10, 1, 2, 1).state_dict()
    assert state["obs"].shape == (0, 1, 2) and state["high"] == 0 and not state["has_transitions"]


def test_an_env_that_ends_more_episodes_is_sampled_up_to_its_latest_transition():
    # env 0 ends a one-step episode at every step (two slots per step), env 1 never does (one slot per step)
    buf = ReplayBuffer(100, 2, 1, 1)
    buf.reset(np.array([[0.0], [100.0]], dtype=np.float32))
    for t in range(1, 4):
        buf.add(np.array([[t], [t]]), np.array([0.0, 0.0]), np.array([[10.0 * t], [100.0 + t]], dtype=np.float32),
                np.array([True, False]), np.array([True, False]), np.array([[10.0 * t - 5], [0.0]], dtype=np.float32))
    assert buf.high == 7  # env 0 wrote slots 0..6
    b = buf.sample(4000, np.random.default_rng(2))
    pairs = {(float(o[0]), float(n[0])) for o, n in zip(b.obs, b.next_obs, strict=True)}
    assert pairs == {(0.0, 5.0), (10.0, 15.0), (20.0, 25.0), (100.0, 101.0), (101.0, 102.0), (102.0, 103.0)}


def test_sample_obs_draws_only_transition_starts():
    buf = ReplayBuffer(100, 1, 1, 1)
    buf.reset(_obs(0, dim=1))
    buf.add(np.array([[0.0]]), np.array([0.0]), _obs(10, dim=1), np.array([True]), np.array([True]), _obs(1, dim=1))
    one = buf.sample_obs(5, np.random.default_rng(0))  # a single stored transition: asked for 5, gets 1
    assert one.shape == (1, 1) and one[0, 0] == 0.0
    buf.add(np.array([[0.0]]), np.array([0.0]), _obs(11, dim=1), np.array([False]), np.array([False]), None)
    rng = np.random.default_rng(0)
    assert buf.sample_obs(1000, rng).shape == (2, 1)  # at most as many as are stored
    seen = {float(v) for _ in range(50) for v in buf.sample_obs(2, rng)[:, 0]}
    assert seen == {0.0, 10.0}  # never the final observation 1 or the current one 11
    many = ReplayBuffer(100, 1, 1, 1)
    many.reset(_obs(0, dim=1))
    for t in range(20):
        many.add(np.array([[0.0]]), np.array([0.0]), _obs(t + 1, dim=1), np.array([False]), np.array([False]), None)
    assert many.sample_obs(8, np.random.default_rng(0)).shape == (8, 1)
    rng = np.random.default_rng(1)
    assert {float(v) for _ in range(100) for v in many.sample_obs(20, rng)[:, 0]} == set(map(float, range(20)))


def test_a_full_ring_round_trips_and_a_bigger_one_is_refused():
    buf = ReplayBuffer(5, 1, 3, 1)
    buf.reset(_obs(0))
    for t in range(12):
        buf.add(np.array([[t]]), np.array([t]), _obs(t + 1), np.array([False]), np.array([False]), None)
    state = buf.state_dict()
    assert state["high"] == buf.slots == 5
    same = ReplayBuffer(5, 1, 3, 1)
    same.load_state_dict(state)  # high == slots: fits
    assert _all_transitions(same) == _all_transitions(buf)
    with pytest.raises(ValueError, match=r"replay buffer obs has shape \(5, 1, 3\), which does not fit \(4, 1, 3\)"):
        ReplayBuffer(4, 1, 3, 1).load_state_dict(state)
