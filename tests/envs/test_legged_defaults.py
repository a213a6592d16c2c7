"""The legged template's defaults that carry across robots, checked against values computed by hand: the action scale
derived from the servo, the size scaling of commands and gait times, the command curriculum, the gait terms, and
PPO's adaptive learning rate."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from robotrl.envs import legged
from robotrl.envs.legged import LeggedVelocityTask

CRITTER = Path(__file__).resolve().parents[1] / "assets" / "critter.xml"


def critter(tmp_path: Path, extra: str = "", knee_default: float = -0.8) -> str:
    """The critter (tests/assets/critter.xml: thighs and shins of 0.1 m, toes of radius 0.015, the torso's origin
    0.3 m up) with kp 8 and effort limit 5 and no action_scale."""
    p = tmp_path / "critter.toml"
    p.write_text(f'model = "{CRITTER}"\nbase = "torso"\nimu_site = "imu_link"\n'
                 'feet = ["lf_toe", "rf_toe", "lh_toe", "rh_toe"]\ndecimation = 5\n'
                 '[joints."*"]\nkp = 8.0\nkd = 0.2\neffort_limit = 5.0\n'
                 f'[joints."*_swing"]\ndefault = 0.3\n[joints."*_knee"]\ndefault = {knee_default}\n{extra}')
    return str(p)


def test_action_scale_is_effort_over_kp_symmetric_about_the_default_where_the_range_allows(tmp_path):
    # effort / kp = 5 / 8 = 0.625 rad. Swing: default 0.3 in [-1, 1], room 0.7 -> 0.625 both ways.
    task = LeggedVelocityTask(critter(tmp_path))
    r = task.robot
    swing = [i for i, j in enumerate(r.joints) if j.endswith("swing")]
    knee = [i for i, j in enumerate(r.joints) if j.endswith("knee")]
    assert np.allclose(r.action_high[swing], 0.3 + 0.625) and np.allclose(r.action_low[swing], 0.3 - 0.625)
    assert np.allclose(r.action_high[knee], -0.8 + 0.625) and np.allclose(r.action_low[knee], -0.8 - 0.625)
    assert r.scale_derived.all()
    # knee default -0.3 in [-2, 0]: 0.3 of room, more than a quarter of 0.625: targets -0.6 .. 0 (symmetric)
    r = LeggedVelocityTask(critter(tmp_path, knee_default=-0.3)).robot
    assert np.allclose(r.action_low[knee], -0.6) and np.allclose(r.action_high[knee], 0.0)
    # knee default -0.1: 0.1 of room is under a quarter (0.156): the whole 0.625 below, cut by the range above
    r = LeggedVelocityTask(critter(tmp_path, knee_default=-0.1)).robot
    assert np.allclose(r.action_low[knee], -0.725) and np.allclose(r.action_high[knee], 0.0)
    # robot inspect says what it derived
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "robotrl.cli", "robot", "inspect", str(CRITTER), "--config",
                          critter(tmp_path)], capture_output=True, text=True, timeout=120).stdout
    assert "action_scale from effort_limit / kp (the config gives none) [rad or m]: lf_swing 0.625, " in out
    # a scale the config gives is kept
    r = LeggedVelocityTask(critter(tmp_path, extra='[joints."lf_*"]\naction_scale = 0.2\n')).robot
    lf = [i for i, j in enumerate(r.joints) if j.startswith("lf_")]
    assert np.allclose(r.action_high[lf] - r.default[lf], 0.2) and not r.scale_derived[lf].any()


def test_commands_kernel_and_gait_times_scale_with_the_robots_height(tmp_path):
    # toe centre at the default pose: 0.3 - 0.1 cos(0.3) - 0.1 cos(0.3 - 0.8); its bottom 0.015 lower
    height = 0.3 - (0.3 - 0.1 * math.cos(0.3) - 0.1 * math.cos(0.5) - 0.015)
    k = math.sqrt(height / 0.3)
    task = LeggedVelocityTask(critter(tmp_path))
    assert task.height == pytest.approx(height, abs=1e-9)
    assert task.command_ranges["x"] == pytest.approx((-0.6 * k, 1.0 * k))
    assert task.command_ranges["y"] == pytest.approx((-0.4 * k, 0.4 * k))
    assert task.command_ranges["yaw"] == (-1.0, 1.0)
    assert task.sigma == pytest.approx(0.25 * k * k)
    assert task.air_time == pytest.approx(round(0.3 * k, 3)) and task.clearance == pytest.approx(round(0.08 * k, 3))
    # what the config gives is kept
    from robotrl.envs import make

    env = make("legged:" + critter(tmp_path, extra="[legged]\ncommand_x = [-0.2, 0.5]\ntracking_sigma = 0.1\n"))
    given = env.unwrapped.task
    assert given.command_ranges["x"] == (-0.2, 0.5) and given.sigma == 0.1
    assert given.command_ranges["y"] == pytest.approx((-0.4 * k, 0.4 * k))
    env.close()
    # our quadruped is the reference size: its defaults are the unscaled ones
    ours = LeggedVelocityTask("envs/assets/quadruped.toml")
    assert ours.command_ranges["x"] == (-0.6, 1.0) and ours.sigma == 0.25


def test_command_curriculum_widens_after_tracking_well_and_narrows_after_a_fall(tmp_path):
    task = LeggedVelocityTask(critter(tmp_path), num_worlds=2, command_curriculum=0.3)
    task.seed([0, 1], [0, 1])
    assert np.all(task.command_level == 1.0)  # not training: the whole ranges
    task.set_training(True)
    task.reset([0, 1])
    assert np.allclose(task.command_level, 0.3)
    for _ in range(200):  # every command drawn within 0.3 of the ranges
        task._resample(0)
        lo, hi = task.command_ranges["x"]
        assert 0.3 * lo - 1e-12 <= task.command[0, 0] <= 0.3 * hi + 1e-12
    # world 0 ran its episode to the end tracking well (mean kernels 0.9), world 1 fell
    task.t[:] = task.max_steps
    task._ep_kernels[0] = 0.9 * task.max_steps
    task._fell[1] = True
    task.reset([0, 1])
    assert task.command_level == pytest.approx([0.4, 0.3])  # a fall does not go below the start
    # tracking below 0.8 on one axis: no change; a fall after widening: a step back
    task.t[:] = task.max_steps
    task._ep_kernels[0] = [0.9 * task.max_steps, 0.7 * task.max_steps]
    task.reset([0])
    assert task.command_level[0] == pytest.approx(0.4)
    task.t[0] = 10
    task._fell[0] = True
    task.reset([0])
    assert task.command_level[0] == pytest.approx(0.3)
    task.set_training(False)
    assert np.all(task.command_level == 1.0)


def test_the_command_curriculum_is_on_in_training_only():
    from robotrl.envs import make, make_vector

    vec = make_vector("robotrl/Quadruped-v0", 2, training=True, command_curriculum=0.3)
    assert vec.task.training and np.allclose(vec.task.command_level, 0.3)
    vec.close()
    vec = make_vector("robotrl/Quadruped-v0", 2, training=True)  # off by default: the whole ranges
    assert vec.task.training and np.all(vec.task.command_level == 1.0)
    vec.close()
    vec = make_vector("robotrl/Quadruped-v0", 2)
    assert not vec.task.training and np.all(vec.task.command_level == 1.0)
    vec.close()
    env = make("robotrl/Quadruped-v0")
    assert not env.unwrapped.task.training
    env.close()


def test_gait_terms_by_hand():
    # two feet: one down sliding at (0.3, 0.4) m/s, one in the air 0.02 m up moving at 0.5 m/s; clearance 0.08
    s = SimpleNamespace(feet_down=np.array([[True, False]]), foot_speed=np.array([[0.5, 0.5]]),
                        foot_height=np.array([[0.0, 0.02]]), clearance=0.08,
                        torque=np.array([[2.0, -6.0]]), effort=np.array([4.0, 12.0]))
    assert legged.feet_slip(s) == pytest.approx([0.5])
    assert legged.feet_clearance(s) == pytest.approx([((0.02 - 0.08) / 0.08) ** 2 * math.tanh(1.0)])
    assert legged.effort(s) == pytest.approx([0.25 + 0.25])


def test_adaptive_learning_rate_follows_the_kl():
    from robotrl.algorithms.ppo import PPO, PPOConfig
    from robotrl.envs import EnvFactory, task_spec
    from robotrl.run.vec_env import ShardedVectorEnv

    cfg = PPOConfig(num_envs=1, rollout_steps=8, minibatch_size=8, adaptive_lr=True, learning_rate=1e-3)
    envs = ShardedVectorEnv(EnvFactory("InvertedPendulum-v5"), 1)
    algo = PPO(cfg, task_spec("InvertedPendulum-v5"), envs, seed=0, total_steps=64)
    algo.adapt_lr(0.03)  # above twice desired_kl (0.01)
    assert algo.lr == pytest.approx(1e-3 / 1.5) and algo.optimizer.lr == algo.lr
    algo.adapt_lr(0.01)  # within: kept
    assert algo.lr == pytest.approx(1e-3 / 1.5)
    algo.adapt_lr(0.001)  # below half
    assert algo.lr == pytest.approx(1e-3)
    for _ in range(40):
        algo.adapt_lr(1.0)
    assert algo.lr == pytest.approx(1e-5)  # the floor
    for _ in range(40):
        algo.adapt_lr(1e-6)
    assert algo.lr == pytest.approx(1e-2)  # the ceiling
    metrics = algo.iterate().metrics
    assert metrics["train/learning_rate"] == algo.lr != 1e-2  # one update moved it
    state = algo.state_dict()
    algo.lr = 5.0
    algo.load_state_dict(state)
    assert algo.lr == metrics["train/learning_rate"]
    algo.close()
